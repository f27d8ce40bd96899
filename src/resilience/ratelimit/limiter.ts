/**
 * Keyed limiters: an algorithm plus a store, behind the `RateLimiter` (synchronous, in-process)
 * and `AsyncRateLimiter` (any store, e.g. Redis later) interfaces. Stores keep state per
 * (policy, key), so several limiters can share one store as long as their policy names differ.
 */
import { MemoryLimiterStore, type MemoryLimiterStoreOptions } from './memory-store.ts';
import type {
  AsyncRateLimiter,
  Decision,
  LimiterAlgorithm,
  LimiterStore,
  RateLimiter,
  SyncLimiterStore,
} from './types.ts';
import { requireValidCost } from './validation.ts';

export interface RateLimiterOptions extends MemoryLimiterStoreOptions {
  /** An in-process store to share between limiters; by default each limiter gets its own. */
  store?: SyncLimiterStore;
}

/** The in-process fast path: state in memory, decisions without a promise. */
export function createRateLimiter<State>(
  algorithm: LimiterAlgorithm<State>,
  options: RateLimiterOptions = {},
): RateLimiter {
  const store = options.store ?? new MemoryLimiterStore(options);
  return {
    take(key: string, cost = 1): Decision {
      return store.applySync(key, algorithm, requireValidCost(cost));
    },
    reset(key: string): void {
      store.resetSync(algorithm.policy, key);
    },
  };
}

/** The same algorithm over any store; every `take` is one atomic store round trip. */
export function createAsyncRateLimiter<State>(
  algorithm: LimiterAlgorithm<State>,
  store: LimiterStore,
): AsyncRateLimiter {
  return {
    async take(key: string, cost = 1): Promise<Decision> {
      return store.apply(key, algorithm, requireValidCost(cost));
    },
    reset(key: string): Promise<void> {
      return store.reset(algorithm.policy, key);
    },
  };
}
