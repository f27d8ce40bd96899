/**
 * Prometheus metrics of the rate limit store: which backend decided (redis or the local share),
 * whether this server is deciding locally right now, and the Redis breaker's state (through the
 * shared remote-call metrics, dependency `redis`). Creating them twice on one registry returns the
 * same metrics, so several stores of one process may share a registry.
 */
import { Counter, Gauge, type Registry } from 'prom-client';
import { createRemoteMetrics, type RemoteMetrics } from '../../remote/index.ts';

export type LimiterBackend = 'redis' | 'local';

export interface LimiterStoreMetrics {
  readonly registry: Registry;
  /** Decisions by backend and outcome (allowed / denied). */
  readonly decisions: Counter<'backend' | 'outcome'>;
  /** 1 while this server decides from its local share, 0 while Redis decides. */
  readonly fallbackActive: Gauge;
  /** Redis calls given up (error or per-call timeout), by reason. */
  readonly redisFailures: Counter<'reason'>;
  /** Breaker state and transitions, labelled dependency="redis". */
  readonly remote: RemoteMetrics;
}

function reuse<M>(registry: Registry, name: string, create: () => M): M {
  return (registry.getSingleMetric(name) as M | undefined) ?? create();
}

export function createLimiterStoreMetrics(registry: Registry): LimiterStoreMetrics {
  const registers = [registry];
  return {
    registry,
    decisions: reuse(
      registry,
      'pixelfleet_ratelimit_decisions_total',
      () =>
        new Counter({
          name: 'pixelfleet_ratelimit_decisions_total',
          help: 'Rate limit decisions by the backend that made them (redis, or local during a Redis outage) and outcome.',
          labelNames: ['backend', 'outcome'],
          registers,
        }),
    ),
    fallbackActive: reuse(
      registry,
      'pixelfleet_ratelimit_fallback_active',
      () =>
        new Gauge({
          name: 'pixelfleet_ratelimit_fallback_active',
          help: '1 while this server decides rate limits from its local share of each limit (Redis unreachable or its breaker open), else 0.',
          registers,
        }),
    ),
    redisFailures: reuse(
      registry,
      'pixelfleet_ratelimit_redis_failures_total',
      () =>
        new Counter({
          name: 'pixelfleet_ratelimit_redis_failures_total',
          help: 'Rate limit calls to Redis given up, by reason (error, timeout); each was answered locally.',
          labelNames: ['reason'],
          registers,
        }),
    ),
    remote: createRemoteMetrics(registry),
  };
}
