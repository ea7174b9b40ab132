import { parseSpec, type Condition } from '../../../src/api/investigation.js';
import { renderReport, type ReportInput } from '../../../src/report/render.js';

const spec = (() => {
  const r = parseSpec({ target: { pod: 'web-1' }, alert: { source: 'falco', rule: 'Terminal shell in container', priority: 'Critical', raw: '{}' } });
  if (!r.ok) throw new Error(r.message);
  return r.spec;
})();
const condition = (type: Condition['type'], status: Condition['status'], reason: string, message: string): Condition => ({
  type, status, reason, message, lastTransitionTime: '2026-11-20T10:17:03Z', observedGeneration: 1,
});
const input: ReportInput = {
  namespace: 'shop',
  name: 'web-shell-0001',
  uid: '6f1c0000-1111-2222-3333-444455556666',
  caseDir: 'shop/web-shell-0001-6f1c0000',
  spec,
  target: {
    podUID: 'uid-123', node: 'worker-2', container: 'app', containerID: 'containerd://3f2a9c1e7b44',
    image: 'registry.example.com/shop/web:1.4.2', imageID: 'registry.example.com/shop/web@sha256:abcd',
    serviceAccount: 'web', owners: [{ kind: 'ReplicaSet', name: 'web-7d96c8f4d9', uid: 'rs-1' }], derivation: ['pod UID from the API server'],
  },
  conditions: [condition('TargetResolved', 'True', 'Resolved', 'ok'), condition('LogsCaptured', 'False', 'EvidenceStoreFull', 'no space | left')],
  findings: [],
  artifacts: [{ artifact: 'logs/app.log', sha256: 'a'.repeat(64), bytes: 4096, truncated: true }],
  notes: [{ phase: 'LogsCaptured', kind: 'negative-finding', text: 'app (app): no previous logs: the container has not restarted' }],
  generatedAt: '2026-11-20T10:20:00Z',
};

describe('report.md', () => {
  const report = renderReport(input);

  test('carries the whole identity chain: UID, node, container ID, digest', () => {
    for (const value of ['uid-123', 'worker-2', 'containerd://3f2a9c1e7b44', 'registry.example.com/shop/web@sha256:abcd', 'ReplicaSet/web-7d96c8f4d9']) {
      expect(report).toContain(value);
    }
    expect(report).toContain('Rule: Terminal shell in container');
  });

  test('states what could not be captured and why, and marks truncation', () => {
    expect(report).toContain('LogsCaptured failed (EvidenceStoreFull)');
    expect(report).toContain('no previous logs: the container has not restarted');
    expect(report).toContain('logs/app.log (truncated at limitBytes)');
  });

  test('escapes table cells so a message cannot break the table', () => {
    expect(report).toContain('no space \\| left');
  });

  test('says plainly when live capture and containment were not requested', () => {
    expect(report).toContain('Live-state capture was not enabled');
    expect(report).toContain('No containment was requested');
  });
});

describe('report.md containment section', () => {
  test('lists what was changed, where the originals are, and what containment does not do', () => {
    const contained = parseSpec({ target: { pod: 'web-1' }, containment: { order: 'ContainFirst', network: { isolate: true, verify: true } } });
    if (!contained.ok) throw new Error(contained.message);
    const report = renderReport({
      ...input,
      spec: contained.spec,
      containment: {
        label: 'casefile.dev/incident-6f1c0000=isolated',
        networkPolicy: 'casefile-6f1c0000',
        patchedPolicies: [{ name: 'allow-all', original: 'containment/originals/networkpolicies/allow-all.yaml' }],
        verification: { blocked: true, at: '2026-11-20T10:18:00Z', method: 'canary', details: ['ingress blocked'] },
      },
    });
    expect(report).toContain('`casefile.dev/incident-6f1c0000=isolated`');
    expect(report).toContain('NetworkPolicy `allow-all` also selected the pod');
    expect(report).toContain('containment/originals/networkpolicies/allow-all.yaml');
    expect(report).toContain('Enforcement verified at 2026-11-20T10:18:00Z');
    expect(report).toContain('the manifest shows the incident label');
    expect(report).toContain('What containment does not do');
  });
});

describe('report.md observer effect', () => {
  test('names the debug container, its privileges, that it stays in the pod, and the node collector', () => {
    const live = parseSpec({ target: { pod: 'web-1' }, evidence: { live: { enabled: true }, node: { enabled: true } } });
    if (!live.ok) throw new Error(live.message);
    const report = renderReport({
      ...input,
      spec: live.spec,
      findings: [{ severity: 'critical', kind: 'deleted-executable-running', summary: 'pid 7 runs /tmp/kworkerd (deleted)', artifact: 'live/recovered.json' }],
      live: {
        debugContainer: 'casefile-debug-6f1c0000',
        image: 'debug-tools:1',
        launchedAt: '2026-11-20T10:17:30Z',
        nodeCollector: { namespace: 'casefile-collectors', pod: 'casefile-node-6f1c0000-1', removed: true },
      },
    });
    expect(report).toContain('**critical** deleted-executable-running: pid 7 runs /tmp/kworkerd (deleted) (`live/recovered.json`)');
    expect(report).toContain('## Observer effect');
    expect(report).toContain('`casefile-debug-6f1c0000`');
    expect(report).toContain('for the pod\'s life');
    expect(report).toContain('SYS_PTRACE and DAC_READ_SEARCH');
    expect(report).toContain('`casefile-collectors/casefile-node-6f1c0000-1`');
    expect(report).toContain('removed after its run');
  });

  test('says nothing was added when no live or node capture was requested', () => {
    expect(renderReport(input)).toContain('casefile added nothing to the pod or its node');
  });
});

describe('report.md detection', () => {
  test('counts the alerts attached to the case', () => {
    const report = renderReport({ ...input, alerts: { count: 1000, first: '2026-11-20T10:17:03Z', last: '2026-11-20T10:17:09Z' } });
    expect(report).toContain('1000 alerts about this pod reached the case (first received 2026-11-20T10:17:03Z, last 2026-11-20T10:17:09Z)');
    expect(renderReport(input)).not.toContain('alerts about this pod');
  });
});

describe('report.md timeline', () => {
  test('one table, in time order, in the same section order as report.html; cells cannot break it', () => {
    const report = renderReport({
      ...input,
      custody: [
        { seq: 1, time: '2026-11-20T10:17:01.500Z', action: 'case-opened', detail: { investigation: 'shop/web-shell-0001' } },
        { seq: 2, time: '2026-11-20T10:17:04Z', action: 'negative-finding', phase: 'LogsCaptured', detail: { finding: 'no previous | logs\nat all' } },
      ],
    });
    const section = report.split('## Timeline\n')[1]!.split('\n## ')[0]!;
    expect([...report.matchAll(/^## (.*)$/gm)].map((m) => m[1])).toEqual([
      'What happened', 'Detection', 'Identity chain', 'Findings by severity', 'Audit trail', 'Indicators', 'Containment and its state', 'Timeline', 'Evidence',
      'Observer effect', 'Phases', 'What could not be captured, and why', 'Limitations of this record',
    ]);
    expect(section.trim().split('\n')).toEqual([
      '| time (UTC) | from | what | see |',
      '|---|---|---|---|',
      '| 2026-11-20T10:17:01.500Z | custody | case opened for shop/web-shell-0001 | `custody.jsonl #1` |',
      '| 2026-11-20T10:17:03.000Z | condition: TargetResolved | TargetResolved turned True (Resolved): ok | `status.conditions[TargetResolved]` |',
      '| 2026-11-20T10:17:03.000Z | condition: LogsCaptured | LogsCaptured turned False (EvidenceStoreFull): no space \\| left | `status.conditions[LogsCaptured]` |',
      '| 2026-11-20T10:17:04.000Z | custody: LogsCaptured | negative finding: no previous \\| logs at all | `custody.jsonl #2` |',
    ]);
  });
});
