/**
 * Sliding window counter: one counter for the current aligned window and one for the previous;
 * the cost in the sliding window ending now is estimated as
 *   previous · (1 - elapsed / windowMs) + current
 * (the previous window's requests assumed spread evenly over it) and a request is admitted when
 * estimate + cost ≤ limit.
 *
 * Guarantee (the approximation bound): admitted cost ≤ limit in every aligned window, and over any
 * interval of length d < windowMs admitted cost ≤ limit · (1 + d / windowMs) — so a burst right
 * after a boundary is ≤ limit plus the fraction of the window that has elapsed, never the
 * fixed window's 2 × limit within milliseconds. Any sliding window of length windowMs holds < 2 ×
 * limit; the worst case needs the previous window's whole quota spent at its very end, and under
 * evenly spread traffic the estimate is exact. It can also refuse early (when the previous
 * window's requests came early, the estimate overcounts). Trade-off: O(1) state per key (three
 * numbers; two counters in Redis) instead of the log's O(limit), for that bounded error.
 */
import type { Decision, LimiterAlgorithm, LimiterStep } from './types.ts';
import { ceilMs, QUOTA_EPSILON, requirePolicyName, requirePositiveInteger } from './validation.ts';

export interface SlidingWindowCounterOptions {
  /** Cost units each key may spend per window (estimated over the sliding window). */
  limit: number;
  windowMs: number;
  /** Policy name for headers and store keys (default `sliding-window-counter`). */
  policy?: string;
}

export interface SlidingWindowCounterState {
  /** Epoch ms where the current aligned window starts (a multiple of `windowMs`). */
  windowStart: number;
  /** Cost admitted in the current window. */
  current: number;
  /** Cost admitted in the window just before it. */
  previous: number;
}

export class SlidingWindowCounter implements LimiterAlgorithm<SlidingWindowCounterState> {
  readonly name = 'sliding-window-counter';
  readonly policy: string;
  readonly parameters: Readonly<{ limit: number; windowMs: number }>;
  readonly #limit: number;
  readonly #windowMs: number;

  constructor(options: SlidingWindowCounterOptions) {
    this.#limit = requirePositiveInteger('limit', options.limit);
    this.#windowMs = requirePositiveInteger('windowMs', options.windowMs);
    this.policy = requirePolicyName(options.policy ?? 'sliding-window-counter');
    this.parameters = Object.freeze({ limit: this.#limit, windowMs: this.#windowMs });
  }

  step(
    state: SlidingWindowCounterState | undefined,
    now: number,
    cost: number,
  ): LimiterStep<SlidingWindowCounterState> {
    const limit = this.#limit;
    const windowMs = this.#windowMs;
    let windowStart = Math.floor(now / windowMs) * windowMs;
    let current = 0;
    let previous = 0;
    if (state !== undefined) {
      if (state.windowStart >= windowStart) {
        // Same window (or a clock that stepped backwards: keep the newer window).
        windowStart = state.windowStart;
        current = state.current;
        previous = state.previous;
      } else if (state.windowStart === windowStart - windowMs) {
        previous = state.current;
      }
    }
    // Elapsed fraction of the current window, clamped for a clock behind `windowStart`.
    const elapsed = Math.min(1, Math.max(0, (now - windowStart) / windowMs));
    let estimate = previous * (1 - elapsed) + current;
    const allowed = estimate + cost <= limit + QUOTA_EPSILON;
    if (allowed) {
      current += cost;
      estimate += cost;
    }
    const remaining = Math.max(0, Math.min(limit, Math.floor(limit - estimate + QUOTA_EPSILON)));
    const decision: Decision = {
      allowed,
      limit,
      remaining,
      resetMs:
        remaining >= limit
          ? 0
          : this.#timeUntilEstimateAtMost(limit - remaining - 1, now, windowStart, current, previous),
      retryAfterMs: allowed
        ? 0
        : this.#timeUntilEstimateAtMost(limit - cost, now, windowStart, current, previous),
      policy: this.policy,
      windowMs,
    };
    // The estimate reaches zero once `current` has aged through the next window as `previous`.
    const expiresAt = current > 0 ? windowStart + 2 * windowMs : previous > 0 ? windowStart + windowMs : now;
    return { decision, state: { windowStart, current, previous }, expiresAt };
  }

  /** Milliseconds until the estimate decays to `target` or below, with no new admissions. */
  #timeUntilEstimateAtMost(
    target: number,
    now: number,
    windowStart: number,
    current: number,
    previous: number,
  ): number {
    const windowMs = this.#windowMs;
    if (target < -QUOTA_EPSILON) return Number.POSITIVE_INFINITY;
    if (current <= target + QUOTA_EPSILON) {
      // Reachable within this window as the previous window's weight decays.
      if (previous <= 0) return 0;
      const fraction = 1 - (target - current) / previous;
      return ceilMs(Math.max(0, windowStart + fraction * windowMs - now));
    }
    // Only after this window ends, as `current` becomes `previous` and decays in turn.
    const fraction = 1 - target / current;
    return ceilMs(Math.max(0, windowStart + windowMs + fraction * windowMs - now));
  }
}
