/**
 * The api role: the same fastify app as the embedded service (buildApiServer) with its seams put
 * on the network — the job queue (the Raft queue through RaftQueueClient, or NATS JetStream with
 * --queue nats://), keys verified from the EdgeCache over the identity role's internal API
 * (RemoteCredentialSource + RemoteChangeBus), and workers in other processes served by the
 * internal routes (src/cluster/api) instead of an in-process JobHost. Blobs and usage metering
 * are local to this server; rate limits and idempotency keys are too, unless --redis makes them
 * cluster-wide (engines/redis.ts).
 *
 * Every job names this server as its origin (id + internal URL), so a worker knows whom to ask
 * for the input and where to send the result; a result this server does not hold is fetched from
 * the job's origin, so any balancing strategy works. Ready while the queue answered recently and
 * identity is reachable or the key cache is warm.
 */
import { join } from 'node:path';
import { openIdempotencyStore } from '../../api/idempotency/index.ts';
import { BlobStore, buildApiServer, Completions } from '../../api/index.ts';
import { PixelfleetError } from '../../errors/index.ts';
import { EdgeCache, RemoteChangeBus, RemoteCredentialSource } from '../../identity/index.ts';
import { RaftQueueClient } from '../../queue/raft/index.ts';
import type { JobQueue } from '../../queue/types.ts';
import {
  configuredAdmission,
  configuredTenancy,
  edgeCacheEvents,
  setQueueCollectors,
  startQueueView,
  startResultSweeper,
} from '../../service/api-wiring.ts';
import { createLocalJobHost } from '../../service/job-host.ts';
import { ThroughputMeter } from '../../service/throughput.ts';
import { openUsageMeter } from '../../usage/usage-meter.ts';
import type { JobOrigin } from '../../worker/dispatcher.ts';
import { registerApiInternalRoutes } from '../api/internal-routes.ts';
import { openClusterQueue, queueEngineOf } from '../engines/queue.ts';
import { openClusterRedis } from '../engines/redis.ts';
import { InternalHttpClient } from '../http/index.ts';
import { listenUrl, portOf } from './listen-url.ts';
import type { NodeContext, RoleHandle } from './types.ts';

export interface ApiRoleOptions {
  /** Base URL of the identity role's internal listener (resolved after the listener is up). */
  identityUrl: () => string;
}

export interface ApiRole {
  /** Registers the internal routes; call before the internal listener listens. */
  prepare(): void;
  /** Starts the public listener once the internal one is up. */
  start(): Promise<RoleHandle>;
}

/** How long without a successful queue call before this server reports not ready. */
const queueStaleMs = 3000;
/** How long identity may be unreachable with a cold cache before this server reports not ready. */
const identityStaleMs = 10_000;

export async function createApiRole(context: NodeContext, options: ApiRoleOptions): Promise<ApiRole> {
  const { config, logger, metrics } = context;
  if (queueEngineOf(config.queue).kind === 'raft' && config.queueNodes.length === 0) {
    throw new PixelfleetError('PF_ERR_CONFIG', '--queue-nodes is required for the api role', {
      extensions: { key: '--queue-nodes' },
    });
  }
  const dataDir = join(context.dataDir, 'api');
  const closers: (() => Promise<void> | void)[] = [];
  const closeAll = async () => {
    for (const close of closers.reverse()) {
      try {
        await close();
      } catch (error) {
        logger.error({ err: error }, 'error while closing the api role');
      }
    }
    closers.length = 0;
  };

  const usage = await openUsageMeter({
    dataDir,
    onError: (error) => logger.error({ err: error }, 'usage metering background failure'),
  });
  closers.push(() => usage.close());
  let redis: Awaited<ReturnType<typeof openClusterRedis>>;
  try {
    redis = await openClusterRedis(context);
  } catch (error) {
    await closeAll();
    throw error;
  }
  if (redis !== undefined) closers.push(() => redis?.close());
  const idempotency =
    redis?.idempotencyStore ??
    openIdempotencyStore(dataDir, {
      retentionMs: config.idempotencyTtl,
      onSweepError: (error) => logger.error({ err: error }, 'idempotency sweep failed'),
    });
  // The Redis adapters close their idempotency store themselves.
  if (redis === undefined) closers.push(() => idempotency.close());
  const blobs = new BlobStore(dataDir);
  const completions = new Completions();
  const throughput = new ThroughputMeter();
  const host = createLocalJobHost({ blobs, usage, completions, throughput, metrics, logger });
  // The Raft client re-sends the sync jobs it still remembers when the queue leader changes (they
  // live in the leader's memory only); a job whose result has arrived is forgotten at once. The
  // routes are registered before the queue is opened, hence the late binding.
  let forgetSettled: ((jobId: string) => void) | undefined;

  return {
    prepare() {
      registerApiInternalRoutes(context.internalApp, context.internalRawRoutes, {
        host,
        blobs,
        usage,
        clusterSecret: context.clusterSecret,
        onSettled: (jobId) => forgetSettled?.(jobId),
      });
    },
    async start() {
      try {
        return await startPublic();
      } catch (error) {
        await closeAll();
        throw error;
      }
    },
  };

  async function startPublic(): Promise<RoleHandle> {
    const origin: JobOrigin = { id: context.nodeId, internalUrl: context.internalUrl() };
    const identityUrl = options.identityUrl();

    const queue: JobQueue = await openClusterQueue(context, 'api');
    closers.push(() => queue.close());
    if (queue instanceof RaftQueueClient) forgetSettled = (jobId) => queue.settled(jobId);

    const source = new RemoteCredentialSource({
      identityUrl,
      clusterSecret: context.clusterSecret,
      policy: context.remotePolicy({
        dependency: 'identity',
        backoff: { initialDelayMs: 25, maxDelayMs: 500 },
        timeout: { minMs: 250, maxMs: 5000, initialMs: 2000 },
      }),
    });
    closers.push(() => source.close());
    let edgeCache: EdgeCache | undefined;
    const changes = new RemoteChangeBus({
      identityUrl,
      clusterSecret: context.clusterSecret,
      // Long polls are slow by design: no breaker (a poll that waits is not a failure), a
      // timeout above the poll's wait, one attempt (the bus has its own reconnect backoff).
      policy: context.remotePolicy({
        dependency: 'identity-changes',
        maxAttempts: 1,
        breaker: false,
        timeout: { minMs: 25_000, maxMs: 25_000, initialMs: 25_000 },
      }),
      waitMs: 20_000,
      onGap: () => {
        const expired = edgeCache?.expireAll() ?? 0;
        logger.warn({ expired }, 'identity change feed gap: every cached key expired');
      },
      onReachable: () => source.noteReachable(),
      onError: (error) => logger.debug({ err: error }, 'identity change feed unreachable'),
    });
    closers.push(() => changes.close());
    edgeCache = new EdgeCache({
      source,
      bus: changes,
      onEvent: edgeCacheEvents(metrics, logger),
    });
    closers.push(() => edgeCache?.close());
    await changes.start();

    const admission = configuredAdmission(config, throughput);
    const tenancy = configuredTenancy(config, {
      edgeCache,
      usage,
      ...(redis === undefined ? {} : { limiterStore: redis.limiterStore }),
    });
    const queueView = await startQueueView(
      queue,
      admission,
      // Each poll is a consistent read on the queue (JetStream: one request per stream and per
      // account consumer); once a second is plenty for backpressure.
      1000,
    );
    closers.push(() => queueView.stop());

    const resultClients = new Map<string, InternalHttpClient>();
    closers.push(async () => {
      await Promise.all([...resultClients.values()].map((client) => client.close()));
    });
    const remoteResult = async (jobId: string, holder: JobOrigin) => {
      let client = resultClients.get(holder.internalUrl);
      if (client === undefined) {
        client = new InternalHttpClient({
          origin: holder.internalUrl,
          clusterSecret: context.clusterSecret,
          dependency: 'api',
          connections: 4,
          policy: context.remotePolicy({
            dependency: 'api',
            timeout: { minMs: 500, maxMs: 10_000, initialMs: 5000 },
          }),
        });
        resultClients.set(holder.internalUrl, client);
      }
      const answer = await client.call({
        method: 'GET',
        path: `/internal/jobs/${encodeURIComponent(jobId)}/result`,
        idempotent: true,
      });
      if (answer.status !== 200) return undefined;
      const contentType = answer.headers['content-type'];
      return {
        bytes: answer.body,
        contentType: typeof contentType === 'string' ? contentType : 'application/octet-stream',
      };
    };

    const checks = () => {
      const now = Date.now();
      const identityAt = source.lastSuccessAt;
      return {
        queueReachable: queueView.answeredAt !== undefined && now - queueView.answeredAt < queueStaleMs,
        identityReachable: identityAt !== undefined && now - identityAt < identityStaleMs,
        keyCacheEntries: edgeCache?.stats().entries ?? 0,
        rateLimitBackend: redis === undefined ? 'memory' : redis.limiterStore.lastBackend,
      };
    };
    const ready = () => {
      const state = checks();
      return state.queueReachable && (state.identityReachable || state.keyCacheEntries > 0);
    };

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
      workers: () => ({ size: 0, alive: 0, busy: 0 }),
      origin,
      readiness: () => ({ ready: ready(), checks: checks() }),
      remoteResult,
    });
    setQueueCollectors(metrics, queue, admission, () => ({ size: 0, alive: 0, busy: 0 }));
    closers.push(startResultSweeper(blobs, config, logger));

    await app.listen({ host: config.httpHost, port: config.httpPort });
    const port = portOf(app.server.address());
    const url = listenUrl(config.httpHost, app.server.address());
    const advertisedUrl = `http://${context.advertiseHost}:${port}`;
    logger.info(
      {
        url,
        internalUrl: origin.internalUrl,
        identityUrl,
        queue: queueEngineOf(config.queue).kind,
        limits: redis === undefined ? 'local' : 'redis',
      },
      'api role started',
    );

    return {
      name: 'api',
      ready,
      checks,
      member: () => ({
        role: 'api',
        url: advertisedUrl,
        internalUrl: origin.internalUrl,
        inflight: admission.inflight,
      }),
      urls: { api: url },
      async close() {
        // The same drain as the embedded service: refuse new work, let in-flight requests finish.
        admission.beginShutdown();
        let timer: NodeJS.Timeout | undefined;
        const deadline = new Promise<'timeout'>((resolve) => {
          timer = setTimeout(() => resolve('timeout'), config.shutdownTimeout);
        });
        const idleSweep = setInterval(() => app.server.closeIdleConnections(), 50);
        const drained = await Promise.race([app.close().then(() => 'drained' as const), deadline]);
        clearTimeout(timer);
        clearInterval(idleSweep);
        if (drained === 'timeout') app.server.closeAllConnections();
        await closeAll();
      },
    };
  }
}
