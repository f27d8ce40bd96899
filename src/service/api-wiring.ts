/**
 * The parts of the api role that the embedded service and the cluster's api servers wire the
 * same way: edge-cache events as metrics and logs, admission and tenancy from the settings, the
 * queue view admission decides on, the metrics collectors and the expired-result sweeper. One
 * definition, so the two modes cannot drift apart.
 */
import type { BlobStore } from '../api/blobs.ts';
import { Admission } from '../api/index.ts';
import { TenancyGuard } from '../api/tenancy.ts';
import type { Config } from '../config/index.ts';
import {
  createRequestAuthenticator,
  type EdgeCache,
  type EdgeCacheEvent,
  ProgressiveLockout,
} from '../identity/index.ts';
import type { Logger, ServiceMetrics } from '../observability/index.ts';
import type { JobQueue } from '../queue/index.ts';
import type { LimiterStore } from '../resilience/ratelimit/index.ts';
import type { UsageMeter } from '../usage/usage-meter.ts';
import type { ThroughputMeter } from './throughput.ts';

/** Every edge-cache event is counted; a key verified while the store is unreachable is logged. */
export function edgeCacheEvents(metrics: ServiceMetrics, logger: Logger): (event: EdgeCacheEvent) => void {
  return (event) => {
    metrics.identityCache.inc({ event: event.type });
    // Availability over consistency: a key verified from a stale entry is logged and counted.
    if (event.type === 'stale-served' || event.type === 'store-error') {
      logger.warn({ event: event.type, key: event.key, err: event.error }, 'identity store unreachable');
    }
  };
}

export function configuredAdmission(config: Config, throughput: ThroughputMeter): Admission {
  return new Admission({
    maxInflight: config.maxInflight,
    queueHighWater: config.queueHighWater,
    accountMaxJobs: config.accountMaxJobs,
    throughput: () => throughput.perSecond(),
  });
}

export function configuredTenancy(
  config: Config,
  dependencies: { edgeCache: EdgeCache; usage: UsageMeter; limiterStore?: LimiterStore },
): TenancyGuard {
  const { edgeCache, usage, limiterStore } = dependencies;
  return new TenancyGuard({
    authenticate: createRequestAuthenticator({ edgeCache, lockout: new ProgressiveLockout() }),
    globalRatePerSecond: config.globalRate,
    globalBurst: config.globalBurst,
    ...(limiterStore === undefined ? {} : { limiterStore }),
    conversionsThisMonth: async (accountId, now) => (await usage.monthToDate(accountId, now)).conversions,
  });
}

export interface QueueView {
  /** When the queue last answered a stats poll (epoch ms), for readiness. */
  readonly answeredAt: number | undefined;
  stop(): void;
}

/**
 * Polls the queue's stats into admission (backpressure, per-account backlog) every
 * `intervalMs`, never overlapping: a queue in failover may take seconds to answer. Resolves after
 * the first poll.
 */
export async function startQueueView(
  queue: JobQueue,
  admission: Admission,
  intervalMs: number,
): Promise<QueueView> {
  let answeredAt: number | undefined;
  let refreshing = false;
  const refresh = async () => {
    if (refreshing) return;
    refreshing = true;
    try {
      admission.observeQueue(await queue.stats());
      answeredAt = Date.now();
    } catch {
      // Keep the last known figures; readiness reports the queue's health.
    } finally {
      refreshing = false;
    }
  };
  await refresh();
  const timer = setInterval(refresh, intervalMs);
  timer.unref();
  return {
    get answeredAt() {
      return answeredAt;
    },
    stop: () => clearInterval(timer),
  };
}

export function setQueueCollectors(
  metrics: ServiceMetrics,
  queue: JobQueue,
  admission: Admission,
  workers: () => { size: number; alive: number; busy: number },
): void {
  metrics.setCollectors({
    queue: async () => {
      const stats = await queue.stats();
      return { depth: stats.depth, inflight: stats.inflight, deadLetters: stats.deadLetters };
    },
    workers,
    inflightRequests: () => admission.inflight,
  });
}

/** Deletes async results older than `resultTtl`, at most once a minute. Returns the stop. */
export function startResultSweeper(blobs: BlobStore, config: Config, logger: Logger): () => void {
  const timer = setInterval(
    () => {
      blobs
        .sweepResults(config.resultTtl)
        .catch((error) => logger.error({ err: error }, 'result sweep failed'));
    },
    Math.min(60_000, config.resultTtl),
  );
  timer.unref();
  return () => clearInterval(timer);
}
