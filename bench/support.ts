// What every benchmark needs: API clients for the cluster KUBECONFIG points at, kubectl, the
// operator's memory as the kernel counts it, and percentiles.
import { execFileSync } from 'node:child_process';
import { CoreV1Api, CustomObjectsApi, KubeConfig } from '@kubernetes/client-node';

export const kc = new KubeConfig();
kc.loadFromDefault();
export const core = kc.makeApiClient(CoreV1Api);
export const custom = kc.makeApiClient(CustomObjectsApi);

export function required(name: string): string {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set: run eval "$(e2e/cluster/env)" first`);
  return value;
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

export const kubectl = (...args: string[]): string =>
  execFileSync('kubectl', args, { encoding: 'utf8', stdio: ['pipe', 'pipe', 'pipe'], maxBuffer: 64 * 1024 * 1024 });

/** RSS now and its high-water mark (VmHWM) of the operator process, from /proc/1/status in its container. */
export function operatorMemory(): { peakRSSMiB: number; rssMiB: number } {
  const status = kubectl('-n', 'casefile-system', 'exec', 'deploy/casefile-operator', '-c', 'operator', '--', '/usr/bin/node', '-e',
    "process.stdout.write(require('fs').readFileSync('/proc/1/status','utf8'))");
  const kib = (key: string) => Number(new RegExp(`^${key}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? NaN);
  return { peakRSSMiB: kib('VmHWM') / 1024, rssMiB: kib('VmRSS') / 1024 };
}

/** The p-th percentile (nearest rank). */
export const pct = (xs: number[], p: number): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)]!;
};

export const seconds = (ms: number): string => `${(ms / 1000).toFixed(2)} s`;
