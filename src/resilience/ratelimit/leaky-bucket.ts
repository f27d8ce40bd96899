/**
 * Leaky bucket: admitted work fills a bucket that leaks at `drainPerSecond`; a request whose cost
 * would overflow `capacity` is refused.
 *
 * Two readings of the same state:
 * - as a meter (policing): admit or refuse now; ignore `delayMs`. Admissions then obey the same
 *   bound as a token bucket (≤ capacity + drainPerSecond · t over any interval of length t).
 * - as a queue (shaping): hold each admitted request for `delayMs` before processing it. Its
 *   start time is when the work queued ahead of it has drained, so processing starts are spaced
 *   by at least cost / drainPerSecond: the output flows at the drain rate with no burst at all,
 *   at the price of added latency (at most capacity / drainPerSecond).
 *
 * Guarantee: the level never exceeds `capacity` and falls by exactly `drainPerSecond` per second.
 * Trade-off against the token bucket: smooth output instead of fast bursts. State is two numbers.
 */
import type { Decision, LimiterAlgorithm, LimiterStep } from './types.ts';
import {
  ceilMs,
  QUOTA_EPSILON,
  requirePolicyName,
  requirePositiveFinite,
  requirePositiveInteger,
} from './validation.ts';

export interface LeakyBucketOptions {
  /** How much admitted work may wait in the bucket (the queue bound). */
  capacity: number;
  /** How fast queued work leaks out, in cost units per second (the shaped output rate). */
  drainPerSecond: number;
  /** Policy name for headers and store keys (default `leaky-bucket`). */
  policy?: string;
}

export interface LeakyBucketState {
  /** Work admitted and not yet drained, in cost units. */
  level: number;
  updatedAt: number;
}

export class LeakyBucket implements LimiterAlgorithm<LeakyBucketState> {
  readonly name = 'leaky-bucket';
  readonly policy: string;
  readonly parameters: Readonly<{ capacity: number; drainPerSecond: number }>;
  readonly #capacity: number;
  readonly #drainPerSecond: number;

  constructor(options: LeakyBucketOptions) {
    this.#capacity = requirePositiveInteger('capacity', options.capacity);
    this.#drainPerSecond = requirePositiveFinite('drainPerSecond', options.drainPerSecond);
    this.policy = requirePolicyName(options.policy ?? 'leaky-bucket');
    this.parameters = Object.freeze({ capacity: this.#capacity, drainPerSecond: this.#drainPerSecond });
  }

  step(state: LeakyBucketState | undefined, now: number, cost: number): LimiterStep<LeakyBucketState> {
    const capacity = this.#capacity;
    const rate = this.#drainPerSecond;
    let level = 0;
    let updatedAt = now;
    if (state !== undefined) {
      const elapsed = Math.max(0, now - state.updatedAt);
      level = state.level - (elapsed * rate) / 1000;
      // Rounding residue must not leave a phantom sliver queued after the bucket has drained.
      if (level < QUOTA_EPSILON) level = 0;
      updatedAt = Math.max(now, state.updatedAt);
    }
    const allowed = level + cost <= capacity + QUOTA_EPSILON;
    let delayMs = 0;
    let retryAfterMs = 0;
    if (allowed) {
      // Queue semantics: this request starts once everything admitted before it has drained.
      // Not rounded: rounding each start up could squeeze two starts closer than the drain rate.
      delayMs = (level * 1000) / rate;
      level = Math.min(capacity, level + cost);
    } else {
      retryAfterMs =
        cost > capacity ? Number.POSITIVE_INFINITY : ceilMs(((level + cost - capacity) * 1000) / rate);
    }
    const free = capacity - level;
    const remaining = Math.min(capacity, Math.floor(free + QUOTA_EPSILON));
    const resetMs = remaining >= capacity ? 0 : ceilMs(((remaining + 1 - free) * 1000) / rate);
    const decision: Decision = {
      allowed,
      limit: capacity,
      remaining,
      resetMs,
      retryAfterMs,
      policy: this.policy,
      windowMs: (capacity * 1000) / rate,
      delayMs,
    };
    return { decision, state: { level, updatedAt }, expiresAt: updatedAt + ceilMs((level * 1000) / rate) };
  }
}
