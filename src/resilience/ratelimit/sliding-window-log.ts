/**
 * Sliding window log: keep the timestamp (and cost) of every admitted request of the last
 * `windowMs`; a request at time t is admitted when the cost logged in (t - windowMs, t] plus its
 * own cost stays within `limit`. Refused requests are not logged, so a client that keeps
 * retrying while throttled still recovers.
 *
 * Guarantee: admitted cost ≤ limit in every window [a, a + windowMs), wherever it starts — no
 * boundary burst; this is the exact definition of "limit per window". Trade-off: memory and time
 * proportional to the requests admitted in one window (up to `limit` entries per key; a Redis
 * sorted set per key: ZREMRANGEBYSCORE, then ZCARD, then ZADD).
 */
import type { Decision, LimiterAlgorithm, LimiterStep } from './types.ts';
import { requirePolicyName, requirePositiveInteger } from './validation.ts';

export interface SlidingWindowLogOptions {
  /** Cost units each key may spend in any window of `windowMs`. */
  limit: number;
  windowMs: number;
  /** Policy name for headers and store keys (default `sliding-window-log`). */
  policy?: string;
}

export interface SlidingWindowLogState {
  /** Admission times, oldest first; entries at the same time are merged. */
  timestamps: number[];
  /** Cost admitted at the matching timestamp. */
  costs: number[];
  /** Sum of `costs`, kept so a step needs no full pass over the log. */
  total: number;
}

export class SlidingWindowLog implements LimiterAlgorithm<SlidingWindowLogState> {
  readonly name = 'sliding-window-log';
  readonly policy: string;
  readonly parameters: Readonly<{ limit: number; windowMs: number }>;
  readonly #limit: number;
  readonly #windowMs: number;

  constructor(options: SlidingWindowLogOptions) {
    this.#limit = requirePositiveInteger('limit', options.limit);
    this.#windowMs = requirePositiveInteger('windowMs', options.windowMs);
    this.policy = requirePolicyName(options.policy ?? 'sliding-window-log');
    this.parameters = Object.freeze({ limit: this.#limit, windowMs: this.#windowMs });
  }

  step(
    state: SlidingWindowLogState | undefined,
    now: number,
    cost: number,
  ): LimiterStep<SlidingWindowLogState> {
    const limit = this.#limit;
    const windowMs = this.#windowMs;
    let timestamps: number[] = state === undefined ? [] : state.timestamps;
    let costs: number[] = state === undefined ? [] : state.costs;
    let total = state === undefined ? 0 : state.total;
    let expired = 0;
    while (expired < timestamps.length && timestamps[expired]! <= now - windowMs) {
      total -= costs[expired]!;
      expired += 1;
    }
    const allowed = total + cost <= limit;
    const kept = timestamps.length - expired;
    const last = timestamps.length - 1;
    // A clock that steps backwards must not log out of order; record at the newest time seen.
    const at = kept > 0 ? Math.max(now, timestamps[last]!) : now;
    const record = allowed && cost > 0;
    const merge = record && kept > 0 && timestamps[last] === at;
    if (expired > 0 || record) {
      // Copy-on-write in one pass keeps the step pure: the caller's arrays are never mutated.
      const length = kept + (record && !merge ? 1 : 0);
      const nextTimestamps = new Array<number>(length);
      const nextCosts = new Array<number>(length);
      for (let index = 0; index < kept; index += 1) {
        nextTimestamps[index] = timestamps[expired + index]!;
        nextCosts[index] = costs[expired + index]!;
      }
      if (merge) nextCosts[kept - 1]! += cost;
      else if (record) {
        nextTimestamps[kept] = at;
        nextCosts[kept] = cost;
      }
      if (record) total += cost;
      timestamps = nextTimestamps;
      costs = nextCosts;
    }
    const remaining = Math.max(0, Math.floor(limit - total));
    const resetMs = remaining >= limit || timestamps.length === 0 ? 0 : timestamps[0]! + windowMs - now;
    let retryAfterMs = 0;
    if (!allowed) {
      if (cost > limit) {
        retryAfterMs = Number.POSITIVE_INFINITY;
      } else {
        // Wait until enough of the oldest entries slide out of the window to make room.
        let freed = 0;
        let index = 0;
        while (total - freed + cost > limit && index < costs.length) {
          freed += costs[index]!;
          index += 1;
        }
        retryAfterMs = Math.max(0, timestamps[index - 1]! + windowMs - now);
      }
    }
    const decision: Decision = {
      allowed,
      limit,
      remaining,
      resetMs: Math.max(0, resetMs),
      retryAfterMs,
      policy: this.policy,
      windowMs,
    };
    const newest = timestamps.length > 0 ? timestamps[timestamps.length - 1]! + windowMs : now;
    return { decision, state: { timestamps, costs, total }, expiresAt: newest };
  }
}
