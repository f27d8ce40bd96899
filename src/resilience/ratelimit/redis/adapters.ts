/**
 * `openRedisAdapters`: everything an api server of a cluster needs from Redis, from one URL —
 * the rate limit store (Redis behind a breaker, with local shares as the fallback) and the
 * idempotency store — for the cluster wiring to call once at start-up.
 *
 * Two connections, not one: idempotency traffic carries whole response bodies (hundreds of KB),
 * and on a shared pipelined connection a large reply would hold up every rate limit decision
 * queued behind it. Start-up waits up to `readyTimeoutMs` for Redis and then goes on regardless:
 * limits are decided locally until Redis answers, and idempotency calls fail with
 * PF_ERR_REDIS_UNAVAILABLE (503) until then, while the clients keep reconnecting.
 */
import type { Registry } from 'prom-client';
import {
  RedisIdempotencyStore,
  type RedisIdempotencyStoreOptions,
} from '../../../api/idempotency/redis-store.ts';
import type { CircuitBreakerOptions } from '../../remote/index.ts';
import { FallbackLimiterStore } from './fallback-store.ts';
import {
  openRedisConnection,
  type RedisConnection,
  type RedisConnectionOptions,
} from './redis-connection.ts';
import { RedisLimiterStore } from './redis-store.ts';

export interface RedisAdaptersOptions {
  /** redis://[user:password@]host:port[/db] (or rediss:// for TLS). */
  url: string;
  /** Key prefix; limits live under `<prefix>:ratelimit`, idempotency keys under `<prefix>:idempotency`. Default `pixelfleet`. */
  prefix?: string;
  /** How many api servers share each limit (from discovery); read at every local decision. */
  shareCount: number | (() => number);
  /** Per-call timeout of a rate limit decision on Redis before deciding locally (ms). Default 100. */
  limiterTimeoutMs?: number;
  /** Breaker in front of Redis for rate limits. Default Hystrix: 20 calls / 50 % / 10 s / 5 s open. */
  breaker?: CircuitBreakerOptions;
  /** Registry for the limiter metrics (decisions by backend, fallback gauge, breaker state). */
  registry?: Registry;
  /** Idempotency store settings (retention, lease, byte budget, sweep interval…). */
  idempotency?: Omit<RedisIdempotencyStoreOptions, 'redis' | 'release' | 'prefix'>;
  /** Connection settings shared by both connections (client name, timeouts, pool size). */
  connection?: Omit<RedisConnectionOptions, 'url'>;
  /** How long start-up waits for Redis before going on without it (ms). Default 5 s. */
  readyTimeoutMs?: number;
  /** Told when Redis was not reachable within `readyTimeoutMs`, and about connection errors. */
  onError?: (error: unknown) => void;
  /** Told about each rate limit call answered locally because Redis failed. */
  onFallback?: (error: unknown) => void;
}

export interface RedisAdapters {
  /** The store for every cluster-wide limiter: Redis, or this server's share while it is down. */
  limiterStore: FallbackLimiterStore;
  /** Redis alone (no fallback), e.g. for operator resets or tests. */
  redisLimiterStore: RedisLimiterStore;
  idempotencyStore: RedisIdempotencyStore;
  /** Closes both stores and both connections. Idempotent. */
  close(): Promise<void>;
}

export async function openRedisAdapters(options: RedisAdaptersOptions): Promise<RedisAdapters> {
  const prefix = options.prefix ?? 'pixelfleet';
  if (typeof prefix !== 'string' || prefix === '') throw new RangeError('prefix must be a non-empty string');
  const readyTimeoutMs = options.readyTimeoutMs ?? 5000;
  if (!Number.isFinite(readyTimeoutMs) || readyTimeoutMs < 0) {
    throw new RangeError(`readyTimeoutMs must be a non-negative number, got ${readyTimeoutMs}`);
  }
  const onError = options.onError ?? (() => {});
  const connectionOptions = { ...options.connection, url: options.url, onError };
  const limits: RedisConnection = openRedisConnection({
    clientName: 'pixelfleet-ratelimit',
    ...connectionOptions,
  });
  const idempotency: RedisConnection = openRedisConnection({
    clientName: 'pixelfleet-idempotency',
    ...connectionOptions,
  });
  const redisLimiterStore = new RedisLimiterStore({ redis: limits.commander, prefix: `${prefix}:ratelimit` });
  const limiterStore = new FallbackLimiterStore({
    shared: redisLimiterStore,
    shareCount: options.shareCount,
    ...(options.limiterTimeoutMs === undefined ? {} : { timeoutMs: options.limiterTimeoutMs }),
    ...(options.breaker === undefined ? {} : { breaker: options.breaker }),
    ...(options.registry === undefined ? {} : { registry: options.registry }),
    ...(options.onFallback === undefined ? {} : { onFallback: options.onFallback }),
  });
  const idempotencyStore = new RedisIdempotencyStore({
    ...options.idempotency,
    redis: idempotency.commander,
    release: () => idempotency.close(),
    prefix: `${prefix}:idempotency`,
  });

  let timer: NodeJS.Timeout | undefined;
  const reachable = await Promise.race([
    Promise.all([limits.ready, idempotency.ready]).then(
      () => true,
      () => false,
    ),
    new Promise<false>((resolve) => {
      timer = setTimeout(() => resolve(false), readyTimeoutMs);
    }),
  ]);
  clearTimeout(timer);
  if (!reachable) {
    onError(
      new Error(
        `Redis at ${redactUrl(options.url)} did not answer within ${readyTimeoutMs} ms; going on without it`,
      ),
    );
  }

  let closed: Promise<void> | undefined;
  return {
    limiterStore,
    redisLimiterStore,
    idempotencyStore,
    close: () => {
      closed ??= Promise.all([idempotencyStore.close(), limits.close()]).then(() => undefined);
      return closed;
    },
  };
}

/** The URL without its password, for messages. */
function redactUrl(url: string): string {
  return url.replace(/\/\/([^:@/]*):[^@/]*@/, '//$1:***@');
}
