/**
 * Retry delays: exponential backoff with full jitter, the same arithmetic as the Python
 * client's (`wspool.core.backoff`): a uniform delay between zero and `base * 2**attempt`,
 * capped at `cap`, so the clients of a failed node do not return in one wave.
 */
export class Backoff {
  private failures = 0;

  /** `base` and `cap` in milliseconds; `random` draws from [0, 1). */
  constructor(
    readonly base = 100,
    readonly cap = 5000,
    private readonly random: () => number = Math.random,
  ) {
    if (!(base > 0 && base <= cap)) {
      throw new RangeError("backoff needs 0 < base <= cap");
    }
  }

  /** The largest delay of the given (0-based) attempt. */
  ceiling(attempt: number): number {
    return Math.min(this.cap, this.base * 2 ** Math.min(attempt, 64));
  }

  /** The delay before the next attempt; counts one more failure. */
  nextDelay(): number {
    const delay = this.random() * this.ceiling(this.failures);
    this.failures += 1;
    return delay;
  }

  /** After a success: the next failure starts again from `base`. */
  reset(): void {
    this.failures = 0;
  }
}
