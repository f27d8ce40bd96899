/**
 * A cluster node: any set of roles (gateway, api, queue, worker, identity) in one process,
 * configured by flags and env (`pixelfleet node --roles ...`). The process has one internal
 * listener shared by its roles (worker → api and api → identity routes, /metrics, /healthz,
 * /readyz) and announces every role but the gateway to the registry by heartbeat.
 *
 * Start order: queue, gateway (the registry), identity and api internal routes, internal
 * listener, api public listener, workers, heartbeats. Close order is the reverse, heartbeats
 * first: a member leaves the registry (the gateway stops routing to it) before it drains.
 */
import { mkdirSync } from 'node:fs';
import { createServer } from 'node:http';
import { resolve } from 'node:path';
import Fastify from 'fastify';
import { registerProblemHandlers } from '../api/index.ts';
import type { Config } from '../config/index.ts';
import { HeartbeatClient, type MemberAnnouncement, type MemberView } from '../discovery/index.ts';
import { PixelfleetError } from '../errors/index.ts';
import { createLogger, createServiceMetrics, type Logger } from '../observability/index.ts';
import {
  createRemoteMetrics,
  type JitterKind,
  RemotePolicy,
  RetryBudget,
} from '../resilience/remote/index.ts';
import { checkEngineSettings } from './engines/check.ts';
import { RawRoutes } from './http/raw-routes.ts';
import { createApiRole } from './roles/api-role.ts';
import { startGatewayRole } from './roles/gateway-role.ts';
import { type IdentityRoleHandle, startIdentityRole } from './roles/identity-role.ts';
import { listenUrl, portOf } from './roles/listen-url.ts';
import { startQueueRole } from './roles/queue-role.ts';
import type { NodeContext, RoleHandle, RoleName } from './roles/types.ts';
import { startWorkerRole } from './roles/worker-role.ts';

export interface ClusterNode {
  nodeId: string;
  roles: RoleName[];
  /** Base URL of the internal listener. */
  internalUrl: string;
  /** Where each role can be reached: api, gateway, control, admin, queueClient. */
  urls: Record<string, string>;
  /** The generated or given admin token, when the node runs identity. */
  adminToken?: string;
  logger: Logger;
  ready(): boolean;
  /** Graceful stop: leave the registry, drain, close every role. */
  close(): Promise<void>;
  /** Resolves when a role failed beyond repair (the process should exit non-zero). */
  failed: Promise<unknown>;
}

export interface StartNodeOptions {
  logger?: Logger;
  env?: NodeJS.ProcessEnv;
}

const roleOrder: RoleName[] = ['queue', 'gateway', 'identity', 'api', 'worker'];

export async function startClusterNode(config: Config, options: StartNodeOptions = {}): Promise<ClusterNode> {
  const env = options.env ?? process.env;
  const roles = roleOrder.filter((role) => config.roles.includes(role));
  if (roles.length === 0) {
    throw new PixelfleetError(
      'PF_ERR_CONFIG',
      '--roles: name at least one of gateway, api, queue, worker, identity',
      {
        extensions: { key: '--roles' },
      },
    );
  }
  const clusterSecret = env.PIXELFLEET_CLUSTER_SECRET ?? '';
  if (clusterSecret.length < 16) {
    throw new PixelfleetError(
      'PF_ERR_CONFIG',
      'PIXELFLEET_CLUSTER_SECRET: a cluster secret of at least 16 bytes is required',
      {
        extensions: { key: 'PIXELFLEET_CLUSTER_SECRET' },
      },
    );
  }
  checkEngineSettings(config, roles);
  const nodeId = config.nodeId || `${roles[0]}-${process.pid}`;
  const logger = (options.logger ?? createLogger({ level: config.logLevel, name: 'pixelfleet-node' })).child({
    node: nodeId,
  });
  const dataDir = resolve(config.dataDir);
  mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  const metrics = createServiceMetrics();
  const advertiseHost = config.advertiseHost || config.internalHost;

  const internalBodyLimit = 256 * 1024 * 1024;
  const internalRawRoutes = new RawRoutes({
    bodyLimit: internalBodyLimit,
    onError: (error) => logger.error({ err: error }, 'internal route failed'),
  });
  const internalApp = Fastify({
    logger: false,
    bodyLimit: internalBodyLimit,
    // The raw routes see every request first; what they do not serve goes to fastify.
    serverFactory: (handler) => {
      const server = createServer((request, response) => {
        if (!internalRawRoutes.serve(request, response)) handler(request, response);
      });
      // What fastify sets on a server it makes itself: pooled peers keep their connections.
      server.keepAliveTimeout = 72_000;
      return server;
    },
  });
  registerProblemHandlers(internalApp);
  internalApp.addContentTypeParser(
    'application/octet-stream',
    { parseAs: 'buffer' },
    (_request, body, done) => done(null, body),
  );
  let internalUrl = '';
  let failedReason: (error: unknown) => void = () => {};
  const failed = new Promise<unknown>((resolvePromise) => {
    failedReason = resolvePromise;
  });
  let aliveApiServers = 0;
  const observeMembers = (members: MemberView[]) => {
    aliveApiServers = members.filter((member) => member.role === 'api' && member.status === 'alive').length;
  };
  const remoteMetrics = createRemoteMetrics(metrics.registry);
  const retryBudget = new RetryBudget();
  const context: NodeContext = {
    config,
    nodeId,
    logger,
    metrics,
    remoteMetrics,
    retryBudget,
    remotePolicy: (options) =>
      new RemotePolicy({
        retryBudget,
        metrics: remoteMetrics,
        bulkhead: { maxConcurrent: config.remoteConcurrency },
        ...options,
        backoff: { jitter: config.retryJitter as JitterKind, ...options.backoff },
      }),
    clusterSecret,
    env,
    internalApp,
    internalRawRoutes,
    internalUrl: () => internalUrl,
    advertiseHost,
    dataDir,
    aliveApiServers: () => aliveApiServers,
    fatal: (error) => {
      logger.fatal({ err: error }, 'a role failed; the node stops');
      failedReason(error);
    },
  };

  const handles: RoleHandle[] = [];
  const heartbeats: HeartbeatClient[] = [];
  let identity: IdentityRoleHandle | undefined;
  // Long polls (the change feed) hold requests open: give them a moment, then cut them.
  let internalClosing: Promise<void> | undefined;
  const closeInternal = () => {
    internalClosing ??= (async () => {
      const cut = setTimeout(() => internalApp.server.closeAllConnections(), 500);
      await internalApp.close().catch(() => {});
      clearTimeout(cut);
    })();
    return internalClosing;
  };
  const closeAll = async () => {
    await Promise.all(heartbeats.map((heartbeat) => heartbeat.stop().catch(() => {})));
    heartbeats.length = 0;
    // Api before workers (in-flight sync requests wait for workers), queue last.
    const order: RoleName[] = ['gateway', 'api', 'worker', 'identity', 'queue'];
    const closing = [...handles].sort((a, b) => order.indexOf(a.name) - order.indexOf(b.name));
    for (const handle of closing) {
      // The internal listener serves workers until the api role has drained.
      if (handle.name === 'worker' || handle.name === 'identity' || handle.name === 'queue') {
        await closeInternal();
      }
      try {
        await handle.close();
      } catch (error) {
        logger.error({ err: error, role: handle.name }, 'error while closing a role');
      }
    }
    handles.length = 0;
    await closeInternal();
  };

  try {
    if (roles.includes('queue')) handles.push(await startQueueRole(context));
    let registryUrls = [...config.registryUrls];
    if (roles.includes('gateway')) {
      const gateway = await startGatewayRole(context);
      handles.push(gateway);
      if (registryUrls.length === 0) registryUrls = [gateway.controlUrl];
    }
    if (roles.includes('identity')) {
      identity = await startIdentityRole(context);
      handles.push(identity);
    }
    const api = roles.includes('api')
      ? await createApiRole(context, {
          identityUrl: () => config.identityUrl || (identity === undefined ? '' : internalUrl),
        })
      : undefined;
    if (api !== undefined && !config.identityUrl && identity === undefined) {
      throw new PixelfleetError(
        'PF_ERR_CONFIG',
        '--identity-url is required for the api role without the identity role',
        {
          extensions: { key: '--identity-url' },
        },
      );
    }
    api?.prepare();

    internalApp.get('/healthz', async () => ({ status: 'ok', node: nodeId, roles }));
    internalApp.get('/readyz', async (_request, reply) => {
      const ready = handles.every((handle) => handle.ready());
      const checks = Object.fromEntries(
        handles.map((handle) => [handle.name, { ready: handle.ready(), ...handle.checks() }]),
      );
      return reply
        .code(ready ? 200 : 503)
        .send({ status: ready ? 'ready' : 'not ready', node: nodeId, checks });
    });
    internalApp.get('/metrics', async (_request, reply) =>
      reply.type(metrics.registry.contentType).send(await metrics.registry.metrics()),
    );
    await internalApp.listen({ host: config.internalHost, port: config.internalPort });
    internalUrl = `http://${advertiseHost}:${portOf(internalApp.server.address())}`;

    if (api !== undefined) handles.push(await api.start());
    if (roles.includes('worker')) handles.push(await startWorkerRole(context));

    const startedAt = Date.now();
    if (registryUrls.length > 0) {
      for (const handle of handles) {
        if (handle.member === undefined) continue;
        const memberId =
          handles.filter((other) => other.member !== undefined).length > 1
            ? `${nodeId}/${handle.name}`
            : nodeId;
        const heartbeat = new HeartbeatClient({
          registryUrls,
          clusterSecret,
          intervalMs: config.heartbeatInterval,
          announcement: (): MemberAnnouncement => {
            const member = handle.member!();
            return {
              id: memberId,
              role: member.role,
              ...(member.url === undefined ? {} : { url: member.url }),
              ...(member.internalUrl === undefined ? {} : { internalUrl: member.internalUrl }),
              ready: handle.ready(),
              ...(member.inflight === undefined ? {} : { load: { inflight: member.inflight } }),
              startedAt,
              intervalMs: config.heartbeatInterval,
            };
          },
          onError: (error) => logger.debug({ err: error }, 'heartbeat failed'),
          onMembers: (members) => {
            observeMembers(members);
            if (handle.name === 'identity') identity?.observeMembers(members);
          },
        });
        heartbeat.start();
        heartbeats.push(heartbeat);
      }
    } else if (roles.some((role) => role !== 'gateway')) {
      logger.warn('no --registry-urls: this node is not announced to any gateway');
    }

    const urls: Record<string, string> = { internal: internalUrl };
    for (const handle of handles) Object.assign(urls, handle.urls);
    logger.info({ roles, urls, dataDir }, 'pixelfleet node started');

    let closing: Promise<void> | undefined;
    return {
      nodeId,
      roles,
      internalUrl,
      urls,
      ...(identity === undefined ? {} : { adminToken: identity.adminToken }),
      logger,
      ready: () => handles.every((handle) => handle.ready()),
      close: () => {
        closing ??= (async () => {
          logger.info('node shutting down');
          await closeAll();
          logger.info('node shut down');
        })();
        return closing;
      },
      failed,
    };
  } catch (error) {
    await closeAll();
    throw error;
  }
}

export { listenUrl };
