/**
 * The local region (`pixelfleet cluster`): 1 gateway, N api servers, 3 Raft queue nodes, M
 * workers and 1 identity process, each its own `pixelfleet node` on loopback under a
 * supervisor. Existing engines replace parts of it: `queue: 'nats://...'` starts no queue
 * nodes (api servers and workers use NATS JetStream), `redis` gives the api servers cluster-wide
 * limits and idempotency, `postgres` gives the identity process its store. Engine URLs reach the
 * members through their environment (PIXELFLEET_QUEUE/REDIS/POSTGRES), never their command
 * line, so passwords do not show in the process list. Ports are chosen once at start, so a restarted process comes back at the same
 * addresses (jobs name their origin api server by its internal URL). Data lives under
 * `<dataDir>/cluster/<role>-<n>`. A fresh cluster secret is generated per run; the admin token
 * is generated once and kept in `<dataDir>/cluster/admin-token` (0600).
 */
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { serviceNodeFlags } from '../cli/node-flags.ts';
import type { Logger } from '../observability/index.ts';
import { checkEngineSettings } from './engines/check.ts';
import { queueEngineOf } from './engines/queue.ts';
import { type ProcessSpec, Supervisor } from './supervisor/supervisor.ts';

export interface LocalRegionOptions {
  dataDir: string;
  apiServers?: number;
  workers?: number;
  /** Converter child processes per worker process (default 1). */
  convertersPerWorker?: number;
  queueNodes?: number;
  /** Gateway public port (0: any free port). */
  httpPort?: number;
  strategy?: string;
  logLevel?: string;
  host?: string;
  /** Extra settings passed to every api server (e.g. ['--sync-timeout', '10s']). */
  apiArgs?: string[];
  workerArgs?: string[];
  /** `raft` (default: the region's own Raft queue nodes) or `nats://host:port[,host:port...]`. */
  queue?: string;
  /** `redis://...`: cluster-wide rate limits and idempotency keys for every api server. */
  redis?: string;
  /** `postgres://...`: the identity process keeps accounts, keys and tiers there. */
  postgres?: string;
  nodeBinary?: string;
  logger: Logger;
  stopTimeoutMs?: number;
}

export interface LocalRegion {
  gatewayUrl: string;
  gatewayControlUrl: string;
  adminUrl: string;
  adminToken: string;
  adminTokenPath: string;
  clusterSecret: string;
  apiUrls: string[];
  apiInternalUrls: string[];
  /** Client addresses of the Raft queue nodes (none on NATS). */
  queueClients: string[];
  /** Which engine each part runs on. */
  engines: { queue: 'raft' | 'nats'; limits: 'local' | 'redis'; identity: 'sqlite' | 'postgres' };
  pids(): Record<string, number | undefined>;
  restarts(): Record<string, number>;
  kill(name: string, signal?: NodeJS.Signals): number | undefined;
  stop(): Promise<void>;
}

const mainScript = fileURLToPath(new URL('../cli/main.ts', import.meta.url));

async function freePort(host: string): Promise<number> {
  return new Promise((resolvePort, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen({ host, port: 0, exclusive: true }, () => {
      const address = server.address();
      const port = typeof address === 'object' && address !== null ? address.port : 0;
      server.close(() => resolvePort(port));
    });
  });
}

async function freePorts(count: number, host: string): Promise<number[]> {
  const ports = new Set<number>();
  while (ports.size < count) ports.add(await freePort(host));
  return [...ports];
}

function adminTokenAt(path: string): string {
  if (existsSync(path)) return readFileSync(path, 'utf8').trim();
  const token = randomBytes(32).toString('base64url');
  writeFileSync(path, `${token}\n`, { mode: 0o600 });
  return token;
}

export async function startLocalRegion(options: LocalRegionOptions): Promise<LocalRegion> {
  const host = options.host ?? '127.0.0.1';
  const apiServers = options.apiServers ?? 3;
  const workers = options.workers ?? 2;
  const queueEngine = queueEngineOf(options.queue ?? 'raft');
  const queueSetting = options.queue ?? 'raft';
  const redis = options.redis ?? '';
  const postgres = options.postgres ?? '';
  checkEngineSettings({ queue: queueSetting, redis, postgres }, []);
  const requestedQueueNodes = options.queueNodes ?? 3;
  for (const [name, value] of Object.entries({ apiServers, workers, queueNodes: requestedQueueNodes })) {
    if (!Number.isInteger(value) || value < 1)
      throw new RangeError(`${name} must be a positive integer, got ${value}`);
  }
  const queueNodes = queueEngine.kind === 'raft' ? requestedQueueNodes : 0;
  const root = join(resolve(options.dataDir), 'cluster');
  mkdirSync(root, { recursive: true, mode: 0o700 });
  const adminTokenPath = join(root, 'admin-token');
  const adminToken = adminTokenAt(adminTokenPath);
  const clusterSecret = randomBytes(32).toString('base64url');
  const logLevel = options.logLevel ?? 'info';

  // queue: raft + client + internal each; identity: internal + admin; gateway: control, and its
  // public port unless one was given; api: public + internal each; worker: internal each.
  const anyGatewayPort = options.httpPort === undefined || options.httpPort === 0;
  const ports = await freePorts(
    queueNodes * 3 + 2 + 1 + (anyGatewayPort ? 1 : 0) + apiServers * 2 + workers,
    host,
  );
  const take = () => {
    const port = ports.shift();
    if (port === undefined) throw new Error('bug: fewer ports reserved than the region uses');
    return port;
  };
  const gatewayPort = anyGatewayPort ? take() : (options.httpPort as number);
  const queue = Array.from({ length: queueNodes }, (_, index) => ({
    id: `q${index + 1}`,
    raft: take(),
    client: take(),
    internal: take(),
  }));
  const identity = { internal: take(), admin: take() };
  const gatewayControl = take();
  const api = Array.from({ length: apiServers }, () => ({ http: take(), internal: take() }));
  const workerPorts = Array.from({ length: workers }, () => take());

  const registryUrl = `http://${host}:${gatewayControl}`;
  const identityUrl = `http://${host}:${identity.internal}`;
  const queueClients = queue.map((node) => `${host}:${node.client}`);
  const baseEnv = {
    PATH: process.env.PATH,
    HOME: process.env.HOME,
    PIXELFLEET_CLUSTER_SECRET: clusterSecret,
  };
  const queueEnv: NodeJS.ProcessEnv = queueEngine.kind === 'raft' ? {} : { PIXELFLEET_QUEUE: queueSetting };
  const queueArgs = queueEngine.kind === 'raft' ? ['--queue-nodes', queueClients.join(',')] : [];
  const spec = (
    name: string,
    role: string,
    stopGroup: number,
    args: string[],
    env: NodeJS.ProcessEnv = {},
    nodeId = name,
  ): ProcessSpec => ({
    name,
    role,
    stopGroup,
    args: [
      ...serviceNodeFlags,
      mainScript,
      'node',
      '--roles',
      role,
      '--node-id',
      nodeId,
      '--data-dir',
      join(root, name),
      '--internal-host',
      host,
      '--log-level',
      logLevel,
      ...args,
    ],
    env: { ...baseEnv, ...env },
    logFile: join(root, name, 'node.log'),
  });

  const supervisor = new Supervisor({
    nodeBinary: options.nodeBinary ?? process.execPath,
    logger: options.logger,
    ...(options.stopTimeoutMs === undefined ? {} : { stopTimeoutMs: options.stopTimeoutMs }),
  });
  try {
    const peers = queue.map((node) => `${node.id}=${host}:${node.raft}`).join(',');
    await Promise.all(
      queue.map((node, index) =>
        supervisor.start(
          spec(
            `queue-${index + 1}`,
            'queue',
            3,
            [
              '--queue-peers',
              peers,
              '--queue-client-port',
              String(node.client),
              '--internal-port',
              String(node.internal),
              '--registry-urls',
              registryUrl,
            ],
            {},
            // The Raft id, as --queue-peers names it.
            node.id,
          ),
        ),
      ),
    );
    const gateway = await supervisor.start(
      spec('gateway-1', 'gateway', 0, [
        '--gateway-host',
        host,
        '--gateway-port',
        String(gatewayPort),
        '--gateway-control-port',
        String(gatewayControl),
        '--gateway-strategy',
        options.strategy ?? 'least-time',
      ]),
    );
    const identityStarted = await supervisor.start(
      spec(
        'identity-1',
        'identity',
        2,
        [
          '--internal-port',
          String(identity.internal),
          '--admin-host',
          host,
          '--admin-port',
          String(identity.admin),
          '--registry-urls',
          registryUrl,
        ],
        { PIXELFLEET_ADMIN_TOKEN: adminToken, ...(postgres === '' ? {} : { PIXELFLEET_POSTGRES: postgres }) },
      ),
    );
    const apiStarted = await Promise.all(
      api.map((ports, index) =>
        supervisor.start(
          spec(
            `api-${index + 1}`,
            'api',
            1,
            [
              '--http-host',
              host,
              '--http-port',
              String(ports.http),
              '--internal-port',
              String(ports.internal),
              ...queueArgs,
              '--identity-url',
              identityUrl,
              '--registry-urls',
              registryUrl,
              ...(options.apiArgs ?? []),
            ],
            { ...queueEnv, ...(redis === '' ? {} : { PIXELFLEET_REDIS: redis }) },
          ),
        ),
      ),
    );
    await Promise.all(
      workerPorts.map((internal, index) =>
        supervisor.start(
          spec(
            `worker-${index + 1}`,
            'worker',
            2,
            [
              '--workers',
              String(options.convertersPerWorker ?? 1),
              '--internal-port',
              String(internal),
              ...queueArgs,
              '--registry-urls',
              registryUrl,
              ...(options.workerArgs ?? []),
            ],
            queueEnv,
          ),
        ),
      ),
    );
    return {
      gatewayUrl: gateway.urls.gateway ?? `http://${host}:${gatewayPort}`,
      gatewayControlUrl: registryUrl,
      adminUrl: identityStarted.urls.admin ?? `http://${host}:${identity.admin}`,
      adminToken,
      adminTokenPath,
      clusterSecret,
      apiUrls: apiStarted.map((started, index) => started.urls.api ?? `http://${host}:${api[index]!.http}`),
      apiInternalUrls: api.map((ports) => `http://${host}:${ports.internal}`),
      queueClients,
      engines: {
        queue: queueEngine.kind,
        limits: redis === '' ? 'local' : 'redis',
        identity: postgres === '' ? 'sqlite' : 'postgres',
      },
      pids: () => supervisor.pids(),
      restarts: () => supervisor.restarts(),
      kill: (name, signal) => supervisor.kill(name, signal),
      stop: () => supervisor.stop(),
    };
  } catch (error) {
    await supervisor.stop();
    throw error;
  }
}
