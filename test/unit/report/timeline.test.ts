import { describe, expect, test } from '@jest/globals';
import { parseSpec, type Condition } from '../../../src/api/investigation.js';
import { buildTimeline, type TimelineCustodyRecord, type TimelineSource } from '../../../src/report/timeline.js';

const spec = (alert?: Record<string, unknown>) => {
  const r = parseSpec({ target: { pod: 'web-1' }, ...(alert ? { alert } : {}) });
  if (!r.ok) throw new Error(r.message);
  return r.spec;
};
const condition = (type: Condition['type'], status: Condition['status'], reason: string, at: string): Condition => ({
  type, status, reason, message: `${type} ${reason}`, lastTransitionTime: at, observedGeneration: 1,
});
let seq = 0;
const record = (time: string, action: string, extra: Partial<TimelineCustodyRecord> = {}): TimelineCustodyRecord => ({ seq: ++seq, time, action, ...extra });

function source(extra: Partial<TimelineSource> = {}): TimelineSource {
  return { spec: spec(), findings: [], conditions: [], custody: [], ...extra };
}

describe('buildTimeline', () => {
  test('orders every source by time, whatever order they were gathered in', () => {
    const timeline = buildTimeline(source({
      spec: spec({ source: 'falco', rule: 'Terminal shell in container', priority: 'Critical', time: '2026-11-20T10:16:58.120Z' }),
      alerts: { count: 3, first: '2026-11-20T10:16:59Z', last: '2026-11-20T10:19:30Z' },
      custody: [
        record('2026-11-20T10:17:05.100Z', 'case-opened', { detail: { investigation: 'shop/web-shell' } }),
        record('2026-11-20T10:17:06.000Z', 'pod-labelled', { phase: 'NetworkIsolated', detail: { pod: 'web-1', label: 'casefile.dev/incident-6f1c=isolated' } }),
        record('2026-11-20T10:17:08.000Z', 'artifact', { phase: 'LiveStateCaptured', artifact: 'live/findings.json' }),
        record('2026-11-20T10:17:09.000Z', 'negative-finding', { phase: 'LogsCaptured', detail: { finding: 'app (previous): the container has not restarted' } }),
        record('2026-11-20T10:19:40.000Z', 'sealed'),
      ],
      findings: [{ severity: 'high', kind: 'deleted-executable', summary: 'pid 42 runs a deleted binary', artifact: 'live/findings.json' }],
      conditions: [condition('TargetResolved', 'True', 'Resolved', '2026-11-20T10:17:05Z')],
    }));
    expect(timeline.map((e) => [e.time, e.source, e.what])).toEqual([
      ['2026-11-20T10:16:58.120Z', 'alert', 'alert raised (Critical): Terminal shell in container'],
      ['2026-11-20T10:16:59.000Z', 'alert', 'first of 3 alerts about this pod received'],
      ['2026-11-20T10:17:05.000Z', 'condition', 'TargetResolved turned True (Resolved): TargetResolved Resolved'],
      ['2026-11-20T10:17:05.100Z', 'custody', 'case opened for shop/web-shell'],
      ['2026-11-20T10:17:06.000Z', 'custody', 'pod labelled: pod=web-1, label=casefile.dev/incident-6f1c=isolated'],
      ['2026-11-20T10:17:08.000Z', 'finding', 'deleted-executable: pid 42 runs a deleted binary'],
      ['2026-11-20T10:17:09.000Z', 'custody', 'negative finding: app (previous): the container has not restarted'],
      ['2026-11-20T10:19:30.000Z', 'alert', 'last of 3 alerts about this pod received'],
      ['2026-11-20T10:19:40.000Z', 'custody', 'case file sealed: MANIFEST.sha256 written'],
    ]);
  });

  test('keeps the gathered order for entries at the same instant: alerts, custody by seq, findings, conditions', () => {
    const at = '2026-11-20T10:17:05.000Z';
    const timeline = buildTimeline(source({
      spec: spec({ source: 'falco', time: at }),
      custody: [record(at, 'node-cordoned', { phase: 'NodeCordoned' }), record(at, 'artifact', { artifact: 'node/findings.json' }), record(at, 'probe-pod-created')],
      findings: [{ severity: 'low', kind: 'k', summary: 's', artifact: 'node/findings.json' }],
      conditions: [condition('Released', 'True', 'Released', '2026-11-20T10:17:05Z')],
    }));
    expect(timeline.map((e) => [e.source, e.subject])).toEqual([
      ['alert', 'falco'], ['custody', 'NodeCordoned'], ['custody', undefined], ['finding', 'low'], ['condition', 'Released'],
    ]);
  });

  test('points each entry at what backs it: the artifact, the custody record or the condition', () => {
    const timeline = buildTimeline(source({
      custody: [
        record('2026-11-20T10:17:01Z', 'refused', { phase: 'TargetResolved', detail: { reason: 'TargetReplaced', expectedUID: 'a', liveUID: 'b' } }),
        record('2026-11-20T10:17:02Z', 'networkpolicy-created', { phase: 'NetworkIsolated', artifact: 'containment/networkpolicy.yaml', detail: { name: 'casefile-6f1c' } }),
        record('2026-11-20T10:17:03Z', 'artifact', { artifact: 'alerts/4-9.jsonl', detail: { firstSeq: 4, lastSeq: 9 } }),
      ],
      conditions: [condition('Ready', 'False', 'TargetReplaced', '2026-11-20T10:17:04Z')],
    }));
    expect(timeline.map((e) => [e.what, e.artifact])).toEqual([
      [`refused (TargetReplaced): expectedUID=a, liveUID=b`, `custody.jsonl #${seq - 2}`],
      ['networkpolicy created: name=casefile-6f1c', 'containment/networkpolicy.yaml'],
      ['journaled alerts 4-9 copied into the case file', 'alerts/4-9.jsonl'],
      ['Ready turned False (TargetReplaced): Ready TargetReplaced', 'status.conditions[Ready]'],
    ]);
  });

  test('leaves out plain artifact writes (the evidence table lists them), conditions a phase-finished record already tells, and phases turned off', () => {
    const timeline = buildTimeline(source({
      custody: [
        record('2026-11-20T10:17:01Z', 'artifact', { artifact: 'k8s/pod.yaml' }),
        record('2026-11-20T10:17:02Z', 'artifact-failed', { artifact: 'logs/app.log', detail: { error: 'ENOSPC' } }),
        record('2026-11-20T10:17:03Z', 'phase-finished', { phase: 'LogsCaptured', detail: { condition: 'LogsCaptured', status: 'False', reason: 'EvidenceStoreFull', message: 'ENOSPC' } }),
      ],
      conditions: [
        condition('LogsCaptured', 'False', 'EvidenceStoreFull', '2026-11-20T10:17:03Z'),
        condition('NodeCordoned', 'True', 'Disabled', '2026-11-20T10:17:03Z'),
        condition('Released', 'Unknown', 'Retrying', '2026-11-20T10:18:00Z'),
      ],
    }));
    expect(timeline.map((e) => e.what)).toEqual([
      'artifact failed: error=ENOSPC',
      'LogsCaptured False (EvidenceStoreFull): ENOSPC',
      'Released turned Unknown (Retrying): Released Retrying',
    ]);
  });

  test('an unparseable time is kept as written and sorted last, in gathered order; a finding whose artifact was never recorded has no time', () => {
    const timeline = buildTimeline(source({
      spec: spec({ source: 'other', time: 'yesterday <b>' }),
      custody: [record('2026-11-20T10:17:01Z', 'case-opened')],
      findings: [{ severity: 'info', kind: 'k', summary: 's', artifact: 'live/never-written.json' }],
    }));
    expect(timeline.map((e) => [e.time, e.source])).toEqual([
      ['2026-11-20T10:17:01.000Z', 'custody'],
      ['yesterday <b>', 'alert'],
      ['time not recorded', 'finding'],
    ]);
  });

  test('does not modify its input', () => {
    const input = source({ custody: [record('2026-11-20T10:17:02Z', 'sealed'), record('2026-11-20T10:17:01Z', 'case-opened')] });
    const before = JSON.stringify(input);
    buildTimeline(input);
    expect(JSON.stringify(input)).toBe(before);
  });
});
