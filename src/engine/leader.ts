// Leader election on a coordination.k8s.io/v1 Lease with client-go leaderelection semantics. Every
// write is a replace carrying the resourceVersion that was read, so of two candidates racing for an
// expired lease the API server lets exactly one win (the other gets 409 Conflict).
//
// Safety rests on renewDeadline < leaseDuration: a leader that cannot renew gives up (onStoppedLeading)
// before its lease can expire for anyone else. An elector is single-use: after losing leadership the
// process is expected to exit, so a fresh process re-enters the election with a clean state rather
// than a half-stopped controller resuming work. Expiry is judged from the lease's renewTime, which
// assumes the replicas' clocks agree to well within leaseDuration - renewDeadline (NTP-synced nodes).
import { V1MicroTime, type V1Lease } from '@kubernetes/client-node';
import type { Logger } from 'pino';

/** The subset of client-node's CoordinationV1Api the elector uses. */
export interface LeaseApi {
  readNamespacedLease(param: { name: string; namespace: string }): Promise<V1Lease>;
  createNamespacedLease(param: { namespace: string; body: V1Lease }): Promise<V1Lease>;
  replaceNamespacedLease(param: { name: string; namespace: string; body: V1Lease }): Promise<V1Lease>;
}

export interface LeaderElectorOptions {
  api: LeaseApi;
  namespace: string;
  name: string;
  /** Unique per process (e.g. pod name plus a random suffix). */
  identity: string;
  leaseDurationSeconds?: number;
  renewDeadlineSeconds?: number;
  retryPeriodSeconds?: number;
  onStartedLeading(): void;
  /** Called once if leadership is lost; not called after stop(). The caller should exit. */
  onStoppedLeading(): void;
  log: Logger;
}

type Attempt = 'leading' | 'held' | 'failed';

function statusCode(err: unknown): number | undefined {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'number' ? code : undefined;
}

/** MicroTime: serialised with microseconds, which the API server requires for Lease times. */
function microTime(ms: number): V1MicroTime {
  return new V1MicroTime(ms);
}

/** client-node hands MicroTime fields back as strings despite the declared type. */
function timeMs(value: Date | string | undefined): number | undefined {
  if (value === undefined) return undefined;
  const ms = new Date(value).getTime();
  return Number.isNaN(ms) ? undefined : ms;
}

export class LeaderElector {
  private readonly leaseDurationMs: number;
  private readonly renewDeadlineMs: number;
  private readonly retryPeriodMs: number;
  private readonly log: Logger;
  private leading = false;
  private stopped = false;
  private running: Promise<void> | undefined;
  private sleepTimer: NodeJS.Timeout | undefined;
  private wake: (() => void) | undefined;

  constructor(private readonly opts: LeaderElectorOptions) {
    const lease = opts.leaseDurationSeconds ?? 15;
    const deadline = opts.renewDeadlineSeconds ?? 10;
    const retry = opts.retryPeriodSeconds ?? 2;
    if (!(lease > deadline && deadline > retry && retry > 0)) {
      throw new Error('leader election needs leaseDuration > renewDeadline > retryPeriod > 0');
    }
    this.leaseDurationMs = lease * 1000;
    this.renewDeadlineMs = deadline * 1000;
    this.retryPeriodMs = retry * 1000;
    this.log = opts.log.child({ lease: `${opts.namespace}/${opts.name}`, identity: opts.identity });
  }

  get isLeader(): boolean {
    return this.leading;
  }

  /** Campaigns until leading, then renews; resolves when stopped or when leadership is lost. */
  run(): Promise<void> {
    if (this.running) throw new Error('LeaderElector.run() may be called only once');
    this.running = this.campaign();
    return this.running;
  }

  /** Stops campaigning or renewing; if leading, releases the lease so a successor need not wait it out. */
  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.sleepTimer);
    this.wake?.();
    await this.running;
    if (!this.leading) return;
    this.leading = false;
    try {
      const lease = await this.opts.api.readNamespacedLease({ name: this.opts.name, namespace: this.opts.namespace });
      if (lease.spec?.holderIdentity !== this.opts.identity) return;
      await this.opts.api.replaceNamespacedLease({
        name: this.opts.name,
        namespace: this.opts.namespace,
        body: { ...lease, spec: { ...lease.spec, leaseDurationSeconds: 1, renewTime: microTime(Date.now()) } },
      });
      this.log.info('released leadership');
    } catch (err) {
      this.log.warn({ err }, 'could not release lease; a successor will wait for it to expire');
    }
  }

  private async campaign(): Promise<void> {
    let lastRenew = 0;
    while (!this.stopped) {
      const started = Date.now();
      if ((await this.attempt(this.renewDeadlineMs)) === 'leading') {
        // Set even if stop() came meanwhile: the lease is ours now and stop() must release it.
        this.leading = true;
        lastRenew = started;
        break;
      }
      await this.sleep(this.retryPeriodMs);
    }
    if (!this.leading || this.stopped) return;
    this.log.info('acquired leadership');
    this.callback('onStartedLeading');

    // The deadline counts from when the last successful write began (never later than the renewTime
    // it stored). It also bounds the sleep and each attempt, so a hung request or a slow retry cannot
    // keep us leading past it.
    const remainingMs = (): number => lastRenew + this.renewDeadlineMs - Date.now();
    while (!this.stopped) {
      await this.sleep(Math.min(this.retryPeriodMs, Math.max(0, remainingMs())));
      if (this.stopped) return;
      const started = Date.now();
      const remaining = remainingMs();
      const result = remaining > 0 ? await this.attempt(remaining) : 'failed';
      if (this.stopped) return;
      if (result === 'leading') {
        lastRenew = started;
        continue;
      }
      if (result === 'held' || Date.now() - lastRenew >= this.renewDeadlineMs) {
        this.leading = false;
        this.log.error(
          { reason: result === 'held' ? 'lease taken by another candidate' : 'renew deadline exceeded' },
          'lost leadership',
        );
        this.callback('onStoppedLeading');
        return;
      }
    }
  }

  private async attempt(timeoutMs: number): Promise<Attempt> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<Attempt>((resolve) => {
      timer = setTimeout(() => {
        this.log.warn({ timeoutMs }, 'lease request timed out');
        resolve('failed');
      }, timeoutMs);
    });
    try {
      return await Promise.race([this.tryAcquireOrRenew(), timeout]);
    } finally {
      clearTimeout(timer);
    }
  }

  private async tryAcquireOrRenew(): Promise<Attempt> {
    const { api, name, namespace, identity } = this.opts;
    const leaseDurationSeconds = this.leaseDurationMs / 1000;
    let lease: V1Lease;
    try {
      lease = await api.readNamespacedLease({ name, namespace });
    } catch (err) {
      if (statusCode(err) !== 404) {
        this.log.warn({ err }, 'reading lease failed');
        return 'failed';
      }
      const now = microTime(Date.now());
      try {
        await api.createNamespacedLease({
          namespace,
          body: {
            apiVersion: 'coordination.k8s.io/v1',
            kind: 'Lease',
            metadata: { name, namespace },
            spec: { holderIdentity: identity, leaseDurationSeconds, acquireTime: now, renewTime: now, leaseTransitions: 0 },
          },
        });
        return 'leading';
      } catch (createErr) {
        // 409: another candidate created it first.
        this.log.debug({ err: createErr }, 'creating lease failed');
        return 'failed';
      }
    }

    const spec = lease.spec ?? {};
    const ours = spec.holderIdentity === identity;
    if (!ours && spec.holderIdentity && !this.expired(spec, Date.now())) return 'held';

    const now = microTime(Date.now());
    const transitions = spec.leaseTransitions ?? 0;
    const body: V1Lease = {
      ...lease,
      spec: {
        ...spec,
        holderIdentity: identity,
        leaseDurationSeconds,
        renewTime: now,
        acquireTime: ours ? spec.acquireTime : now,
        leaseTransitions: ours ? transitions : transitions + 1,
      },
    };
    try {
      // Carries the read resourceVersion: a concurrent writer makes this fail with 409.
      await api.replaceNamespacedLease({ name, namespace, body });
      return 'leading';
    } catch (err) {
      if (statusCode(err) === 409) this.log.debug('lease changed concurrently');
      else this.log.warn({ err }, 'updating lease failed');
      return 'failed';
    }
  }

  private expired(spec: NonNullable<V1Lease['spec']>, now: number): boolean {
    const renewed = timeMs(spec.renewTime);
    if (renewed === undefined) return true;
    return renewed + (spec.leaseDurationSeconds ?? 0) * 1000 < now;
  }

  private callback(name: 'onStartedLeading' | 'onStoppedLeading'): void {
    try {
      this.opts[name]();
    } catch (err) {
      this.log.error({ err }, `${name} threw`);
    }
  }

  private sleep(ms: number): Promise<void> {
    if (this.stopped) return Promise.resolve();
    return new Promise((resolve) => {
      this.wake = () => {
        this.wake = undefined;
        resolve();
      };
      this.sleepTimer = setTimeout(() => this.wake?.(), ms);
    });
  }
}
