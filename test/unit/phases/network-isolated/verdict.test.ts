// The isolation verification's decision from what the probes saw: enforced only when both directions
// were refused from the suspect's own network namespace while both controls connected; open at the end
// of the window is leaking; anything that did not run (or a control that failed) is inconclusive.
import net from 'node:net';
import { describe, expect, test } from '@jest/globals';
import { tryConnect } from '../../../../src/live/netprobe.js';
import { decide, type Attempt, type Observations } from '../../../../src/phases/network-isolated/verdict.js';

const open: Attempt = { result: 'open', detail: 'connected', ms: 1 };
const refused: Attempt = { result: 'blocked', detail: 'ECONNREFUSED', ms: 1 };
const silent: Attempt = { result: 'blocked', detail: 'no answer within 500 ms', ms: 500 };
const broken: Attempt = { result: 'error', detail: 'EMFILE', ms: 0 };
const where = { egressTarget: '10.96.0.1:443', suspect: '10.88.0.7:40000', control: '10.88.0.3:9901' };

/** Enforced from the start, controls fine. */
const enforced = (): Observations => ({ loopback: true, egress: [refused], ingress: [silent], egressControl: [open], ingressControl: [open] });

describe('decide', () => {
  test('both directions refused while both controls connect: blocked', () => {
    const d = decide(enforced(), where);
    expect(d.outcome).toBe('blocked');
    expect(d.details.join('\n')).toContain('10.96.0.1:443');
    expect(d.details.join('\n')).toContain('answered on 127.0.0.1');
  });

  test('open at first, refused once the CNI has programmed the policy: blocked', () => {
    expect(decide({ ...enforced(), egress: [open, open, refused], ingress: [open, silent] }, where).outcome).toBe('blocked');
  });

  test('a direction still open at the end of the window: leaking, whatever the controls say', () => {
    expect(decide({ ...enforced(), egress: [open, open, open] }, where).outcome).toBe('leaking');
    expect(decide({ ...enforced(), ingress: [open, open] }, where).outcome).toBe('leaking');
    expect(decide({ ...enforced(), ingress: [open], egressControl: [silent], ingressControl: [] }, where).outcome).toBe('leaking');
  });

  test('a control that never connected: inconclusive, never blocked', () => {
    const egress = decide({ ...enforced(), egressControl: [silent, silent] }, where);
    expect(egress.outcome).toBe('inconclusive');
    expect(egress.summary).toContain('egress control did not connect');
    const ingress = decide({ ...enforced(), ingressControl: [refused] }, where);
    expect(ingress.outcome).toBe('inconclusive');
    expect(ingress.summary).toContain('ingress control did not connect');
    expect(decide({ ...enforced(), ingressControl: [] }, where).outcome).toBe('inconclusive');
  });

  test('a listener that did not answer on loopback: a refused ingress proves nothing', () => {
    const d = decide({ ...enforced(), loopback: false }, where);
    expect(d.outcome).toBe('inconclusive');
    expect(d.summary).toContain('loopback');
    expect(decide({ ...enforced(), loopback: undefined }, where).outcome).toBe('inconclusive');
  });

  test('a probe that did not run, or failed locally: inconclusive', () => {
    expect(decide({ ...enforced(), egress: [] }, where).outcome).toBe('inconclusive');
    expect(decide({ ...enforced(), ingress: [] }, where).outcome).toBe('inconclusive');
    expect(decide({ ...enforced(), egress: [broken] }, where).outcome).toBe('inconclusive');
    expect(decide({ loopback: undefined, egress: [], ingress: [], egressControl: [], ingressControl: [] }, where).outcome).toBe('inconclusive');
  });
});

describe('tryConnect', () => {
  test('open to a listener, blocked (refused) once it is gone', async () => {
    const server = net.createServer((s) => s.destroy());
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const port = (server.address() as net.AddressInfo).port;
    expect((await tryConnect('127.0.0.1', port, 1000)).result).toBe('open');
    await new Promise((r) => server.close(r));
    const after = await tryConnect('127.0.0.1', port, 1000);
    expect(after).toMatchObject({ result: 'blocked', detail: 'ECONNREFUSED' });
  });
});
