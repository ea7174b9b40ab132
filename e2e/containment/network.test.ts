// End-to-end tests of network containment: the incident label on the suspect pod alone, the deny-all
// policy selecting only that label, other allowing policies neutralised and restored byte for byte,
// two cases on one pod, refused input, and release by spec.release or by deleting the Investigation.
// Traffic is measured, not inferred: TCP from a client pod to the suspect and its sibling, and the
// suspect's own egress verdicts from its log (the tests never exec in the suspect).
import { beforeAll, describe, expect, test } from '@jest/globals';
import { createTestNamespace, registerCleanup, useCleanup, waitFor } from '../support/cluster.js';
import {
  caseDirOf,
  conditionOf,
  createInvestigation,
  deleteInvestigation,
  deployOperator,
  ensureEvidenceReader,
  getInvestigation,
  investigationStatusCode,
  kubectlRun,
  listCaseFiles,
  readEvidence,
  waitForCondition,
  type Investigation,
} from '../operator/support.js';
import {
  connects,
  egressLog,
  ENFORCEMENT_WINDOW_MS,
  expectCaseVerifies,
  expectConnectsThroughout,
  incidentKey,
  networking,
  podLabels,
  policyName,
  readPolicy,
  requestRelease,
  startClient,
  startEchoServer,
  startWeb,
  TEST_TIMEOUT_MS,
  until,
  waitConnects,
  waitEgress,
  waitForConditionObserved,
  type WebPods,
} from './helpers.js';

useCleanup();

interface Setup {
  ns: string;
  web: WebPods;
  suspectIP: string;
  siblingIP: string;
}

/** Namespace, echo server, client and the web Deployment; asserts the baseline (everything connects). */
async function setup(prefix: string, before?: (ns: string) => Promise<void>): Promise<Setup> {
  const ns = await createTestNamespace(prefix);
  if (before) await before(ns);
  const echoIP = await startEchoServer(ns);
  await startClient(ns);
  const web = await startWeb(ns, echoIP);
  const suspectIP = web.suspect.status!.podIP!;
  const siblingIP = web.sibling.status!.podIP!;
  // Baseline: the servers take a moment to listen after the container starts.
  await waitConnects(ns, 'suspect', suspectIP, true, 30_000);
  await waitConnects(ns, 'sibling', siblingIP, true, 30_000);
  await waitEgress(ns, web.suspect.metadata!.name!, 'open', 0, 30_000);
  return { ns, web, suspectIP, siblingIP };
}

function isolateSpec(pod: string, network: Record<string, unknown> = {}) {
  return {
    target: { pod },
    alert: { source: 'manual' },
    containment: { order: 'ContainFirst', network: { isolate: true, verify: true, ...network } },
  };
}

/** The sibling carries no incident label of any Investigation. */
async function expectNoIncidentLabel(ns: string, pod: string): Promise<void> {
  const labels = await podLabels(ns, pod);
  expect({ pod, incidentLabels: Object.keys(labels).filter((k) => k.startsWith('casefile.dev/incident')) }).toEqual({ pod, incidentLabels: [] });
}

/** The incident label is off the pod and the Investigation's policy is gone. */
async function expectLiftedFor(ns: string, pod: string, inv: Investigation): Promise<void> {
  expect((await podLabels(ns, pod))[incidentKey(inv)]).toBeUndefined();
  expect(await readPolicy(ns, policyName(inv))).toBeUndefined();
}

/** `kubectl get networkpolicy -o json`, parsed. */
async function policyJSON(ns: string, name: string): Promise<{ metadata: { labels?: unknown; annotations?: unknown }; spec: unknown }> {
  const r = await kubectlRun(['-n', ns, 'get', 'networkpolicy', name, '-o', 'json']);
  if (r.exitCode !== 0) throw new Error(`kubectl get networkpolicy ${name} exited ${r.exitCode}: ${r.stderr.trim()}`);
  return JSON.parse(r.stdout) as { metadata: { labels?: unknown; annotations?: unknown }; spec: unknown };
}

/** The parts of a policy a restore must give back exactly, as JSON strings. */
function restorable(p: { metadata: { labels?: unknown; annotations?: unknown }; spec: unknown }) {
  return { spec: JSON.stringify(p.spec), labels: JSON.stringify(p.metadata.labels ?? null), annotations: JSON.stringify(p.metadata.annotations ?? null) };
}

describe('network containment', () => {
  beforeAll(async () => {
    await deployOperator();
    await ensureEvidenceReader();
  }, 300_000);

  test(
    'isolation cuts the suspect off in both directions, never its sibling, and release restores traffic',
    async () => {
      const { ns, web, suspectIP, siblingIP } = await setup('cn-isolate');
      const suspect = web.suspect.metadata!.name!;
      const sibling = web.sibling.metadata!.name!;

      await createInvestigation(ns, 'isolate', isolateSpec(suspect));
      const { inv, observedAt } = await waitForConditionObserved(ns, 'isolate', 'NetworkIsolated', 'True', 150_000);
      const linesAtIsolation = (await egressLog(ns, suspect)).length;
      const deadline = observedAt + ENFORCEMENT_WINDOW_MS;
      await Promise.all([
        waitConnects(ns, 'suspect', suspectIP, false, until(deadline)),
        waitEgress(ns, suspect, 'blocked', linesAtIsolation, until(deadline)),
      ]);
      // The sibling replica is never blocked (one attempt, inside the same window).
      expect({ sibling: await connects(ns, siblingIP), within: Date.now() <= deadline }).toEqual({ sibling: true, within: true });

      // Labels and the policy: the suspect alone, by a label only this Investigation uses.
      const key = incidentKey(inv);
      expect((await podLabels(ns, suspect))[key]).toBe('isolated');
      await expectNoIncidentLabel(ns, sibling);
      const policy = await readPolicy(ns, policyName(inv));
      expect(policy).toBeDefined();
      expect(policy!.spec?.podSelector).toEqual({ matchLabels: { [key]: 'isolated' } });
      expect([...(policy!.spec?.policyTypes ?? [])].sort()).toEqual(['Egress', 'Ingress']);
      expect(policy!.spec?.ingress ?? []).toEqual([]);
      expect(policy!.spec?.egress ?? []).toEqual([]);

      const isolated = conditionOf(inv, 'NetworkIsolated')!;
      expect(isolated.reason).toBe('Isolated');
      expect(isolated.message).toContain('enforcement verified');
      expect(inv.status?.containment?.label).toBe(`${key}=isolated`);
      expect(inv.status?.containment?.networkPolicy).toBe(policyName(inv));
      expect(inv.status?.containment?.verification?.blocked).toBe(true);
      // Verified on the suspect itself (its own network namespace), with both controls connecting.
      const verification = inv.status!.containment!.verification!;
      expect(verification.method).toContain("suspect's own network namespace");
      const seen = (verification.details ?? []).join('\n');
      expect(seen).toContain('answered on 127.0.0.1');
      expect(seen).toMatch(/egress from the suspect's network namespace .*: blocked .*; control \(the operator to the same address\): open/);
      expect(seen).toMatch(/ingress to a listener in the suspect's network namespace .*: blocked .*; control \(the operator to .*, not isolated\): open/);
      expect(inv.status?.containment?.patchedPolicies ?? []).toEqual([]);

      // The isolation holds while the case completes.
      const sealed = await waitForCondition(ns, 'isolate', 'Ready', 'True', 150_000);
      expect(sealed.status?.phase).toBe('Contained');
      await expectConnectsThroughout(ns, 'suspect', suspectIP, false, 3_000);
      const verdicts = await egressLog(ns, suspect);
      const firstBlocked = verdicts.indexOf('blocked', linesAtIsolation);
      expect(firstBlocked).toBeGreaterThanOrEqual(0);
      expect({ afterFirstBlocked: [...new Set(verdicts.slice(firstBlocked))] }).toEqual({ afterFirstBlocked: ['blocked'] });
      expect(await connects(ns, siblingIP)).toBe(true);

      // Release.
      await requestRelease(ns, 'isolate');
      const released = await waitForConditionObserved(ns, 'isolate', 'Released', 'True', 120_000);
      const linesAtRelease = (await egressLog(ns, suspect)).length;
      const releaseDeadline = released.observedAt + ENFORCEMENT_WINDOW_MS;
      await Promise.all([
        waitConnects(ns, 'suspect', suspectIP, true, until(releaseDeadline)),
        waitEgress(ns, suspect, 'open', linesAtRelease, until(releaseDeadline)),
      ]);
      await expectLiftedFor(ns, suspect, inv);
      expect(released.inv.status?.containment?.released?.at).toEqual(expect.any(String));
      const after = await waitFor(`Investigation ${ns}/isolate phase Released`, () => getInvestigation(ns, 'isolate'), {
        timeoutMs: 30_000,
        until: (i) => i.status?.phase === 'Released',
      });
      expect(conditionOf(after, 'Released')?.status).toBe('True');
      await expectCaseVerifies(caseDirOf(after));
    },
    TEST_TIMEOUT_MS,
  );

  test(
    'an allow-all ingress policy does not leak while isolated and is restored byte for byte',
    async () => {
      let original: ReturnType<typeof restorable> | undefined;
      const { ns, web, suspectIP, siblingIP } = await setup('cn-allowall', async (namespace) => {
        const created = await kubectlRun(
          ['-n', namespace, 'create', '-f', '-'],
          JSON.stringify({
            apiVersion: 'networking.k8s.io/v1',
            kind: 'NetworkPolicy',
            metadata: { name: 'allow-all', labels: { team: 'web' }, annotations: { 'example.com/owner': 'platform' } },
            spec: { podSelector: {}, ingress: [{}], policyTypes: ['Ingress'] },
          }),
        );
        expect({ exitCode: created.exitCode, stderr: created.stderr }).toEqual({ exitCode: 0, stderr: '' });
        original = restorable(await policyJSON(namespace, 'allow-all'));
      });
      const suspect = web.suspect.metadata!.name!;

      await createInvestigation(ns, 'allowall', isolateSpec(suspect));
      const { inv, observedAt } = await waitForConditionObserved(ns, 'allowall', 'NetworkIsolated', 'True', 150_000);
      await waitConnects(ns, 'suspect', suspectIP, false, until(observedAt + ENFORCEMENT_WINDOW_MS));
      // No leak through the allow-all, sustained; the sibling is still let in by it.
      await expectConnectsThroughout(ns, 'suspect', suspectIP, false, 4_000);
      expect(await connects(ns, siblingIP)).toBe(true);

      const key = incidentKey(inv);
      expect((inv.status?.containment?.patchedPolicies ?? []).map((p) => p.name)).toEqual(['allow-all']);
      const during = await policyJSON(ns, 'allow-all');
      const selector = (during.spec as { podSelector?: { matchExpressions?: unknown[] } }).podSelector;
      expect(selector?.matchExpressions).toEqual([{ key, operator: 'DoesNotExist' }]);

      await waitForCondition(ns, 'allowall', 'Ready', 'True', 150_000);
      await requestRelease(ns, 'allowall');
      const released = await waitForConditionObserved(ns, 'allowall', 'Released', 'True', 120_000);
      await waitConnects(ns, 'suspect', suspectIP, true, until(released.observedAt + ENFORCEMENT_WINDOW_MS));
      expect(restorable(await policyJSON(ns, 'allow-all'))).toEqual(original);
      await expectLiftedFor(ns, suspect, inv);

      const caseDir = caseDirOf(released.inv);
      // Saved under kind/namespace/name.uid: two objects can never share a file.
      const uid = (await networking.readNamespacedNetworkPolicy({ name: 'allow-all', namespace: ns })).metadata!.uid!;
      const savedAs = `containment/originals/NetworkPolicy/${ns}/allow-all.${uid}.yaml`;
      expect(await listCaseFiles(caseDir)).toContain(savedAs);
      expect(await readEvidence(`${caseDir}/${savedAs}`)).toContain('name: allow-all');
      await expectCaseVerifies(caseDir);
    },
    TEST_TIMEOUT_MS,
  );

  test(
    'two Investigations on one pod: releasing one leaves the other isolation in force',
    async () => {
      const { ns, web, suspectIP } = await setup('cn-two');
      const suspect = web.suspect.metadata!.name!;

      await createInvestigation(ns, 'case-a', isolateSpec(suspect, { verify: false }));
      await createInvestigation(ns, 'case-b', isolateSpec(suspect, { verify: false }));
      const a = (await waitForConditionObserved(ns, 'case-a', 'NetworkIsolated', 'True', 150_000)).inv;
      const b = (await waitForConditionObserved(ns, 'case-b', 'NetworkIsolated', 'True', 150_000)).inv;
      expect(incidentKey(a)).not.toBe(incidentKey(b));
      const labels = await podLabels(ns, suspect);
      expect({ a: labels[incidentKey(a)], b: labels[incidentKey(b)] }).toEqual({ a: 'isolated', b: 'isolated' });
      await waitConnects(ns, 'suspect', suspectIP, false, ENFORCEMENT_WINDOW_MS);

      await waitForCondition(ns, 'case-a', 'Ready', 'True', 150_000);
      await waitForCondition(ns, 'case-b', 'Ready', 'True', 150_000);

      // Release A: B's label and policy keep the pod isolated.
      await requestRelease(ns, 'case-a');
      await waitForConditionObserved(ns, 'case-a', 'Released', 'True', 120_000);
      await expectLiftedFor(ns, suspect, a);
      expect((await podLabels(ns, suspect))[incidentKey(b)]).toBe('isolated');
      expect((await readPolicy(ns, policyName(b)))?.spec?.podSelector).toEqual({ matchLabels: { [incidentKey(b)]: 'isolated' } });
      await expectConnectsThroughout(ns, 'suspect', suspectIP, false, 5_000);

      // Release B: traffic flows again.
      await requestRelease(ns, 'case-b');
      const released = await waitForConditionObserved(ns, 'case-b', 'Released', 'True', 120_000);
      await waitConnects(ns, 'suspect', suspectIP, true, until(released.observedAt + ENFORCEMENT_WINDOW_MS));
      await expectLiftedFor(ns, suspect, b);
    },
    TEST_TIMEOUT_MS,
  );

  test(
    'bad input is refused by the API server: an invalid CIDR, and spec.release going back to false',
    async () => {
      const ns = await createTestNamespace('cn-refuse');
      const manifest = (name: string, spec: string) =>
        `apiVersion: casefile.dev/v1alpha1\nkind: Investigation\nmetadata:\n  name: ${name}\n  namespace: ${ns}\nspec:\n${spec}`;

      const badCIDR = await kubectlRun(
        ['apply', '-f', '-'],
        manifest('bad-cidr', '  target:\n    pod: web\n  containment:\n    network:\n      isolate: true\n      allowCIDRs: ["not-a-cidr"]\n'),
      );
      expect(badCIDR.exitCode).not.toBe(0);
      expect(badCIDR.stderr).toContain('CIDR');
      expect(await investigationStatusCode(ns, 'bad-cidr')).toBe(404);

      // An Investigation whose release was requested (no target pod: nothing is contained, nothing to wait for).
      const created = await kubectlRun(['apply', '-f', '-'], manifest('released', '  target:\n    pod: no-such-pod\n  release: false\n'));
      expect({ exitCode: created.exitCode, stderr: created.stderr }).toEqual({ exitCode: 0, stderr: '' });
      await requestRelease(ns, 'released');

      const back = await kubectlRun(['-n', ns, 'patch', 'investigation', 'released', '--type', 'merge', '-p', '{"spec":{"release":false}}']);
      expect(back.exitCode).not.toBe(0);
      expect(back.stderr).toContain('spec.release');
      // Removing the field is the same request in disguise (it defaults to false).
      const removed = await kubectlRun(['-n', ns, 'patch', 'investigation', 'released', '--type', 'json', '-p', '[{"op":"remove","path":"/spec/release"}]']);
      expect(removed.exitCode).not.toBe(0);
      expect(removed.stderr).toContain('spec.release');
      expect((await getInvestigation(ns, 'released')).spec).toMatchObject({ release: true });
    },
    TEST_TIMEOUT_MS,
  );

  test(
    'deleting an Investigation (as a GitOps tool would) lifts isolation and keeps the evidence',
    async () => {
      const { ns, web, suspectIP } = await setup('cn-delete');
      const suspect = web.suspect.metadata!.name!;

      await createInvestigation(ns, 'gitops', isolateSpec(suspect, { verify: false }));
      const { inv } = await waitForConditionObserved(ns, 'gitops', 'NetworkIsolated', 'True', 150_000);
      await waitConnects(ns, 'suspect', suspectIP, false, ENFORCEMENT_WINDOW_MS);
      const sealed = await waitForCondition(ns, 'gitops', 'Ready', 'True', 150_000);
      const caseDir = caseDirOf(sealed);

      await deleteInvestigation(ns, 'gitops');
      await waitFor(`Investigation ${ns}/gitops to be gone`, () => investigationStatusCode(ns, 'gitops'), {
        timeoutMs: 60_000,
        intervalMs: 500,
        until: (code) => code === 404,
      });
      await expectLiftedFor(ns, suspect, inv);
      await waitConnects(ns, 'suspect', suspectIP, true, ENFORCEMENT_WINDOW_MS);

      // The release was recorded in the case file's custody chain.
      const custody = (await readEvidence(`${caseDir}/custody.jsonl`))
        .split('\n')
        .filter(Boolean)
        .map((l) => JSON.parse(l) as { action: string });
      expect(custody.map((r) => r.action)).toContain('released');
      await expectCaseVerifies(caseDir);
      // Nothing else in the namespace still refers to the case.
      const policies = await networking.listNamespacedNetworkPolicy({ namespace: ns });
      expect(policies.items.map((p) => p.metadata?.name)).toEqual([]);
    },
    TEST_TIMEOUT_MS,
  );

  test(
    'a probe that cannot run never says Isolated: ephemeral containers refused gives VerificationInconclusive, the policy still in place',
    async () => {
      const vap = `casefile-e2e-no-ephemeral-${Date.now().toString(36)}`;
      const { ns, web } = await setup('cn-inconclusive', async (namespace) => {
        // An admission policy of this namespace alone refusing every ephemeral container.
        const body = [
          {
            apiVersion: 'admissionregistration.k8s.io/v1',
            kind: 'ValidatingAdmissionPolicy',
            metadata: { name: vap },
            spec: {
              failurePolicy: 'Fail',
              matchConstraints: { resourceRules: [{ apiGroups: [''], apiVersions: ['v1'], operations: ['UPDATE'], resources: ['pods/ephemeralcontainers'] }] },
              validations: [{ expression: 'false', message: 'no ephemeral containers in this namespace (e2e)' }],
            },
          },
          {
            apiVersion: 'admissionregistration.k8s.io/v1',
            kind: 'ValidatingAdmissionPolicyBinding',
            metadata: { name: vap },
            spec: { policyName: vap, validationActions: ['Deny'], matchResources: { namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': namespace } } } },
          },
        ];
        registerCleanup(`delete ValidatingAdmissionPolicy ${vap}`, async () => {
          await kubectlRun(['delete', 'validatingadmissionpolicybinding,validatingadmissionpolicy', vap, '--ignore-not-found']);
        });
        const created = await kubectlRun(['create', '-f', '-'], JSON.stringify({ apiVersion: 'v1', kind: 'List', items: body }));
        expect({ exitCode: created.exitCode, stderr: created.stderr }).toEqual({ exitCode: 0, stderr: '' });
      });
      const suspect = web.suspect.metadata!.name!;
      await createInvestigation(ns, 'refused', isolateSpec(suspect));
      const { inv } = await waitForConditionObserved(ns, 'refused', 'NetworkIsolated', 'False', 150_000);
      const isolated = conditionOf(inv, 'NetworkIsolated')!;
      expect(isolated.reason).toBe('VerificationInconclusive');
      expect(isolated.message).toContain('no ephemeral containers in this namespace');
      expect(inv.status?.containment?.verification?.blocked).toBe(false);
      // The containment itself stands: label and deny-all are in place.
      expect((await podLabels(ns, suspect))[incidentKey(inv)]).toBe('isolated');
      expect(await readPolicy(ns, policyName(inv))).toBeDefined();
    },
    TEST_TIMEOUT_MS,
  );
});
