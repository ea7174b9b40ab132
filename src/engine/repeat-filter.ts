// Bounded logging for failures that repeat: the same message for the same key is logged once, then
// again only after an interval, with the count of repeats held back.

/**
 * Admits an outcome once per key and message, and again only after `intervalMs` (with the count of
 * repeats held back): a case stuck on the same error writes a few lines a minute, not thousands.
 */
export class RepeatFilter {
  private readonly last = new Map<string, { message: string; at: number; held: number }>();

  constructor(
    private readonly intervalMs = 60_000,
    private readonly now: () => number = () => performance.now(),
  ) {}

  /** Returns how many repeats were held back since the last line when this one should be logged, else undefined. */
  admit(key: string, message: string): number | undefined {
    const t = this.now();
    const seen = this.last.get(key);
    if (seen && seen.message === message && t - seen.at < this.intervalMs) {
      seen.held++;
      return undefined;
    }
    const held = seen && seen.message === message ? seen.held : 0;
    this.last.set(key, { message, at: t, held: 0 });
    return held;
  }

  forget(key: string): void {
    this.last.delete(key);
  }
}
