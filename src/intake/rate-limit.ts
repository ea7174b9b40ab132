// Token buckets keyed by namespace and by policy, so a storm in one namespace (or one noisy rule) cannot
// open Investigations faster than responders and the API server can take them. A held-back creation
// is not dropped: the caller retries after the wait this returns.

interface BucketLimits {
  /** Tokens added per second. */
  rate: number;
  /** Bucket size: creations allowed at once after a quiet period. */
  burst: number;
}

interface Bucket {
  tokens: number;
  at: number;
}

export class KeyedRateLimiter {
  private readonly buckets = new Map<string, Bucket>();

  constructor(
    private readonly limits: (key: string) => BucketLimits,
    private readonly now: () => number = () => performance.now(),
  ) {}

  /**
   * Takes one token from every bucket in `keys` if each has one, and returns 0; otherwise takes
   * nothing and returns the milliseconds until all of them will.
   */
  take(keys: readonly string[]): number {
    const now = this.now();
    let waitMs = 0;
    const buckets = keys.map((key) => {
      const { rate, burst } = this.limits(key);
      const b = this.buckets.get(key) ?? { tokens: burst, at: now };
      b.tokens = Math.min(burst, b.tokens + ((now - b.at) * rate) / 1000);
      b.at = now;
      this.buckets.set(key, b);
      if (b.tokens < 1) waitMs = Math.max(waitMs, Math.ceil(((1 - b.tokens) * 1000) / rate));
      return b;
    });
    if (waitMs > 0) return waitMs;
    for (const b of buckets) b.tokens -= 1;
    return 0;
  }
}
