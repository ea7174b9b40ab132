// What casefile adds to a suspect's pod and node, checked field by field: these are the privileges a
// reviewer must be able to justify, so a change to them must be deliberate.
import { describe, expect, test } from '@jest/globals';
import type { Finding } from '../../../src/api/investigation.js';
import { DEBUG_CAPABILITIES } from '../../../src/phases/casefile-containers.js';
import { debugContainerSpec } from '../../../src/phases/debug-container-launched.js';
import { bareContainerID } from '../../../src/kube/container-id.js';
import { mergeFindings, MAX_STATUS_FINDINGS } from '../../../src/phases/collector-run.js';
import { collectorCommand, declaredPorts } from '../../../src/phases/live-state-captured.js';
import { nodeCollectorPod } from '../../../src/phases/node-state-captured.js';

describe('the debug container', () => {
  const spec = debugContainerSpec('casefile-debug-1234abcd', 'debug:1', 'app', 120);

  test('targets the suspect container and idles for a bounded time', () => {
    expect(spec).toMatchObject({ name: 'casefile-debug-1234abcd', image: 'debug:1', targetContainerName: 'app', stdin: false, tty: false });
    expect(spec.command).toEqual(['/bin/sleep', '720']);
  });

  test('has only the capabilities to read /proc of any user, nothing else', () => {
    expect(DEBUG_CAPABILITIES).toEqual(['SYS_PTRACE', 'DAC_READ_SEARCH']);
    expect(spec.securityContext).toMatchObject({
      privileged: false,
      allowPrivilegeEscalation: false,
      readOnlyRootFilesystem: true,
      capabilities: { drop: ['ALL'], add: ['SYS_PTRACE', 'DAC_READ_SEARCH'] },
    });
  });
});

describe('the node collector pod', () => {
  const pod = nodeCollectorPod({ name: 'casefile-node-1-1', namespace: 'casefile-collectors', node: 'n1', image: 'debug:1', timeoutSeconds: 60, runtimeDirs: ['/run/containerd', '/var/lib/containerd'], investigation: { name: 'i', namespace: 'prod', uid: 'u-1' } });

  test('is pinned to the node (cordoned or not), host PID, and mounts the host read-only', () => {
    expect(pod.spec).toMatchObject({ nodeName: 'n1', hostPID: true, restartPolicy: 'Never', automountServiceAccountToken: false, activeDeadlineSeconds: 660 });
    expect(pod.spec?.tolerations).toEqual([{ operator: 'Exists' }]);
    const mounts = pod.spec!.containers[0]!.volumeMounts!;
    expect(mounts.every((m) => m.readOnly === true)).toBe(true);
    expect(pod.spec!.volumes!.map((v) => v.hostPath?.path)).toEqual(['/proc', '/run/containerd', '/var/lib/containerd']);
    expect(mounts.map((m) => m.mountPath)).toEqual(['/host/proc', '/host/run/containerd', '/host/var/lib/containerd']);
    expect(pod.spec!.containers[0]!.securityContext).toMatchObject({ privileged: false, readOnlyRootFilesystem: true, capabilities: { drop: ['ALL'] } });
  });
});

describe('collector arguments', () => {
  test('argv only, every value its own element', () => {
    const argv = collectorCommand({ containerID: 'abc', paths: ['/tmp', '/dev/shm'], maxFileBytes: 10, walkSeconds: 30, redactEnvironment: true, memoryScope: 'Anonymous', memoryMaxBytes: 4096, declaredPorts: ['tcp/8080'], clusterCIDRs: ['10.0.0.0/8'] });
    expect(argv).toEqual([
      '/usr/bin/node', '/app/dist/live/collector-cli.js', 'live',
      '--container-id', 'abc', '--paths', '/tmp,/dev/shm', '--max-file-bytes', '10', '--walk-seconds', '30', '--redact-environment',
      '--memory-scope', 'Anonymous', '--memory-max-bytes', '4096',
      '--declared-ports', 'tcp/8080', '--cluster-cidrs', '10.0.0.0/8',
    ]);
  });

  test('container IDs lose their runtime scheme', () => {
    expect(bareContainerID('containerd://3f2a9c')).toBe('3f2a9c');
    expect(bareContainerID('cri-o://ab')).toBe('ab');
    expect(bareContainerID(undefined)).toBe('');
  });

  test('declared ports come from every container, by protocol', () => {
    const ports = declaredPorts({
      spec: {
        containers: [
          { name: 'a', ports: [{ containerPort: 8080 }, { containerPort: 53, protocol: 'UDP' }] },
          { name: 'b', ports: [{ containerPort: 8080, protocol: 'TCP' }] },
        ],
      },
    });
    expect(ports).toEqual(['tcp/8080', 'udp/53']);
  });
});

describe('mergeFindings', () => {
  const f = (severity: Finding['severity'], n: number): Finding => ({ severity, kind: `k${n}`, summary: `s${n}`, artifact: 'live/findings.json' });

  test('most severe first, no duplicates, bounded', () => {
    const merged = mergeFindings([f('low', 1)], [f('critical', 2), f('low', 1), f('high', 3)]);
    expect(merged.map((x) => x.kind)).toEqual(['k2', 'k3', 'k1']);
    const many = mergeFindings([], Array.from({ length: 50 }, (_, i) => f('medium', i)));
    expect(many).toHaveLength(MAX_STATUS_FINDINGS);
  });

  test('drops malformed entries from a collector', () => {
    expect(mergeFindings([], [{ severity: 'bogus', kind: 'x', summary: 'y', artifact: 'z' } as unknown as Finding])).toEqual([]);
  });
});
