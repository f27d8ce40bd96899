/**
 * Token bucket: tokens accumulate at `refillPerSecond` up to `capacity`; each request spends
 * `cost` tokens and is refused when the bucket holds fewer.
 *
 * Guarantee: over any interval of length t, admitted cost ≤ capacity + refillPerSecond · t, and a
 * request is admitted whenever the bucket holds enough tokens (nothing stricter than the
 * definition). Trade-off: burst capacity is a credit an idle client saves up and may spend at
 * once, so the sustained rate is exact but short bursts reach `capacity` back to back. State is
 * two numbers per key.
 */
import type { Decision, LimiterAlgorithm, LimiterStep } from './types.ts';
import {
  ceilMs,
  QUOTA_EPSILON,
  requirePolicyName,
  requirePositiveFinite,
  requirePositiveInteger,
} from './validation.ts';

export interface TokenBucketOptions {
  /** Burst capacity: the most tokens a client can save up and spend at once. */
  capacity: number;
  /** Sustained rate: tokens added per second, the long-run throughput ceiling. */
  refillPerSecond: number;
  /** Policy name for headers and store keys (default `token-bucket`). */
  policy?: string;
}

export interface TokenBucketState {
  tokens: number;
  /** Epoch ms the `tokens` figure was computed at. */
  updatedAt: number;
}

export class TokenBucket implements LimiterAlgorithm<TokenBucketState> {
  readonly name = 'token-bucket';
  readonly policy: string;
  readonly parameters: Readonly<{ capacity: number; refillPerSecond: number }>;
  readonly #capacity: number;
  readonly #refillPerSecond: number;

  constructor(options: TokenBucketOptions) {
    this.#capacity = requirePositiveInteger('capacity', options.capacity);
    this.#refillPerSecond = requirePositiveFinite('refillPerSecond', options.refillPerSecond);
    this.policy = requirePolicyName(options.policy ?? 'token-bucket');
    this.parameters = Object.freeze({ capacity: this.#capacity, refillPerSecond: this.#refillPerSecond });
  }

  step(state: TokenBucketState | undefined, now: number, cost: number): LimiterStep<TokenBucketState> {
    const capacity = this.#capacity;
    const rate = this.#refillPerSecond;
    let tokens = capacity;
    let updatedAt = now;
    if (state !== undefined) {
      // A clock that steps backwards must not refill twice, so time only moves forward here.
      const elapsed = Math.max(0, now - state.updatedAt);
      tokens = state.tokens + (elapsed * rate) / 1000;
      // Rounding residue must not leave a full bucket a hair short of full.
      if (tokens > capacity - QUOTA_EPSILON) tokens = capacity;
      updatedAt = Math.max(now, state.updatedAt);
    }
    const allowed = cost <= tokens + QUOTA_EPSILON;
    if (allowed) tokens = Math.max(0, tokens - cost);
    let retryAfterMs = 0;
    if (!allowed) {
      retryAfterMs = cost > capacity ? Number.POSITIVE_INFINITY : ceilMs(((cost - tokens) * 1000) / rate);
    }
    const remaining = Math.min(capacity, Math.floor(tokens + QUOTA_EPSILON));
    const resetMs = remaining >= capacity ? 0 : ceilMs(((remaining + 1 - tokens) * 1000) / rate);
    const decision: Decision = {
      allowed,
      limit: capacity,
      remaining,
      resetMs,
      retryAfterMs,
      policy: this.policy,
      windowMs: (capacity * 1000) / rate,
    };
    return {
      decision,
      state: { tokens, updatedAt },
      expiresAt: updatedAt + ceilMs(((capacity - tokens) * 1000) / rate),
    };
  }
}
