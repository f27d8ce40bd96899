/**
 * Redis for the api role (`--redis redis://...`): one cluster-wide store for every rate limit
 * (the global bucket and the per-tier ones) and for idempotency keys, so N api servers admit what
 * one would and an Idempotency-Key replays whichever server the retry reaches. While Redis is
 * unreachable each server decides from its share of every limit (limit / N, N = api servers
 * alive in the registry or --api-server-count) and keyed requests get 503 — availability over
 * exactness, as the api tier asks.
 */
import type { RedisAdapters } from '../../resilience/ratelimit/index.ts';
import { openRedisAdapters } from '../../resilience/ratelimit/index.ts';
import type { NodeContext } from '../roles/types.ts';

/** How many api servers share each limit while deciding locally. */
export function shareCountOf(configured: number, aliveApiServers: () => number): () => number {
  if (configured > 0) return () => configured;
  return () => Math.max(1, aliveApiServers());
}

/** Opens the Redis adapters when --redis is set; undefined keeps the limits and keys local. */
export async function openClusterRedis(context: NodeContext): Promise<RedisAdapters | undefined> {
  const { config, logger } = context;
  if (config.redis === '') return undefined;
  // One line a second at most of each kind: an outage fails every call and every reconnect.
  const connectionWarning = throttled(() => Date.now());
  const fallbackWarning = throttled(() => Date.now());
  return openRedisAdapters({
    url: config.redis,
    shareCount: shareCountOf(config.apiServerCount, context.aliveApiServers),
    registry: context.metrics.registry,
    idempotency: {
      retentionMs: config.idempotencyTtl,
      onSweepError: (error) => logger.warn({ err: error }, 'idempotency sweep on Redis failed'),
    },
    onError: (error) => {
      if (connectionWarning()) logger.warn({ err: error }, 'redis connection failed');
    },
    onFallback: (error) => {
      if (fallbackWarning()) {
        logger.warn({ err: error }, "redis unreachable: rate limits decided from this server's share");
      }
    },
  });
}

/** True at most once per second. */
function throttled(now: () => number): () => boolean {
  let last = Number.NEGATIVE_INFINITY;
  return () => {
    const at = now();
    if (at - last < 1000) return false;
    last = at;
    return true;
  };
}
