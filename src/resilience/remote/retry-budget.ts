/**
 * Retry budget: retries may add at most `ratio` of the recent request volume (plus a small
 * floor so a quiet client can still retry), measured over a sliding window of one-second
 * buckets. It bounds retry amplification: when a dependency is down, every caller retrying
 * 3 times would quadruple its load exactly when it can least bear it; with a budget the extra
 * load stays ≤ ratio.
 *
 * Guarantee: over any window, granted retries ≤ ratio · requests + minRetriesPerSecond · windowSeconds.
 * One budget may be shared by several policies (e.g. all calls to one dependency).
 */
import { requireNonNegativeFinite, requirePositiveFinite } from './validation.ts';

export interface RetryBudgetOptions {
  /** Retries allowed per original request over the window (default 0.2 = +20 % load at most). */
  ratio?: number;
  /** Floor so low-volume callers can still retry (default 5 per second of window). */
  minRetriesPerSecond?: number;
  /** Window the ratio is measured over (default 10 s). */
  windowMs?: number;
  now?: () => number;
}

const bucketMs = 1000;

export class RetryBudget {
  readonly ratio: number;
  readonly minRetriesPerSecond: number;
  readonly windowMs: number;
  readonly #now: () => number;
  readonly #requests: number[];
  readonly #retries: number[];
  /** Index of the bucket (time / bucketMs) the arrays were last advanced to. */
  #currentBucket: number | undefined;

  constructor(options: RetryBudgetOptions = {}) {
    this.ratio = requireNonNegativeFinite('ratio', options.ratio ?? 0.2);
    this.minRetriesPerSecond = requireNonNegativeFinite(
      'minRetriesPerSecond',
      options.minRetriesPerSecond ?? 5,
    );
    this.windowMs = requirePositiveFinite('windowMs', options.windowMs ?? 10_000);
    if (this.windowMs < bucketMs)
      throw new RangeError(`windowMs must be ≥ ${bucketMs}, got ${this.windowMs}`);
    this.#now = options.now ?? Date.now;
    const buckets = Math.ceil(this.windowMs / bucketMs);
    this.#requests = new Array<number>(buckets).fill(0);
    this.#retries = new Array<number>(buckets).fill(0);
  }

  /** Counts one original (non-retry) request. */
  recordRequest(): void {
    const index = this.#advance();
    this.#requests[index] = (this.#requests[index] ?? 0) + 1;
  }

  /** Consumes one retry if the budget allows it; false means "do not retry". */
  tryRetry(): boolean {
    const index = this.#advance();
    const { requests, retries } = this.#totals();
    const allowed = this.ratio * requests + this.minRetriesPerSecond * (this.windowMs / bucketMs);
    if (retries + 1 > allowed) return false;
    this.#retries[index] = (this.#retries[index] ?? 0) + 1;
    return true;
  }

  snapshot(): { requests: number; retries: number } {
    this.#advance();
    return this.#totals();
  }

  #totals(): { requests: number; retries: number } {
    let requests = 0;
    let retries = 0;
    for (let i = 0; i < this.#requests.length; i++) {
      requests += this.#requests[i] ?? 0;
      retries += this.#retries[i] ?? 0;
    }
    return { requests, retries };
  }

  /** Clears buckets that fell out of the window; returns the index of the current bucket. */
  #advance(): number {
    const bucket = Math.floor(this.#now() / bucketMs);
    const size = this.#requests.length;
    if (this.#currentBucket === undefined || bucket - this.#currentBucket >= size) {
      if (this.#currentBucket !== undefined) {
        this.#requests.fill(0);
        this.#retries.fill(0);
      }
    } else {
      // A clock that steps back keeps counting into the current bucket rather than corrupting old ones.
      for (let b = this.#currentBucket + 1; b <= bucket; b++) {
        this.#requests[b % size] = 0;
        this.#retries[b % size] = 0;
      }
    }
    if (this.#currentBucket === undefined || bucket > this.#currentBucket) this.#currentBucket = bucket;
    return this.#currentBucket % size;
  }
}
