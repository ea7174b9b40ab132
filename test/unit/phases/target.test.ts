import type { V1Pod } from '@kubernetes/client-node';
import { selectorMatches } from '../../../src/kube/selectors.js';
import { subjectReachesServiceAccount } from '../../../src/phases/scope-mapped.js';
import { alertContainerHints, chooseContainer } from '../../../src/phases/shared/container-choice.js';

const pod: V1Pod = {
  metadata: { name: 'web-1' },
  spec: { initContainers: [{ name: 'init' }], containers: [{ name: 'app' }, { name: 'sidecar' }] },
  status: {
    containerStatuses: [
      { name: 'app', containerID: 'containerd://3f2a9c1e7b44aaaa', image: 'x', imageID: 'sha256:1', ready: true, restartCount: 0 },
      { name: 'sidecar', containerID: 'containerd://ee97d9c4186fbbbb', image: 'y', imageID: 'sha256:2', ready: true, restartCount: 0 },
    ],
  },
};

describe('choosing the suspect container', () => {
  test('the spec wins, and an unknown name lists the real ones', () => {
    expect(chooseContainer(pod, 'sidecar', { containerID: '3f2a9c1e7b44' })).toMatchObject({ name: 'sidecar' });
    expect(chooseContainer(pod, 'nope', {})).toEqual({ error: expect.stringContaining('init, app, sidecar') });
  });

  test("the alert's 12-character container.id picks the container that ran it", () => {
    const hints = alertContainerHints(JSON.stringify({ output_fields: { 'container.id': 'ee97d9c4186f', 'container.name': 'app' } }));
    expect(chooseContainer(pod, undefined, hints)).toMatchObject({ name: 'sidecar', how: expect.stringContaining('container.id') });
  });

  test('host alerts and missing fields fall back to the first app container, saying so', () => {
    const hints = alertContainerHints(JSON.stringify({ output_fields: { 'container.id': 'host', 'k8s.pod.name': null } }));
    expect(hints).toEqual({ containerID: undefined, containerName: undefined });
    expect(chooseContainer(pod, undefined, hints)).toMatchObject({ name: 'app', how: expect.stringContaining('first app container') });
    expect(alertContainerHints('13:44:05 Critical plain text output')).toEqual({});
  });
});

describe('who reaches a ServiceAccount', () => {
  test.each([
    [{ kind: 'ServiceAccount', name: 'web', namespace: 'shop' }, true],
    [{ kind: 'ServiceAccount', name: 'web', namespace: 'other' }, false],
    [{ kind: 'Group', name: 'system:serviceaccounts:shop' }, true],
    [{ kind: 'Group', name: 'system:serviceaccounts' }, true],
    [{ kind: 'Group', name: 'system:serviceaccounts:other' }, false],
    [{ kind: 'User', name: 'system:serviceaccount:shop:web' }, true],
    [{ kind: 'User', name: 'alice' }, false],
  ])('%j -> %s', (subject, expected) => expect(subjectReachesServiceAccount(subject, 'shop', 'web')).toBe(expected));
});

describe('label selectors', () => {
  const labels = { app: 'web', 'casefile.dev/incident': 'abc' };
  test('matchLabels and every operator', () => {
    expect(selectorMatches({}, labels)).toBe(true);
    expect(selectorMatches(undefined, labels)).toBe(false);
    expect(selectorMatches({ matchLabels: { app: 'web' } }, labels)).toBe(true);
    expect(selectorMatches({ matchLabels: { app: 'db' } }, labels)).toBe(false);
    expect(selectorMatches({ matchExpressions: [{ key: 'app', operator: 'In', values: ['web', 'api'] }] }, labels)).toBe(true);
    expect(selectorMatches({ matchExpressions: [{ key: 'casefile.dev/incident', operator: 'DoesNotExist' }] }, labels)).toBe(false);
    expect(selectorMatches({ matchExpressions: [{ key: 'casefile.dev/incident', operator: 'NotIn', values: ['abc'] }] }, labels)).toBe(false);
    expect(selectorMatches({ matchExpressions: [{ key: 'tier', operator: 'Exists' }] }, labels)).toBe(false);
  });
});
