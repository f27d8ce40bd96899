/**
 * Exponential backoff with jitter, the delay before each retry of a remote call.
 *
 * Why not cockatiel's generators: they read `Math.random` directly (tests could not seed them)
 * and its "decorrelated" kind is Polly's V2 formula, not the AWS one the notes describe. The
 * four kinds here follow "Exponential Backoff And Jitter" (AWS architecture blog), with
 * base = initialDelayMs, cap = maxDelayMs and exp(n) = min(cap, base · 2^(n-1)):
 * - none:         exp(n)
 * - full:         uniform [0, exp(n)]          — least total work under contention
 * - equal:        exp(n)/2 + uniform [0, exp(n)/2] — never retries immediately
 * - decorrelated: min(cap, uniform [base, 3 · previous]) — grows from the previous delay
 *
 * Guarantee: every delay is a finite number in [0, maxDelayMs] (and ≥ the kind's lower bound).
 */
import { requirePositiveFinite } from './validation.ts';

export type JitterKind = 'none' | 'full' | 'equal' | 'decorrelated';

const jitterKinds: readonly JitterKind[] = ['none', 'full', 'equal', 'decorrelated'];

export interface BackoffOptions {
  /** Delay before the first retry (default 25 ms): short, because most glitches are brief. */
  initialDelayMs?: number;
  /** Cap on any delay (default 1000 ms): callers hold a deadline, waiting longer rarely helps. */
  maxDelayMs?: number;
  /** How the delay is randomised (default 'full') so that clients that failed together spread out. */
  jitter?: JitterKind;
  /** Uniform source in [0, 1) (default `Math.random`); injected so tests can seed it. */
  random?: () => number;
}

export class Backoff {
  readonly initialDelayMs: number;
  readonly maxDelayMs: number;
  readonly jitter: JitterKind;
  readonly #random: () => number;

  constructor(options: BackoffOptions = {}) {
    this.initialDelayMs = requirePositiveFinite('initialDelayMs', options.initialDelayMs ?? 25);
    this.maxDelayMs = requirePositiveFinite('maxDelayMs', options.maxDelayMs ?? 1000);
    if (this.maxDelayMs < this.initialDelayMs) {
      throw new RangeError(
        `maxDelayMs (${this.maxDelayMs}) must be ≥ initialDelayMs (${this.initialDelayMs})`,
      );
    }
    const jitter = options.jitter ?? 'full';
    if (!jitterKinds.includes(jitter)) {
      throw new RangeError(`jitter must be one of ${jitterKinds.join(', ')}, got ${String(jitter)}`);
    }
    this.jitter = jitter;
    this.#random = options.random ?? Math.random;
  }

  /** Delay before retry number `attempt` (1-based); `previousDelayMs` feeds decorrelated jitter. */
  delay(attempt: number, previousDelayMs?: number): number {
    if (!Number.isSafeInteger(attempt) || attempt < 1) {
      throw new RangeError(`attempt must be a positive integer, got ${String(attempt)}`);
    }
    const exponential = Math.min(this.maxDelayMs, this.initialDelayMs * 2 ** Math.min(attempt - 1, 1023));
    switch (this.jitter) {
      case 'none':
        return exponential;
      case 'full':
        return this.#uniform(0, exponential);
      case 'equal':
        return exponential / 2 + this.#uniform(0, exponential / 2);
      case 'decorrelated': {
        const previous =
          previousDelayMs !== undefined && Number.isFinite(previousDelayMs) && previousDelayMs > 0
            ? previousDelayMs
            : this.initialDelayMs;
        const upper = Math.max(this.initialDelayMs, previous * 3);
        return Math.min(this.maxDelayMs, this.#uniform(this.initialDelayMs, upper));
      }
    }
  }

  /** Uniform in [low, high], robust to a random source that strays outside [0, 1). */
  #uniform(low: number, high: number): number {
    const sample = Math.min(1, Math.max(0, this.#random()));
    return low + (high - low) * sample;
  }
}
