/**
 * Concurrency limiter: at most `maxConcurrent` jobs in flight per key (per account, per API key).
 * Unlike the rate limiters it bounds work in progress, not arrivals per time, so one tenant's slow
 * conversions cannot occupy every worker however slowly they arrive (a per-tenant bulkhead).
 *
 * Guarantee: in-flight permits per key never exceed the key's limit; a permit's `release` is
 * idempotent, so a double release (a `finally` plus an error handler) can never free a slot held
 * by another job. Memory is proportional to keys with jobs in flight: a key is forgotten when its
 * last permit is released. Counts are local to this process; a cluster-wide version needs leases
 * that expire, because a crashed server never releases.
 */
import type { Decision } from './types.ts';
import { requireNonNegativeFinite, requirePolicyName, requirePositiveInteger } from './validation.ts';

export interface ConcurrencyLimiterOptions {
  /** Default in-flight limit per key. */
  maxConcurrent: number;
  /**
   * The Retry-After hint for a refused acquire (default 1 s): the limiter cannot know when a job
   * finishes, so this should be about one typical job's duration.
   */
  retryAfterMs?: number;
  /** Policy name for headers (default `concurrency`). */
  policy?: string;
}

export interface ConcurrencyPermit {
  readonly decision: Decision;
  /** Give the slot back; idempotent, and a no-op for a refused permit. */
  release(): void;
}

export class ConcurrencyLimiter {
  readonly #maxConcurrent: number;
  readonly #retryAfterMs: number;
  readonly #policy: string;
  readonly #inFlight = new Map<string, number>();

  constructor(options: ConcurrencyLimiterOptions) {
    this.#maxConcurrent = requirePositiveInteger('maxConcurrent', options.maxConcurrent);
    this.#retryAfterMs = requireNonNegativeFinite('retryAfterMs', options.retryAfterMs ?? 1000);
    this.#policy = requirePolicyName(options.policy ?? 'concurrency');
  }

  /**
   * Take a slot for `key` if one is free. `limit` overrides the default for this key (tiers);
   * the caller must call `release()` when the job ends, whatever the outcome.
   */
  acquire(key: string, limit: number = this.#maxConcurrent): ConcurrencyPermit {
    requirePositiveInteger('limit', limit);
    const current = this.#inFlight.get(key) ?? 0;
    const allowed = current < limit;
    const held = allowed ? current + 1 : current;
    if (allowed) this.#inFlight.set(key, held);
    const decision: Decision = {
      allowed,
      limit,
      remaining: Math.max(0, limit - held),
      resetMs: 0,
      retryAfterMs: allowed ? 0 : this.#retryAfterMs,
      policy: this.#policy,
      quotaUnit: 'concurrent-requests',
    };
    let released = !allowed;
    return {
      decision,
      release: () => {
        if (released) return;
        released = true;
        const count = (this.#inFlight.get(key) ?? 1) - 1;
        if (count <= 0) this.#inFlight.delete(key);
        else this.#inFlight.set(key, count);
      },
    };
  }

  /** Permits currently held for `key`. */
  inFlight(key: string): number {
    return this.#inFlight.get(key) ?? 0;
  }

  /** Keys with at least one permit held. */
  get size(): number {
    return this.#inFlight.size;
  }
}
