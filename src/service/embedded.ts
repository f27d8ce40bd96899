/**
 * The embedded service: every role in one process — api and queue here, conversion workers as
 * child processes — with no external server. This is what `pixelfleet start` runs. The roles
 * talk only through their interfaces (JobQueue, JobHost, Converter), the same seams the cluster
 * mode puts a network behind.
 */
import { mkdirSync } from 'node:fs';
import { resolve } from 'node:path';
import Fastify from 'fastify';
import { openIdempotencyStore } from '../api/idempotency/index.ts';
import { BlobStore, buildApiServer, Completions, registerProblemHandlers } from '../api/index.ts';
import type { Config } from '../config/index.ts';
import { PixelfleetError } from '../errors/index.ts';
import {
  EdgeCache,
  ensureAdminToken,
  InProcessChangeBus,
  openIdentityStore,
  registerAdminRoutes,
} from '../identity/index.ts';
import { createLogger, createServiceMetrics, type Logger } from '../observability/index.ts';
import { openEmbeddedQueue } from '../queue/index.ts';
import { openUsageMeter } from '../usage/usage-meter.ts';
import { Dispatcher } from '../worker/dispatcher.ts';
import {
  configuredAdmission,
  configuredTenancy,
  edgeCacheEvents,
  setQueueCollectors,
  startQueueView,
  startResultSweeper,
} from './api-wiring.ts';
import { dispatcherEvents } from './dispatcher-events.ts';
import { createLocalJobHost } from './job-host.ts';
import { ThroughputMeter } from './throughput.ts';
import { configuredWorkerPool } from './worker-pool.ts';

export interface EmbeddedService {
  /** Base URL of the public API, e.g. http://127.0.0.1:8080 */
  url: string;
  port: number;
  /** Base URL of the admin API (accounts, keys, tiers, usage, audit). */
  adminUrl: string;
  adminToken: string;
  config: Config;
  logger: Logger;
  /** Graceful stop: refuse new work, drain in-flight requests (up to shutdownTimeout), close. */
  close(): Promise<void>;
}

const dayMs = 86_400_000;

export async function startEmbeddedService(
  config: Config,
  options: { logger?: Logger; env?: NodeJS.ProcessEnv } = {},
): Promise<EmbeddedService> {
  // The engines are for the cluster roles; quietly running on SQLite and a local queue when an
  // operator asked for NATS, Redis or PostgreSQL would be worse than refusing to start.
  const engine =
    config.queue !== 'raft' ? '--queue' : config.redis ? '--redis' : config.postgres ? '--postgres' : '';
  if (engine !== '') {
    throw new PixelfleetError(
      'PF_ERR_CONFIG',
      `${engine}: existing engines are used by the cluster roles (pixelfleet cluster or pixelfleet node); pixelfleet start runs everything embedded`,
      { extensions: { key: engine } },
    );
  }
  const logger = options.logger ?? createLogger({ level: config.logLevel });
  const dataDir = resolve(config.dataDir);
  mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  const metrics = createServiceMetrics();
  // Closed in reverse order if start-up fails half way, and on shutdown.
  const closers: (() => Promise<void> | void)[] = [];
  const closeAll = async () => {
    for (const close of closers.reverse()) {
      try {
        await close();
      } catch (error) {
        logger.error({ err: error }, 'error while closing');
      }
    }
    closers.length = 0;
  };

  try {
    const queue = await openEmbeddedQueue({
      dataDir,
      maxAttempts: config.maxAttempts,
      // Job records must outlive their results so an expired result reads 410, not 404.
      retentionMs: Math.max(config.resultTtl * 2, dayMs),
    });
    closers.push(() => queue.close());

    const identityStore = await openIdentityStore(dataDir);
    closers.push(() => identityStore.close());
    const bus = new InProcessChangeBus();
    const admin = ensureAdminToken(dataDir, options.env ?? process.env);
    const edgeCache = new EdgeCache({
      source: identityStore,
      bus,
      onEvent: edgeCacheEvents(metrics, logger),
    });
    closers.push(() => edgeCache.close());

    const usage = await openUsageMeter({
      dataDir,
      onError: (error) => logger.error({ err: error }, 'usage metering background failure'),
    });
    closers.push(() => usage.close());

    const idempotency = openIdempotencyStore(dataDir, {
      retentionMs: config.idempotencyTtl,
      onSweepError: (error) => logger.error({ err: error }, 'idempotency sweep failed'),
    });
    closers.push(() => idempotency.close());

    const pool = configuredWorkerPool(config, metrics, logger);
    closers.push(() => pool.close());
    await pool.start();

    const blobs = new BlobStore(dataDir);
    const completions = new Completions();
    const throughput = new ThroughputMeter();
    const admission = configuredAdmission(config, throughput);
    const tenancy = configuredTenancy(config, { edgeCache, usage });
    const queueView = await startQueueView(queue, admission, 100);
    closers.push(() => queueView.stop());

    const host = createLocalJobHost({ blobs, usage, completions, throughput, metrics, logger });

    const dispatcher = new Dispatcher({
      queue,
      converter: pool,
      host,
      concurrency: pool.capacity,
      jobTimeoutMs: config.jobTimeout,
      leaseMs: config.lease,
      consumerName: `embedded-${process.pid}`,
      onError: (error) => logger.error({ err: error }, 'dispatcher error'),
      events: dispatcherEvents(metrics, logger),
    });

    const app = buildApiServer({
      config,
      queue,
      blobs,
      completions,
      admission,
      tenancy,
      usage,
      idempotency,
      metrics,
      logger,
      workers: () => pool.stats(),
    });
    setQueueCollectors(metrics, queue, admission, () => pool.stats());

    dispatcher.start();
    closers.push(() => dispatcher.stop());
    closers.push(startResultSweeper(blobs, config, logger));

    const adminApp = Fastify({ logger: false });
    registerProblemHandlers(adminApp);
    await registerAdminRoutes(adminApp, {
      store: identityStore,
      bus,
      token: admin.token,
      usage: {
        accountUsage: (accountId, fromMs, toMs, granularity) =>
          usage.usageFor(accountId, { fromMs, toMs, granularity }),
      },
    });
    await adminApp.listen({ host: config.adminHost, port: config.adminPort });
    closers.push(() => adminApp.close());

    await app.listen({ host: config.httpHost, port: config.httpPort });
    const url = listenUrl(config.httpHost, app.server.address());
    const adminUrl = listenUrl(config.adminHost, adminApp.server.address());
    logger.info(
      {
        url,
        adminUrl,
        adminToken: admin.source === 'env' ? 'from PIXELFLEET_ADMIN_TOKEN' : admin.path,
        workers: config.workers,
        dataDir,
      },
      'pixelfleet listening',
    );

    let closing: Promise<void> | undefined;
    const close = () => {
      closing ??= (async () => {
        logger.info({ inflight: admission.inflight }, 'shutting down: draining in-flight requests');
        admission.beginShutdown();
        let timer: NodeJS.Timeout | undefined;
        const deadline = new Promise<'timeout'>((resolve) => {
          timer = setTimeout(() => resolve('timeout'), config.shutdownTimeout);
        });
        // Connections that turn idle during the drain are closed at once, not at the deadline.
        const idleSweep = setInterval(() => app.server.closeIdleConnections(), 50);
        const drained = await Promise.race([app.close().then(() => 'drained' as const), deadline]);
        clearTimeout(timer);
        clearInterval(idleSweep);
        if (drained === 'timeout') {
          logger.warn(
            { inflight: admission.inflight },
            'shutdown deadline passed: closing remaining connections',
          );
          app.server.closeAllConnections();
        }
        // Then, in reverse start order: admin listener, timers, dispatcher, workers, usage,
        // identity, queue.
        await closeAll();
        logger.info('shut down');
      })();
      return closing;
    };

    return {
      url,
      port: portOf(app.server.address()),
      adminUrl,
      adminToken: admin.token,
      config,
      logger,
      close,
    };
  } catch (error) {
    await closeAll();
    throw error;
  }
}

function portOf(address: string | import('node:net').AddressInfo | null): number {
  return typeof address === 'object' && address !== null ? address.port : 0;
}

function listenUrl(host: string, address: string | import('node:net').AddressInfo | null): string {
  return `http://${host.includes(':') ? `[${host}]` : host}:${portOf(address)}`;
}
