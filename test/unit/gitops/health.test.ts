// The Argo CD health checks in config/argocd, executed in a Lua VM (fengari) with Argo CD's default
// sandbox, against Investigations whose status is built the way the operator writes it: the real
// runbook order (phasesInOrder), setCondition, readiness and overallPhase from the engine, and the
// reconciler's order of writes (a phase Unknown while it runs, observedGeneration and Ready last).
import { readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, test } from '@jest/globals';
import { parse, stringify } from 'yaml';
import { setCondition, withKstatusConditions } from '../../../src/api/conditions.js';
import {
  API_VERSION,
  FINALIZER,
  parseSpec,
  type Condition,
  type ConditionType,
  type Investigation,
  type InvestigationSpec,
  type InvestigationStatus,
} from '../../../src/api/investigation.js';
import { overallPhase, readiness } from '../../../src/engine/case-status.js';
import { phasesInOrder } from '../../../src/phases/index.js';
import { runHealthScript } from './lua.js';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const ARGOCD = `${ROOT}config/argocd/`;
const INVESTIGATION_LUA_PATH = `${ARGOCD}casefile.dev/Investigation/health.lua`;
const POLICY_LUA_PATH = `${ARGOCD}casefile.dev/ResponsePolicy/health.lua`;
const PATCH_PATH = `${ARGOCD}argocd-cm-patch.yaml`;
const INVESTIGATION_KEY = 'resource.customizations.health.casefile.dev_Investigation';
const POLICY_KEY = 'resource.customizations.health.casefile.dev_ResponsePolicy';

const investigationLua = readFileSync(INVESTIGATION_LUA_PATH, 'utf8');
const policyLua = readFileSync(POLICY_LUA_PATH, 'utf8');

const health = (obj: unknown) => runHealthScript(investigationLua, obj);

// ---- Investigations as the operator writes them ----

type Outcome = { status: 'True' | 'False'; reason: string; message: string };

const DONE: Record<string, Outcome> = {
  TargetResolved: { status: 'True', reason: 'Resolved', message: 'pod web-7d96c8f4d9-r2x5b (uid 6f1c) on node-1, container app' },
  ManifestCaptured: { status: 'True', reason: 'Captured', message: 'pod, 2 owners, ServiceAccount, 0 NetworkPolicies' },
  EventsCaptured: { status: 'True', reason: 'Captured', message: '12 events' },
  LogsCaptured: { status: 'True', reason: 'Captured', message: '1 container, 1 log' },
  ScopeMapped: { status: 'True', reason: 'Mapped', message: '1 sibling pod' },
  NetworkIsolated: { status: 'True', reason: 'Isolated', message: 'deny-all policy casefile-6f1c0000 applied; enforcement verified' },
  RBACNarrowed: { status: 'True', reason: 'Narrowed', message: 'removed from 1 binding' },
  NodeCordoned: { status: 'True', reason: 'Cordoned', message: 'node-1 cordoned' },
  AuditCorrelated: { status: 'True', reason: 'Correlated', message: '3 request(s) on the pod, 12 with its token, 4 finding(s)' },
  EvidenceSealed: { status: 'True', reason: 'Sealed', message: 'MANIFEST.sha256 over 14 artifacts' },
};

function specOf(raw: Record<string, unknown>): InvestigationSpec {
  const parsed = parseSpec(raw);
  if (!parsed.ok) throw new Error(parsed.message);
  return parsed.spec;
}

const ISOLATE = { target: { pod: 'web-7d96c8f4d9-r2x5b' }, containment: { order: 'ContainFirst', network: { isolate: true, verify: true } } };
const CAPTURE_ONLY = { target: { pod: 'web-7d96c8f4d9-r2x5b' } };

interface Build {
  spec?: Record<string, unknown>;
  generation?: number;
  /** Run only the first n phases (the next one is left Unknown/InProgress, as while it runs). */
  stopAfter?: number;
  /** Outcomes replacing the default success of a phase. */
  outcomes?: Partial<Record<ConditionType, Outcome>>;
  /** Mutate the status after the build (e.g. a later generation). */
  status?: (s: InvestigationStatus) => void;
  metadata?: Record<string, unknown>;
}

/** An Investigation with the status the reconciler would have written at that point. */
function investigation(b: Build = {}): Investigation {
  const raw = b.spec ?? ISOLATE;
  const spec = specOf(raw);
  const generation = b.generation ?? 1;
  const status: InvestigationStatus = {};
  const set = (type: ConditionType, o: { status: 'True' | 'False' | 'Unknown'; reason: string; message: string }) => {
    status.conditions = setCondition(status.conditions, { type, ...o }, generation);
  };
  const ordered = phasesInOrder(spec);
  let finished = true;
  for (const [i, phase] of ordered.entries()) {
    if (phase.enabled && !phase.enabled(spec)) {
      set(phase.condition, { status: 'True', reason: 'Disabled', message: 'turned off by the spec' });
      continue;
    }
    if (b.stopAfter !== undefined && i >= b.stopAfter) {
      set(phase.condition, { status: 'Unknown', reason: 'InProgress', message: 'running' });
      status.phase = phase.containment ? 'Containing' : 'Capturing';
      finished = false;
      break;
    }
    const outcome = b.outcomes?.[phase.condition] ?? DONE[phase.condition];
    if (!outcome) throw new Error(`no outcome for ${phase.condition}`);
    set(phase.condition, outcome);
  }
  if (finished) {
    if (spec.release) set('Released', { status: 'True', reason: 'Released', message: 'NetworkIsolated: label and policy removed' });
    set('Ready', readiness(status.conditions ?? [], ordered, spec.release));
    status.phase = overallPhase(status.conditions ?? [], spec);
    status.observedGeneration = generation;
  }
  // What every status write adds (StatusWriter): kstatus's Reconciling/Stalled, derived from Ready.
  status.conditions = withKstatusConditions(status.conditions, generation);
  b.status?.(status);
  return {
    apiVersion: API_VERSION,
    kind: 'Investigation',
    metadata: {
      name: 'web-shell-0001',
      namespace: 'production',
      uid: '6f1c0000-1111-2222-3333-444455556666',
      generation,
      resourceVersion: '4711',
      creationTimestamp: '2026-11-20T10:17:05Z',
      finalizers: [FINALIZER],
      ...b.metadata,
    },
    spec: raw,
    status,
  };
}

const cond = (inv: Investigation, type: ConditionType): Condition | undefined => inv.status?.conditions?.find((c) => c.type === type);

// ---- tests ----

describe('Investigation health (config/argocd/casefile.dev/Investigation/health.lua)', () => {
  test('a new Investigation with no status yet is Progressing', () => {
    const fresh = investigation();
    delete fresh.status;
    expect(health(fresh)).toEqual({ status: 'Progressing', message: 'Waiting for the casefile operator to pick up the Investigation' });
    expect(health({ ...fresh, status: {} }).status).toBe('Progressing');
    expect(health({ ...fresh, status: { conditions: [] } }).status).toBe('Progressing');
  });

  test('while a phase runs (condition Unknown, no observedGeneration yet) it is Progressing and says which', () => {
    const inv = investigation({ stopAfter: 1 }); // ContainFirst: NetworkIsolated runs right after TargetResolved
    expect(cond(inv, 'NetworkIsolated')?.status).toBe('Unknown');
    expect(inv.status?.observedGeneration).toBeUndefined();
    expect(health(inv)).toEqual({ status: 'Progressing', message: 'Containing: NetworkIsolated=Unknown (InProgress): running' });

    const capturing = investigation({ spec: CAPTURE_ONLY, stopAfter: 3 });
    expect(health(capturing)).toEqual({ status: 'Progressing', message: 'Capturing: EventsCaptured=Unknown (InProgress): running' });
  });

  test('a retrying phase (Unknown with a reason) is Progressing, not Degraded', () => {
    const inv = investigation({ stopAfter: 2 });
    inv.status!.conditions = setCondition(inv.status!.conditions, { type: 'ManifestCaptured', status: 'Unknown', reason: 'Retrying', message: '503: the server is unavailable; will retry' }, 1);
    const h = health(inv);
    expect(h.status).toBe('Progressing');
    expect(h.message).toContain('ManifestCaptured=Unknown (Retrying): 503: the server is unavailable; will retry');
  });

  test('all phases done but Ready not yet written is Progressing', () => {
    const inv = investigation({ status: (s) => { s.conditions = s.conditions!.filter((c) => c.type !== 'Ready'); } });
    expect(health(inv)).toEqual({ status: 'Progressing', message: 'Contained: phases are running; Ready is not set yet' });
  });

  test('a spec change not yet observed (observedGeneration behind generation) is Progressing, even over an old failure', () => {
    const inv = investigation({ outcomes: { NetworkIsolated: { status: 'False', reason: 'NotEnforced', message: 'the probe still connected' } } });
    inv.metadata.generation = 2; // e.g. spec.release: true committed; the operator has not seen it yet
    expect(health(inv)).toEqual({ status: 'Progressing', message: 'Spec generation 2 not yet observed (status is for generation 1)' });
  });

  test('Ready=True with isolation is Healthy and names the phase Contained', () => {
    const inv = investigation();
    expect(inv.status?.phase).toBe('Contained');
    expect(cond(inv, 'Ready')).toMatchObject({ status: 'True', reason: 'CaseSealed' });
    expect(health(inv)).toEqual({ status: 'Healthy', message: 'Contained: every phase the spec asks for is done and the case file is sealed' });
  });

  test('phases turned off by the spec (True, reason Disabled) do not hold health back', () => {
    const inv = investigation({ spec: CAPTURE_ONLY });
    expect(['NetworkIsolated', 'RBACNarrowed', 'NodeCordoned'].map((t) => cond(inv, t as ConditionType)?.reason)).toEqual(['Disabled', 'Disabled', 'Disabled']);
    expect(inv.status?.phase).toBe('Completed');
    expect(health(inv)).toEqual({ status: 'Healthy', message: 'Completed: every phase the spec asks for is done and the case file is sealed' });
  });

  test('a condition with reason Disabled never counts as a failure, whatever its status', () => {
    const inv = investigation({ spec: CAPTURE_ONLY });
    inv.status!.conditions = setCondition(inv.status!.conditions, { type: 'NodeCordoned', status: 'False', reason: 'Disabled', message: 'turned off by the spec' }, 1);
    expect(health(inv).status).toBe('Healthy');
  });

  test('a failed phase is Degraded; the message names condition, reason and message', () => {
    const inv = investigation({ outcomes: { NetworkIsolated: { status: 'False', reason: 'NotEnforced', message: 'the probe still connected: the CNI may not enforce NetworkPolicy' } } });
    expect(cond(inv, 'Ready')).toMatchObject({ status: 'False', reason: 'NotEnforced' });
    expect(inv.status?.phase).toBe('Failed');
    expect(health(inv)).toEqual({
      status: 'Degraded',
      message: 'NetworkIsolated=False (NotEnforced): the probe still connected: the CNI may not enforce NetworkPolicy',
    });
  });

  test('a failure during the first pass (no observedGeneration yet) is Degraded at once, not after the case settles', () => {
    const inv = investigation({ spec: CAPTURE_ONLY, stopAfter: 2, outcomes: { TargetResolved: { status: 'False', reason: 'TargetNotFound', message: 'pod web-7d96c8f4d9-r2x5b not found' } } });
    expect(inv.status?.observedGeneration).toBeUndefined();
    const h = health(inv);
    expect(h.status).toBe('Degraded');
    expect(h.message).toBe('TargetResolved=False (TargetNotFound): pod web-7d96c8f4d9-r2x5b not found');
  });

  test('several failures are all listed', () => {
    const inv = investigation({
      spec: CAPTURE_ONLY,
      outcomes: {
        LogsCaptured: { status: 'False', reason: 'EvidenceStoreFull', message: 'writing evidence failed: ENOSPC' },
        EvidenceSealed: { status: 'False', reason: 'EvidenceIncomplete', message: 'LogsCaptured failed' },
      },
    });
    expect(health(inv)).toEqual({
      status: 'Degraded',
      message: 'LogsCaptured=False (EvidenceStoreFull): writing evidence failed: ENOSPC; EvidenceSealed=False (EvidenceIncomplete): LogsCaptured failed',
    });
  });

  test('Ready=False alone (InvalidSpec) is Degraded with the Ready reason', () => {
    const inv = investigation({
      status: (s) => {
        s.conditions = setCondition(undefined, { type: 'Ready', status: 'False', reason: 'InvalidSpec', message: 'spec.target.pod: Required; fix the spec and apply it again' }, 1);
        s.phase = 'Failed';
        s.observedGeneration = 1;
      },
    });
    expect(health(inv)).toEqual({ status: 'Degraded', message: 'Ready=False (InvalidSpec): spec.target.pod: Required; fix the spec and apply it again' });
  });

  test('Ready=Unknown (evidence store unavailable) is Progressing', () => {
    // The first reconcile could not open the case directory: Ready is the only condition, no phase yet.
    const inv = investigation();
    inv.status = { conditions: setCondition(undefined, { type: 'Ready', status: 'Unknown', reason: 'EvidenceStoreUnavailable', message: 'cannot open the case directory: EACCES; retrying' }, 1) };
    expect(health(inv)).toEqual({ status: 'Progressing', message: 'Pending: Ready=Unknown (EvidenceStoreUnavailable): cannot open the case directory: EACCES; retrying' });
  });

  test('Released (spec.release: true, observed) is Healthy: the case is closed as asked', () => {
    const inv = investigation({ spec: { ...ISOLATE, release: true }, generation: 2 });
    expect(inv.status?.phase).toBe('Released');
    expect(cond(inv, 'Released')?.status).toBe('True');
    const h = health(inv);
    expect(h.status).toBe('Healthy');
    expect(h.message).toMatch(/^Released: containment lifted as the spec asked; the case is closed and its evidence kept\. /);
  });

  test('release under way (Released Unknown) is Progressing', () => {
    const inv = investigation({ spec: { ...ISOLATE, release: true }, generation: 2 });
    inv.status!.conditions = setCondition(inv.status!.conditions, { type: 'Released', status: 'Unknown', reason: 'Retrying', message: 'NetworkIsolated: 409: conflict; will retry' }, 2);
    const h = health(inv);
    expect(h.status).toBe('Progressing');
    expect(h.message).toContain('Released=Unknown (Retrying)');
  });

  test('an Investigation being deleted (finalizer pending) is Progressing', () => {
    const inv = investigation({ metadata: { deletionTimestamp: '2026-11-20T11:00:00Z' } });
    expect(health(inv).status).toBe('Progressing');
    expect(health(inv).message).toContain('finalizer');
  });
});

/**
 * kstatus's generic rules for a kind it has no specific reader for (sigs.k8s.io/cli-utils
 * pkg/kstatus/status, generic.go and status.go, as docs/gitops.md quotes them): what Flux `wait: true`
 * computes for an Investigation.
 */
function kstatus(inv: Investigation): 'Terminating' | 'InProgress' | 'Failed' | 'Current' {
  if ((inv.metadata as { deletionTimestamp?: string }).deletionTimestamp) return 'Terminating';
  const observed = inv.status?.observedGeneration;
  if (observed !== undefined && observed !== inv.metadata.generation) return 'InProgress';
  const conditions = (inv.status?.conditions ?? []) as { type: string; status: string }[];
  if (conditions.some((c) => c.type === 'Reconciling' && c.status === 'True')) return 'InProgress';
  if (conditions.some((c) => c.type === 'Stalled' && c.status === 'True')) return 'Failed';
  const ready = conditions.find((c) => c.type === 'Ready');
  if (ready?.status === 'False' || ready?.status === 'Unknown') return 'InProgress';
  return 'Current';
}

describe('kstatus (Flux wait) reads what Argo CD reads', () => {
  test.each([
    ['a sealed, contained case', {}, 'Current', 'Healthy'],
    ['a case whose phases still run (first pass)', { stopAfter: 3 }, 'InProgress', 'Progressing'],
    ['a failed case', { outcomes: { NetworkIsolated: { status: 'False', reason: 'NotEnforced', message: 'probe got through' } } }, 'Failed', 'Degraded'],
    ['a released case', { spec: { ...ISOLATE, release: true } }, 'Current', 'Healthy'],
    ['a release not yet observed', { generation: 2, status: (s: InvestigationStatus) => (s.observedGeneration = 1) }, 'InProgress', 'Progressing'],
  ] as [string, Build, string, string][])('%s: kstatus %s, Argo CD %s', (_what, build, expectedKstatus, expectedHealth) => {
    const inv = investigation(build);
    expect(kstatus(inv)).toBe(expectedKstatus);
    expect(health(inv).status).toBe(expectedHealth);
  });

  test('Reconciling and Stalled are present only while true, and carry Ready\'s reason', () => {
    const running = investigation({ stopAfter: 3 });
    expect(cond(running, 'Reconciling')).toMatchObject({ status: 'True', reason: 'InProgress' });
    expect(cond(running, 'Stalled')).toBeUndefined();
    const failed = investigation({ outcomes: { NetworkIsolated: { status: 'False', reason: 'NotEnforced', message: 'probe got through' } } });
    expect(cond(failed, 'Stalled')).toMatchObject({ status: 'True', reason: 'NotEnforced' });
    expect(cond(failed, 'Stalled')?.message).toContain('probe got through');
    expect(cond(failed, 'Reconciling')).toBeUndefined();
    const done = investigation();
    expect([cond(done, 'Reconciling'), cond(done, 'Stalled')]).toEqual([undefined, undefined]);
  });
});

describe('ResponsePolicy health (config/argocd/casefile.dev/ResponsePolicy/health.lua)', () => {
  const policy = (extra: { spec?: Record<string, unknown>; status?: Record<string, unknown>; generation?: number } = {}) => ({
    apiVersion: API_VERSION,
    kind: 'ResponsePolicy',
    metadata: { name: 'shells-and-droppers', namespace: 'casefile-system', generation: extra.generation ?? 1 },
    spec: { match: { rules: ['Terminal shell in container'], minPriority: 'Warning' }, investigation: { containment: { order: 'ContainFirst' } }, dryRun: false, ...extra.spec },
    ...(extra.status ? { status: extra.status } : {}),
  });
  const run = (obj: unknown) => runHealthScript(policyLua, obj);

  test('Healthy without status, and says whether it is a dry run', () => {
    expect(run(policy())).toEqual({ status: 'Healthy', message: 'ResponsePolicy creates Investigations for matching alerts' });
    expect(run(policy({ spec: { dryRun: true } }))).toEqual({ status: 'Healthy', message: 'ResponsePolicy dry run: matches are recorded, no Investigation is created' });
  });

  test('Degraded on a False condition, Progressing on Unknown or an unobserved generation', () => {
    const c = (status: string, reason: string, message: string) => ({ type: 'Accepted', status, reason, message, lastTransitionTime: '2026-11-20T10:00:00Z', observedGeneration: 1 });
    expect(run(policy({ status: { observedGeneration: 1, conditions: [c('False', 'InvalidTemplate', 'investigation.containment.order: bad value')] } }))).toEqual({
      status: 'Degraded',
      message: 'Accepted=False (InvalidTemplate): investigation.containment.order: bad value',
    });
    expect(run(policy({ status: { observedGeneration: 1, conditions: [c('False', 'Disabled', 'off')] } })).status).toBe('Healthy');
    expect(run(policy({ status: { observedGeneration: 1, conditions: [c('Unknown', 'InProgress', 'checking')] } })).status).toBe('Progressing');
    expect(run(policy({ generation: 3, status: { observedGeneration: 2, conditions: [] } }))).toEqual({ status: 'Progressing', message: 'Spec generation 3 not yet observed (status is for generation 2)' });
  });
});

describe('the Argo CD sandbox the tests run in', () => {
  test('has no string library, as Argo CD by default does not', () => {
    expect(() => runHealthScript('return { status = string.format("%d", 1) }', {})).toThrow(/string/);
    expect(() => runHealthScript('local s = "x" return { status = s:upper() }', {})).toThrow();
    expect(runHealthScript('return { status = "Healthy", message = "generation " .. obj.g }', { g: 2 })).toEqual({ status: 'Healthy', message: 'generation 2' });
  });
});

describe('config/argocd/argocd-cm-patch.yaml', () => {
  // One source of truth: the .lua files. Regenerate the patch with
  //   CASEFILE_UPDATE_ARGOCD_PATCH=1 npm run test:unit -- --testPathPatterns test/unit/gitops
  const header = [
    '# Generated from config/argocd/casefile.dev/*/health.lua by test/unit/gitops/health.test.ts',
    '# (CASEFILE_UPDATE_ARGOCD_PATCH=1 npm run test:unit -- --testPathPatterns test/unit/gitops); do not edit.',
    '# Without kustomize: kubectl -n argocd patch configmap argocd-cm --type merge --patch-file config/argocd/argocd-cm-patch.yaml',
    '',
  ].join('\n');
  const expected = header + stringify(
    { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'argocd-cm', namespace: 'argocd' }, data: { [INVESTIGATION_KEY]: investigationLua, [POLICY_KEY]: policyLua } },
    { lineWidth: 0 },
  );
  if (process.env.CASEFILE_UPDATE_ARGOCD_PATCH === '1') writeFileSync(PATCH_PATH, expected);

  test('embeds exactly the health.lua files under Argo CD\'s keys', () => {
    const patch = parse(readFileSync(PATCH_PATH, 'utf8')) as { kind: string; metadata: { name: string }; data: Record<string, string> };
    expect(patch.kind).toBe('ConfigMap');
    expect(patch.metadata.name).toBe('argocd-cm');
    expect(Object.keys(patch.data).sort()).toEqual([INVESTIGATION_KEY, POLICY_KEY]);
    expect(patch.data[INVESTIGATION_KEY]).toBe(investigationLua);
    expect(patch.data[POLICY_KEY]).toBe(policyLua);
  });

  test('is byte-for-byte what the generator writes', () => {
    expect(readFileSync(PATCH_PATH, 'utf8')).toBe(expected);
  });

  test('the kustomize component maps the same files to the same keys', () => {
    const component = parse(readFileSync(`${ARGOCD}kustomization.yaml`, 'utf8')) as { kind: string; configMapGenerator: { name: string; behavior: string; files: string[] }[] };
    expect(component.kind).toBe('Component');
    const generator = component.configMapGenerator.find((g) => g.name === 'argocd-cm');
    expect(generator?.behavior).toBe('merge');
    expect(generator?.files.sort()).toEqual([
      `${INVESTIGATION_KEY}=casefile.dev/Investigation/health.lua`,
      `${POLICY_KEY}=casefile.dev/ResponsePolicy/health.lua`,
    ]);
  });
});
