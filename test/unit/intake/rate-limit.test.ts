import { describe, expect, it } from '@jest/globals';
import { KeyedRateLimiter } from '../../../src/intake/rate-limit.js';

describe('KeyedRateLimiter', () => {
  it('allows the burst, then one per 1/rate, per key', () => {
    let now = 0;
    const limiter = new KeyedRateLimiter(() => ({ rate: 2, burst: 3 }), () => now);
    expect([1, 2, 3].map(() => limiter.take(['namespace:a']))).toEqual([0, 0, 0]);
    expect(limiter.take(['namespace:a'])).toBe(500);
    expect(limiter.take(['namespace:b'])).toBe(0); // other keys are independent
    now = 500;
    expect(limiter.take(['namespace:a'])).toBe(0);
    expect(limiter.take(['namespace:a'])).toBe(500);
  });

  it('takes from every bucket or from none', () => {
    let now = 0;
    const limiter = new KeyedRateLimiter((k) => (k.startsWith('policy:') ? { rate: 1, burst: 1 } : { rate: 1, burst: 5 }), () => now);
    expect(limiter.take(['namespace:a', 'policy:p'])).toBe(0);
    expect(limiter.take(['namespace:a', 'policy:p'])).toBe(1000); // held by the policy bucket
    // The namespace bucket was not charged for the held-back creation: 4 tokens are left.
    expect([1, 2, 3, 4].map(() => limiter.take(['namespace:a']))).toEqual([0, 0, 0, 0]);
    expect(limiter.take(['namespace:a'])).toBeGreaterThan(0);
    now = 1000;
    expect(limiter.take(['policy:p'])).toBe(0);
  });
});
