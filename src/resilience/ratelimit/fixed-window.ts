/**
 * Fixed window: time is cut into windows of `windowMs` aligned to the epoch (so every server
 * agrees where a window starts); each key may spend `limit` per window; the count starts from
 * zero when a new window begins.
 *
 * Guarantee: admitted cost ≤ limit within every aligned window. Trade-off: the cheapest algorithm
 * (one counter per key, one key per window in Redis: INCR + PEXPIRE) but a hard boundary — a
 * client may spend `limit` at the end of one window and `limit` again at the start of the next,
 * 2 × limit within a few milliseconds. Aligned windows also make every client's quota return at
 * the same instant, which invites a synchronised rush at each boundary.
 */
import type { Decision, LimiterAlgorithm, LimiterStep } from './types.ts';
import { requirePolicyName, requirePositiveInteger } from './validation.ts';

export interface FixedWindowOptions {
  /** Cost units each key may spend per window. */
  limit: number;
  /** Window length in milliseconds. */
  windowMs: number;
  /** Policy name for headers and store keys (default `fixed-window`). */
  policy?: string;
}

export interface FixedWindowState {
  /** Epoch ms where the counted window starts (a multiple of `windowMs`). */
  windowStart: number;
  /** Cost admitted in that window. */
  count: number;
}

export class FixedWindow implements LimiterAlgorithm<FixedWindowState> {
  readonly name = 'fixed-window';
  readonly policy: string;
  readonly parameters: Readonly<{ limit: number; windowMs: number }>;
  readonly #limit: number;
  readonly #windowMs: number;

  constructor(options: FixedWindowOptions) {
    this.#limit = requirePositiveInteger('limit', options.limit);
    this.#windowMs = requirePositiveInteger('windowMs', options.windowMs);
    this.policy = requirePolicyName(options.policy ?? 'fixed-window');
    this.parameters = Object.freeze({ limit: this.#limit, windowMs: this.#windowMs });
  }

  step(state: FixedWindowState | undefined, now: number, cost: number): LimiterStep<FixedWindowState> {
    const limit = this.#limit;
    const windowMs = this.#windowMs;
    let windowStart = Math.floor(now / windowMs) * windowMs;
    let count = 0;
    if (state !== undefined) {
      // A clock that steps backwards keeps counting into the newer window it already saw.
      if (state.windowStart >= windowStart) {
        windowStart = state.windowStart;
        count = state.count;
      }
    }
    const windowEnd = windowStart + windowMs;
    const allowed = count + cost <= limit;
    if (allowed) count += cost;
    const untilWindowEnd = Math.max(0, windowEnd - now);
    const remaining = Math.max(0, Math.floor(limit - count));
    const decision: Decision = {
      allowed,
      limit,
      remaining,
      resetMs: remaining >= limit ? 0 : untilWindowEnd,
      retryAfterMs: allowed ? 0 : cost > limit ? Number.POSITIVE_INFINITY : untilWindowEnd,
      policy: this.policy,
      windowMs,
    };
    return { decision, state: { windowStart, count }, expiresAt: count > 0 ? windowEnd : now };
  }
}
