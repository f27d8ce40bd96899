/**
 * The worker role: the embedded service's Dispatcher and WorkerPool (isolated converter child
 * processes with a watchdog), claiming from the job queue (the Raft queue through
 * RaftQueueClient, or NATS JetStream with --queue nats://), with a
 * RemoteJobHost that fetches inputs from and delivers results to the api server named in each
 * job. Ready while a converter is alive and the queue answered recently.
 */
import { PixelfleetError } from '../../errors/index.ts';
import { dispatcherEvents } from '../../service/dispatcher-events.ts';
import { configuredWorkerPool } from '../../service/worker-pool.ts';
import { Dispatcher } from '../../worker/dispatcher.ts';
import { openClusterQueue, queueEngineOf } from '../engines/queue.ts';
import { RemoteJobHost } from '../worker/remote-job-host.ts';
import type { NodeContext, RoleHandle } from './types.ts';

const queueStaleMs = 5000;

export async function startWorkerRole(context: NodeContext): Promise<RoleHandle> {
  const { config, logger, metrics } = context;
  const engine = queueEngineOf(config.queue);
  if (engine.kind === 'raft' && config.queueNodes.length === 0) {
    throw new PixelfleetError('PF_ERR_CONFIG', '--queue-nodes is required for the worker role', {
      extensions: { key: '--queue-nodes' },
    });
  }
  const queue = await openClusterQueue(context, 'worker');
  const pool = configuredWorkerPool(config, metrics, logger);
  try {
    await pool.start();
  } catch (error) {
    await queue.close();
    throw error;
  }
  const host = new RemoteJobHost({
    clusterSecret: context.clusterSecret,
    policy: context.remotePolicy,
    onError: (error, where) =>
      logger.warn({ err: error, ...where }, 'settlement report to the api server failed'),
  });
  const dispatcher = new Dispatcher({
    queue,
    converter: pool,
    host,
    concurrency: pool.capacity,
    jobTimeoutMs: config.jobTimeout,
    leaseMs: config.lease,
    consumerName: context.nodeId,
    // A member id names one running process (the registry keys members by it), and the
    // supervisor restarts a worker under the same one: what the dead process held comes back now.
    releaseEarlierLeases: true,
    hostRetryDelayMs: 500,
    onError: (error) => logger.error({ err: error }, 'dispatcher error'),
    events: dispatcherEvents(metrics, logger),
  });
  let queueAnsweredAt: number | undefined;
  let probing = false;
  const probeQueue = async () => {
    // A queue in failover may take seconds to answer: never pile up probes behind it.
    if (probing) return;
    probing = true;
    try {
      await queue.stats();
      queueAnsweredAt = Date.now();
    } catch {
      // Readiness reports it.
    } finally {
      probing = false;
    }
  };
  const probeTimer = setInterval(probeQueue, 1000);
  probeTimer.unref();
  await probeQueue();
  dispatcher.start();
  logger.info(
    {
      converters: config.workers,
      queue: engine.kind,
      ...(engine.kind === 'raft' ? { queueNodes: config.queueNodes } : { queueServers: engine.servers }),
    },
    'worker role started',
  );

  const checks = () => ({
    convertersAlive: pool.stats().alive,
    queueReachable: queueAnsweredAt !== undefined && Date.now() - queueAnsweredAt < queueStaleMs,
    converting: dispatcher.active,
  });
  return {
    name: 'worker',
    ready: () => {
      const state = checks();
      return state.convertersAlive > 0 && state.queueReachable;
    },
    checks,
    member: () => ({ role: 'worker', internalUrl: context.internalUrl(), inflight: dispatcher.active }),
    urls: {},
    async close() {
      clearInterval(probeTimer);
      await dispatcher.stop();
      await host.close();
      await pool.close();
      await queue.close();
    },
  };
}
