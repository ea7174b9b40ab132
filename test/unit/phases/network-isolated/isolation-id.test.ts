// Which id a case's policy and label go by: adoption of containment made ahead trusts only the claim
// the operator wrote on the policy (the case's UID), never the Investigation's own annotation.
import { describe, expect, test } from '@jest/globals';
import type { V1NetworkPolicy } from '@kubernetes/client-node';
import type { Investigation, InvestigationStatus } from '../../../../src/api/investigation.js';
import { RequeueAfter } from '../../../../src/errors.js';
import type { Kube } from '../../../../src/kube/client.js';
import { resolveIsolationId } from '../../../../src/phases/network-isolated/isolation-id.js';

const UID = '0a1b2c3d-0000-1111-2222-333344445555';
const CREATED = '2026-12-04T10:00:00Z';
const T0 = Date.parse(CREATED);

function investigation(annotations: Record<string, string> = {}): Investigation {
  return { apiVersion: 'casefile.dev/v1alpha1', kind: 'Investigation', metadata: { name: 'case-1', namespace: 'shop', uid: UID, creationTimestamp: CREATED as never, annotations }, spec: {} };
}

function policy(name: string, uid: string | undefined, ahead?: string): V1NetworkPolicy {
  return {
    metadata: {
      name,
      labels: { 'app.kubernetes.io/managed-by': 'casefile', ...(ahead ? { 'casefile.dev/isolated-ahead': ahead } : {}) },
      annotations: uid ? { 'casefile.dev/investigation-uid': uid } : {},
    },
  };
}

function kube(items: V1NetworkPolicy[]): Kube & { selectors: string[] } {
  const selectors: string[] = [];
  return {
    selectors,
    networking: {
      listNamespacedNetworkPolicy: async (p: { namespace: string; labelSelector: string }) => {
        selectors.push(`${p.namespace}:${p.labelSelector}`);
        return { items };
      },
    },
  } as unknown as Kube & { selectors: string[] };
}

describe('resolveIsolationId', () => {
  test('a case nobody isolated ahead goes by its UID prefix', async () => {
    const k = kube([]);
    expect(await resolveIsolationId(k, investigation(), undefined, undefined, T0)).toBe('0a1b2c3d');
    expect(k.selectors).toEqual(['shop:app.kubernetes.io/managed-by=casefile']);
  });

  test('what status recorded wins, without a read', async () => {
    const k = kube([]);
    const status = { containment: { label: 'casefile.dev/incident-feedc0de=isolated' } } as InvestigationStatus;
    expect(await resolveIsolationId(k, investigation(), status, undefined, T0)).toBe('feedc0de');
    expect(k.selectors).toEqual([]);
  });

  test('the policy intake made ahead and claimed for this UID', async () => {
    const k = kube([policy('casefile-aaaa0000', 'another-uid', 'aaaa0000'), policy('casefile-feedc0de', UID, 'feedc0de')]);
    expect(await resolveIsolationId(k, investigation({ 'casefile.dev/isolated-ahead': 'feedc0de' }), undefined, undefined, T0)).toBe('feedc0de');
  });

  test('while the claim may still come, the case waits for it; after the wait, or with no annotation, it goes by its UID', async () => {
    const k = kube([policy('casefile-feedc0de', undefined, 'feedc0de')]);
    const inv = investigation({ 'casefile.dev/isolated-ahead': 'feedc0de' });
    await expect(resolveIsolationId(k, inv, undefined, undefined, T0 + 1000)).rejects.toBeInstanceOf(RequeueAfter);
    expect(await resolveIsolationId(k, inv, undefined, undefined, T0 + 60_000)).toBe('0a1b2c3d');
    expect(await resolveIsolationId(k, investigation(), undefined, undefined, T0 + 1000)).toBe('0a1b2c3d');
  });

  test("a look-alike annotated with another case's id gets only its own: that policy is claimed for another UID", async () => {
    const k = kube([policy('casefile-feedc0de', 'the-real-case', 'feedc0de')]);
    expect(await resolveIsolationId(k, investigation({ 'casefile.dev/isolated-ahead': 'feedc0de' }), undefined, undefined, T0 + 60_000)).toBe('0a1b2c3d');
  });

  test('the case\'s own policy (made by the lane after intake declined) is found by its claim', async () => {
    const k = kube([policy('casefile-0a1b2c3d', UID)]);
    expect(await resolveIsolationId(k, investigation({ 'casefile.dev/isolated-ahead': 'feedc0de' }), undefined, undefined, T0 + 1000)).toBe('0a1b2c3d');
  });
});
