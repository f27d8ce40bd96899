/**
 * Rate limits and their state on Redis, shared by every api server: `RedisLimiterStore` (Lua
 * steps on the Redis clock), `FallbackLimiterStore` (a circuit breaker in front of it that answers
 * from this server's share of each limit while Redis is unreachable), and the connection they use.
 */

export { openRedisAdapters, type RedisAdapters, type RedisAdaptersOptions } from './adapters.ts';
export {
  FallbackLimiterStore,
  type FallbackLimiterStoreOptions,
  type SharedLimiterStore,
} from './fallback-store.ts';
export { localShareOf } from './local-share.ts';
export { createLimiterStoreMetrics, type LimiterBackend, type LimiterStoreMetrics } from './metrics.ts';
export {
  openRedisConnection,
  type RedisArgument,
  type RedisCommander,
  type RedisConnection,
  type RedisConnectionOptions,
  redisUnavailable,
} from './redis-connection.ts';
export { RedisScript } from './redis-script.ts';
export { RedisLimiterStore, type RedisLimiterStoreOptions, redisLimiterAlgorithms } from './redis-store.ts';
