/**
 * `pixelfleet cluster` (and `npm run cluster`): a local region on loopback — 1 gateway, api
 * servers, 3 Raft queue nodes, workers and 1 identity process, each its own process, supervised
 * (restarted with backoff when one crashes). `--queue nats://...`, `--redis redis://...` and
 * `--postgres postgres://...` (or PIXELFLEET_QUEUE / _REDIS / _POSTGRES) run those parts on
 * engines the operator already has, each independently of the others. Prints where the gateway listens and where the
 * admin API and its token are; Ctrl-C or SIGTERM stops every process (SIGTERM, then SIGKILL
 * after a deadline) and exits 0.
 */
import { availableParallelism } from 'node:os';
import { parseArgs } from 'node:util';
import { checkEngineSettings } from '../cluster/engines/check.ts';
import { startLocalRegion } from '../cluster/local-region.ts';
import { createLogger, flushLogger } from '../observability/index.ts';

const usage = `Usage: pixelfleet cluster [options]

Starts a local region: 1 gateway, api servers, 3 queue nodes, workers, 1 identity process,
each its own process on loopback, restarted when it crashes. Ctrl-C stops them all.
PIXELFLEET_QUEUE, PIXELFLEET_REDIS and PIXELFLEET_POSTGRES stand in for the engine flags.

Options:
  --api-servers <n>          api server processes (default 3)
  --workers <n>              worker processes (default: one per core)
  --worker-converters <n>    converter child processes per worker process (default 1)
  --http-port <port>         the gateway's public port (default 8000; 0 = any free port)
  --data-dir <dir>           data under <dir>/cluster/<role>-<n> (default ./data)
  --strategy <name>          round-robin | weighted-round-robin | least-connections |
                             least-time | consistent-hash (default least-time)
  --api-args <args>          extra settings for every api server, space-separated
  --worker-args <args>       extra settings for every worker, space-separated (e.g. --worker-args='--job-timeout 2s')
  --queue <engine>           raft (default: 3 Raft queue nodes) or nats://host:port[,host:port...]
                             (an existing NATS JetStream; no queue nodes are started)
  --redis <url>              redis://[user:password@]host:port[/db]: rate limits and idempotency
                             keys shared by every api server (--global-rate is then per cluster)
  --postgres <url>           postgres://user:password@host:port/db: the identity store
                             (default: SQLite under the data dir)
  --log-level <level>        log level of every process (default info); logs go to
                             <dir>/cluster/<name>/node.log
  -h, --help                 this text`;

function positive(name: string, value: string | undefined, fallback: number, allowZero = false): number {
  if (value === undefined) return fallback;
  const parsed = Number(value);
  if (!Number.isSafeInteger(parsed) || parsed < (allowZero ? 0 : 1)) {
    throw new RangeError(
      `--${name} must be a ${allowZero ? 'non-negative' : 'positive'} integer, got ${JSON.stringify(value)}`,
    );
  }
  return parsed;
}

export async function runClusterCommand(argv: string[], env: NodeJS.ProcessEnv): Promise<number> {
  let options: Parameters<typeof startLocalRegion>[0];
  const logger = createLogger({ level: 'info', name: 'pixelfleet-cluster' });
  try {
    const { values } = parseArgs({
      args: argv,
      strict: true,
      options: {
        'api-servers': { type: 'string' },
        workers: { type: 'string' },
        'worker-converters': { type: 'string' },
        'http-port': { type: 'string' },
        'data-dir': { type: 'string' },
        strategy: { type: 'string' },
        'api-args': { type: 'string' },
        'worker-args': { type: 'string' },
        queue: { type: 'string' },
        redis: { type: 'string' },
        postgres: { type: 'string' },
        'log-level': { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
    });
    if (values.help) {
      console.log(usage);
      return 0;
    }
    const queue = values.queue ?? env.PIXELFLEET_QUEUE;
    const redis = values.redis ?? env.PIXELFLEET_REDIS;
    const postgres = values.postgres ?? env.PIXELFLEET_POSTGRES;
    checkEngineSettings({ queue: queue ?? 'raft', redis: redis ?? '', postgres: postgres ?? '' }, []);
    options = {
      dataDir: values['data-dir'] ?? './data',
      ...(queue === undefined || queue === '' ? {} : { queue }),
      ...(redis === undefined || redis === '' ? {} : { redis }),
      ...(postgres === undefined || postgres === '' ? {} : { postgres }),
      apiServers: positive('api-servers', values['api-servers'], 3),
      workers: positive('workers', values.workers, Math.max(1, availableParallelism())),
      convertersPerWorker: positive('worker-converters', values['worker-converters'], 1),
      httpPort: positive('http-port', values['http-port'], 8000, true),
      ...(values.strategy === undefined ? {} : { strategy: values.strategy }),
      ...(values['api-args'] === undefined
        ? {}
        : { apiArgs: values['api-args'].split(/\s+/).filter(Boolean) }),
      ...(values['worker-args'] === undefined
        ? {}
        : { workerArgs: values['worker-args'].split(/\s+/).filter(Boolean) }),
      logLevel: values['log-level'] ?? 'info',
      logger,
    };
  } catch (error) {
    console.error(`pixelfleet cluster: ${(error as Error).message}\n\n${usage}`);
    return 2;
  }

  let stopping = false;
  let region: Awaited<ReturnType<typeof startLocalRegion>> | undefined;
  const stopped = new Promise<number>((resolve) => {
    const onSignal = (signal: NodeJS.Signals) => {
      if (stopping) return;
      stopping = true;
      logger.info({ signal }, 'stopping the local cluster');
      const finish = async (code: number) => {
        logger.info('local cluster stopped');
        await flushLogger(logger);
        resolve(code);
      };
      if (region === undefined) return;
      region.stop().then(
        () => finish(0),
        (error: unknown) => {
          logger.error({ err: error }, 'stop failed');
          void finish(1);
        },
      );
    };
    process.on('SIGINT', onSignal);
    process.on('SIGTERM', onSignal);
  });
  try {
    region = await startLocalRegion(options);
  } catch (error) {
    logger.error({ err: error }, 'the local cluster failed to start');
    await flushLogger(logger);
    return 1;
  }
  logger.info(
    {
      gatewayUrl: region.gatewayUrl,
      gatewayControlUrl: region.gatewayControlUrl,
      adminUrl: region.adminUrl,
      adminTokenPath: region.adminTokenPath,
      apiUrls: region.apiUrls,
      apiInternalUrls: region.apiInternalUrls,
      queueClients: region.queueClients,
      engines: region.engines,
      pids: region.pids(),
    },
    'local cluster ready',
  );
  console.error(
    `pixelfleet cluster: gateway ${region.gatewayUrl} · admin ${region.adminUrl} (token in ${region.adminTokenPath}) · Ctrl-C stops`,
  );
  // A signal that arrived while starting: stop now.
  if (stopping) {
    await region.stop();
    await flushLogger(logger);
    return 0;
  }
  return stopped;
}
