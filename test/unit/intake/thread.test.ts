// The bridge between the operator's thread and the intake thread, with a fake Worker: the start-up
// handshake (the port is let go of before the thread binds it), leadership and audit alerts forwarded,
// metrics batches replayed, a crash answered by the standby and a restart with backoff, and stop.
import { EventEmitter } from 'node:events';
import { describe, expect, it } from '@jest/globals';
import type { Investigation } from '../../../src/api/investigation.js';
import type { AuditAlert } from '../../../src/audit/alert.js';
import type { RestCredentials } from '../../../src/kube/rest.js';
import { MetricsBatch, replayBatch, type IntakeObserver } from '../../../src/intake/metrics-batch.js';
import type { Standby } from '../../../src/intake/standby.js';
import { IntakeThread, type FromIntakeThread, type IntakeThreadConfig, type IntakeWorker, type ToIntakeThread } from '../../../src/intake/thread.js';
import { silent } from './helpers.js';

const tick = () => new Promise((r) => setImmediate(r));
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function until(what: string, check: () => boolean, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!check()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(5);
  }
}

class FakeWorker extends EventEmitter implements IntakeWorker {
  readonly posted: ToIntakeThread[] = [];
  terminated = false;

  postMessage(message: ToIntakeThread): void {
    this.posted.push(message);
  }

  async terminate(): Promise<number> {
    this.terminated = true;
    this.emit('exit', 1);
    return 1;
  }

  send(message: FromIntakeThread): void {
    this.emit('message', message);
  }

  kinds(): string[] {
    return this.posted.map((m) => m.kind);
  }
}

class FakeStandby implements Standby {
  readonly log: string[] = [];
  async open(port: number): Promise<void> {
    this.log.push(`open ${port}`);
  }
  async close(): Promise<void> {
    this.log.push('close');
  }
}

const config = { port: 0, tokenFile: '/nonexistent' } as IntakeThreadConfig;

function recorder(): IntakeObserver & { calls: string[] } {
  const calls: string[] = [];
  return { calls, outcome: (o, n = 1) => calls.push(`${o} ${n}`), request: (s, c) => calls.push(`request ${c} ${s}`), fsync: (s) => calls.push(`fsync ${s}`) };
}

const credentials: RestCredentials = { server: 'https://10.0.0.1:443', tls: { ca: 'CA', rejectUnauthorized: true }, authorization: 'Bearer t-1' };

function setup(opts: { backoffMs?: (n: number) => number; stopTimeoutMs?: number; credentials?: () => Promise<RestCredentials> } = {}) {
  const workers: FakeWorker[] = [];
  const opened: Investigation[] = [];
  const standby = new FakeStandby();
  const observe = recorder();
  const thread = new IntakeThread(config, {
    credentials: opts.credentials ?? (async () => credentials),
    evidenceDir: '/evidence',
    observe,
    log: silent,
    standby,
    backoffMs: opts.backoffMs ?? (() => 5),
    stopTimeoutMs: opts.stopTimeoutMs,
    onOpened: (inv) => opened.push(inv),
    spawn: () => {
      const w = new FakeWorker();
      workers.push(w);
      return w;
    },
  });
  /** Plays a thread coming up: built, told to listen, listening. */
  const bringUp = async (w: FakeWorker, port = 8443) => {
    w.send({ kind: 'loaded' });
    await tick();
    expect(w.posted.at(-1)).toEqual({ kind: 'listen' });
    w.send({ kind: 'listening', port });
  };
  return { thread, workers, standby, observe, bringUp, opened };
}

const alert = { rule: 'Attach/Exec Pod', priority: 'Notice', time: '2026-11-20T10:00:00Z', source: 'k8s_audit', output: 'exec', tags: [], output_fields: {} } as AuditAlert;

describe('IntakeThread', () => {
  it('resolves start once the thread listens, and forwards leadership and audit alerts', async () => {
    const { thread, workers, standby, bringUp } = setup();
    const started = thread.start();
    const w = workers[0]!;
    thread.acceptAuditAlert(alert); // not up yet: not acted on
    thread.startLeading(); // remembered until the thread listens
    expect(w.posted).toEqual([]);
    await bringUp(w);
    await started;
    expect(standby.log).toEqual(['close']); // the port let go of before the thread binds it
    expect(w.kinds()).toEqual(['listen', 'lead']);
    thread.acceptAuditAlert(alert);
    expect(w.posted.at(-1)).toEqual({ kind: 'audit-alert', alert });
  });

  it('rejects start with the thread\'s error when the first thread cannot listen (a start-up error)', async () => {
    const { thread, workers } = setup();
    const started = thread.start();
    workers[0]!.emit('error', new Error('ENOENT: no such file or directory, open /tls/tls.crt'));
    workers[0]!.emit('exit', 1);
    await expect(started).rejects.toThrow('/tls/tls.crt');
    expect(workers).toHaveLength(1);
  });

  it('answers the thread\'s question for credentials with what the main thread resolves now, or the error that stopped it', async () => {
    let calls = 0;
    const { thread, workers, bringUp } = setup({
      credentials: async () => {
        calls++;
        if (calls === 2) throw new Error('exec plugin failed');
        return { ...credentials, authorization: `Bearer t-${calls}` };
      },
    });
    const started = thread.start();
    await bringUp(workers[0]!);
    await started;
    workers[0]!.send({ kind: 'credentials-wanted' });
    await until('an answer', () => workers[0]!.kinds().includes('credentials'));
    expect(workers[0]!.posted.find((m) => m.kind === 'credentials')).toEqual({ kind: 'credentials', credentials: { ...credentials, authorization: 'Bearer t-1' } });
    workers[0]!.send({ kind: 'credentials-wanted' });
    await until('a second answer', () => workers[0]!.kinds().filter((k) => k === 'credentials').length === 2);
    expect(workers[0]!.posted.filter((m) => m.kind === 'credentials')[1]).toEqual({ kind: 'credentials', error: 'exec plugin failed' });
  });

  it('hands each Investigation the thread opened to the main thread (the containment lane)', async () => {
    const { thread, workers, bringUp, opened } = setup();
    const started = thread.start();
    await bringUp(workers[0]!);
    await started;
    // The object as the API server returned it: the lane acts on it without a read or a watch event.
    const inv: Investigation = { apiVersion: 'casefile.dev/v1alpha1', kind: 'Investigation', metadata: { name: 'contain-shells-web-1-0a1b2c3d', namespace: 'shop', uid: 'u-1', resourceVersion: '7' }, spec: {} };
    workers[0]!.send({ kind: 'opened', investigation: inv });
    expect(opened).toEqual([inv]);
  });

  it('replays metrics batches into the observer', async () => {
    const { thread, workers, observe, bringUp } = setup();
    const started = thread.start();
    await bringUp(workers[0]!);
    await started;
    const batch = new MetricsBatch();
    batch.outcome('accepted');
    batch.outcome('accepted');
    batch.outcome('matched');
    batch.request(0.002, 202);
    batch.fsync(0.001);
    workers[0]!.send({ kind: 'metrics', batch: structuredClone(batch.take()!) });
    expect(observe.calls).toEqual(['accepted 2', 'matched 1', 'request 202 0.002', 'fsync 0.001']);
    expect(batch.take()).toBeUndefined(); // taken: the next batch starts empty
  });

  it('after a crash: the standby holds the port, a new thread is spawned after the backoff, and told to lead again', async () => {
    const delays: number[] = [];
    const { thread, workers, standby, bringUp } = setup({ backoffMs: (n) => (delays.push(n), 5) });
    const started = thread.start();
    thread.startLeading();
    await bringUp(workers[0]!, 40123);
    await started;
    workers[0]!.emit('exit', 1);
    expect(standby.log).toEqual(['close', 'open 40123']);
    thread.acceptAuditAlert(alert); // down: not forwarded anywhere
    await until('a new thread', () => workers.length === 2);
    await bringUp(workers[1]!, 40123);
    expect(standby.log.at(-1)).toBe('close');
    expect(workers[1]!.kinds()).toEqual(['listen', 'lead']);
    expect(workers[0]!.kinds()).toEqual(['listen', 'lead']);
    // Crashing again at once backs off further.
    workers[1]!.emit('exit', 1);
    expect(delays).toEqual([0, 1]);
    await thread.stop();
  });

  it('ignores messages from a thread it has replaced', async () => {
    const { thread, workers, bringUp } = setup({ stopTimeoutMs: 10 });
    const started = thread.start();
    await bringUp(workers[0]!);
    await started;
    const old = workers[0]!;
    old.emit('exit', 1);
    await until('a new thread', () => workers.length === 2);
    old.send({ kind: 'listening', port: 1 });
    thread.acceptAuditAlert(alert);
    expect(workers[1]!.posted).toEqual([]);
    await thread.stop();
  });

  it('stop: tells the thread, which closes its journal and says stopped; it is then terminated, and not restarted', async () => {
    const { thread, workers, standby, bringUp } = setup();
    const started = thread.start();
    await bringUp(workers[0]!);
    await started;
    const stopped = thread.stop();
    expect(workers[0]!.posted.at(-1)).toEqual({ kind: 'stop' });
    workers[0]!.send({ kind: 'stopped' });
    await stopped;
    expect(workers[0]!.terminated).toBe(true);
    await sleep(20);
    expect(workers).toHaveLength(1);
    expect(standby.log.at(-1)).toBe('close');
  });

  it('stop: terminates a thread that does not answer in time', async () => {
    const { thread, workers, bringUp } = setup({ stopTimeoutMs: 10 });
    const started = thread.start();
    await bringUp(workers[0]!);
    await started;
    await thread.stop();
    expect(workers[0]!.terminated).toBe(true);
  });
});

describe('MetricsBatch', () => {
  it('replays exactly the observations made, grouped', () => {
    const batch = new MetricsBatch();
    batch.request(0.01, 202);
    batch.request(0.02, 503);
    batch.request(0.03, 202);
    batch.outcome('no_pod', 3);
    const calls = recorder();
    replayBatch(batch.take()!, calls);
    expect(calls.calls.sort()).toEqual(['no_pod 3', 'request 202 0.01', 'request 202 0.03', 'request 503 0.02']);
  });
});
