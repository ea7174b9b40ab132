// ScopeMapped's answer to "who can act as this pod's ServiceAccount": the account itself, the user
// name it authenticates as, and the three groups every ServiceAccount token carries. A group left out
// here would hide every permission granted through it from the scope report.
import { describe, expect, test } from '@jest/globals';
import type { RbacV1Subject } from '@kubernetes/client-node';
import type { PhaseContext } from '../../../src/phases/phase.js';
import { accessChecks, reviewAccess, subjectReachesServiceAccount } from '../../../src/phases/scope-mapped.js';

const NS = 'shop';
const SA = 'checkout';

describe('subjectReachesServiceAccount', () => {
  test.each<[string, RbacV1Subject, boolean]>([
    ['the ServiceAccount, namespace given', { kind: 'ServiceAccount', name: SA, namespace: NS }, true],
    ['the ServiceAccount, namespace taken from the binding', { kind: 'ServiceAccount', name: SA }, true],
    ['a ServiceAccount of the same name elsewhere', { kind: 'ServiceAccount', name: SA, namespace: 'other' }, false],
    ['another ServiceAccount', { kind: 'ServiceAccount', name: 'default', namespace: NS }, false],
    ['every ServiceAccount', { kind: 'Group', name: 'system:serviceaccounts' }, true],
    ['every ServiceAccount of the namespace', { kind: 'Group', name: `system:serviceaccounts:${NS}` }, true],
    ['every authenticated identity', { kind: 'Group', name: 'system:authenticated' }, true],
    ['the ServiceAccounts of another namespace', { kind: 'Group', name: 'system:serviceaccounts:other' }, false],
    ['anonymous requests', { kind: 'Group', name: 'system:unauthenticated' }, false],
    ['its user name', { kind: 'User', name: `system:serviceaccount:${NS}:${SA}` }, true],
    ['a human user', { kind: 'User', name: 'alice' }, false],
    ['a subject of unknown kind', { kind: 'Robot', name: SA }, false],
  ])('%s: %s', (_what, subject, reaches) => {
    expect(subjectReachesServiceAccount(subject, NS, SA)).toBe(reaches);
  });
});

describe('reviewAccess', () => {
  test('asks the API server about the ServiceAccount with all three of its groups, per check', async () => {
    const specs: Record<string, unknown>[] = [];
    const ctx = {
      kube: {
        authz: {
          createSubjectAccessReview: async ({ body }: { body: { spec: Record<string, unknown> } }) => {
            specs.push(body.spec);
            return { status: { allowed: specs.length === 1, reason: specs.length === 1 ? 'RBAC: allowed' : '' } };
          },
        },
      },
    } as unknown as PhaseContext;
    const answers = await reviewAccess(ctx, NS, SA);
    expect(specs).toHaveLength(accessChecks.length);
    for (const spec of specs) {
      expect(spec.user).toBe(`system:serviceaccount:${NS}:${SA}`);
      expect(spec.groups).toEqual(['system:serviceaccounts', `system:serviceaccounts:${NS}`, 'system:authenticated']);
    }
    expect(answers[0]).toEqual({ verb: 'get', group: '', resource: 'secrets', subresource: undefined, namespace: NS, allowed: true, reason: 'RBAC: allowed' });
    expect(answers.find((a) => a.subresource === 'exec')).toMatchObject({ verb: 'create', resource: 'pods', allowed: false });
    expect(answers.find((a) => a.resource === 'nodes')).toMatchObject({ namespace: undefined });
  });
});
