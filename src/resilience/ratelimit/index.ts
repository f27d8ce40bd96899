/**
 * Rate limiting for the api: five algorithms as pure cores behind one `RateLimiter` interface,
 * a store abstraction (in memory, or on Redis shared by every api server with a local fallback), the IETF RateLimit header fields, and two
 * composition helpers (progressive lockout, per-key concurrency).
 *
 * Choosing an algorithm (all per key, all with an injected clock):
 * - token bucket — burst capacity + sustained refill rate; ≤ capacity + rate · t over any t.
 *   The default for API quotas: honest clients may burst, the long-run rate is exact.
 * - leaky bucket — the same bound as a meter; as a queue (`delayMs`) it shapes output to a
 *   constant drain rate, trading latency for smoothness.
 * - fixed window — ≤ limit per aligned window, O(1) state, but 2 × limit across a boundary.
 * - sliding window log — ≤ limit in every window wherever it starts; O(limit) memory per key.
 * - sliding window counter — O(1) state, weighted previous window; ≤ limit · (1 + d / window)
 *   over any interval d < window, so no boundary burst; may refuse slightly early.
 */
export {
  ConcurrencyLimiter,
  type ConcurrencyLimiterOptions,
  type ConcurrencyPermit,
} from './concurrency-limiter.ts';
export { FixedWindow, type FixedWindowOptions, type FixedWindowState } from './fixed-window.ts';
export { formatRateLimitHeaders, type RateLimitHeaderOptions, type RateLimitHeaders } from './headers.ts';
export { LeakyBucket, type LeakyBucketOptions, type LeakyBucketState } from './leaky-bucket.ts';
export { createAsyncRateLimiter, createRateLimiter, type RateLimiterOptions } from './limiter.ts';
export { MemoryLimiterStore, type MemoryLimiterStoreOptions } from './memory-store.ts';
export {
  ProgressiveLockout,
  ProgressiveLockoutAlgorithm,
  type ProgressiveLockoutLimiterOptions,
  type ProgressiveLockoutOptions,
  type ProgressiveLockoutState,
} from './progressive-lockout.ts';
export { rateLimitedError } from './rate-limited-error.ts';
export {
  createLimiterStoreMetrics,
  FallbackLimiterStore,
  type FallbackLimiterStoreOptions,
  type LimiterBackend,
  type LimiterStoreMetrics,
  localShareOf,
  openRedisAdapters,
  openRedisConnection,
  type RedisAdapters,
  type RedisAdaptersOptions,
  type RedisCommander,
  type RedisConnection,
  type RedisConnectionOptions,
  RedisLimiterStore,
  type RedisLimiterStoreOptions,
  redisLimiterAlgorithms,
  type SharedLimiterStore,
} from './redis/index.ts';
export {
  SlidingWindowCounter,
  type SlidingWindowCounterOptions,
  type SlidingWindowCounterState,
} from './sliding-window-counter.ts';
export {
  SlidingWindowLog,
  type SlidingWindowLogOptions,
  type SlidingWindowLogState,
} from './sliding-window-log.ts';
export { TokenBucket, type TokenBucketOptions, type TokenBucketState } from './token-bucket.ts';
export type {
  AsyncRateLimiter,
  Clock,
  Decision,
  LimiterAlgorithm,
  LimiterStep,
  LimiterStore,
  QuotaUnit,
  RateLimiter,
  SyncLimiterStore,
} from './types.ts';
