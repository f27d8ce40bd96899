/**
 * `pixelfleet queue`: runs one node of the Raft-replicated job queue until SIGTERM/SIGINT.
 *
 *   pixelfleet queue --id n1 --peers n1=127.0.0.1:7001,n2=127.0.0.1:7002,n3=127.0.0.1:7003 \
 *     --client-port 7101 --data-dir ./data/n1 --cluster-secret <secret>
 *
 * and administers a running cluster through any node's client port:
 *
 *   pixelfleet queue status  --cluster 127.0.0.1:7101,127.0.0.1:7102
 *   pixelfleet queue members add --cluster ... --id n4 --address 127.0.0.1:7004
 *   pixelfleet queue members remove --cluster ... --id n2
 *   pixelfleet queue members transfer --cluster ... [--to n2]
 *
 * The first signal shuts down gracefully: a leader hands leadership to its most up-to-date
 * follower, then the node stops serving, flushes its log and exits 0. A second signal exits at
 * once. Also runnable directly: `node src/cli/queue.ts --id n1 ...`.
 */
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { isPixelfleetError } from '../errors/index.ts';
import { createLogger } from '../observability/index.ts';
import { openRaftQueueNode, parseAddress, RaftQueueClient } from '../queue/raft/index.ts';

const usage = `Usage: pixelfleet queue --id <node> --peers <id=host:port,...> --data-dir <dir> [options]

Runs one node of the Raft-replicated job queue until SIGTERM (graceful: hands over leadership,
flushes its log, exits 0).

Options:
  --id <node>                 this node's id; must appear in --peers
  --peers <list>              every member's Raft address: n1=host:port,n2=host:port,...
  --data-dir <dir>            where the node keeps its Raft log (<dir>/raft/)
  --cluster-secret <secret>   shared secret of the cluster, >= 16 bytes
                              (default: $PIXELFLEET_CLUSTER_SECRET)
  --client-port <port>        serve queue clients and GET /status here (default: none)
  --client-host <host>        interface of the client port (default 127.0.0.1)
  --advertise-client <addr>   host:port other nodes give clients for this node
                              (default: client-host:client-port)
  --listen <host:port>        Raft listen address (default: this node's entry in --peers)
  --join                      join a running cluster (the leader adds this node) instead of
                              founding one with the members of --peers
  --max-attempts <n>          deliveries before dead letter (default 3)
  --retention-ms <ms>         how long finished jobs are remembered (default 86400000)
  --tick-ms <ms>              Raft tick (default 25; heartbeats every 4 ticks)
  --election-ticks <n>        election timeout in ticks, randomized in [n, 2n) (default 20)
  --log-level <level>         pino level (default info)
  -h, --help                  this text

Administration (through the client ports of a running cluster; needs the cluster secret):
  pixelfleet queue status --cluster <host:port,...>
  pixelfleet queue members add --cluster <host:port,...> --id <node> --address <raft host:port>
  pixelfleet queue members remove --cluster <host:port,...> --id <node>
  pixelfleet queue members transfer --cluster <host:port,...> [--to <node>]
  (start a node to add with --join and the existing members in --peers, then 'members add')`;

function integer(name: string, value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  const parsed = Number(value);
  if (!Number.isSafeInteger(parsed) || parsed < 0) {
    throw new RangeError(`--${name} must be a non-negative integer, got ${JSON.stringify(value)}`);
  }
  return parsed;
}

function parsePeers(text: string): Record<string, { host: string; port: number }> {
  const peers: Record<string, { host: string; port: number }> = {};
  for (const item of text.split(',').filter((part) => part.trim() !== '')) {
    const separator = item.indexOf('=');
    if (separator <= 0) throw new RangeError(`--peers entries are id=host:port, got ${JSON.stringify(item)}`);
    const id = item.slice(0, separator).trim();
    if (id in peers) throw new RangeError(`--peers names ${id} twice`);
    peers[id] = parseAddress(item.slice(separator + 1));
  }
  return peers;
}

/**
 * Runs the queue node described by `argv` (the arguments after `queue`). Resolves with the exit
 * code once the node has stopped: 0 after a graceful shutdown, 2 for bad arguments, 1 on failure.
 */
export async function runQueueCommand(argv: string[], env: NodeJS.ProcessEnv): Promise<number> {
  if (argv[0] === 'members' || argv[0] === 'status') return administer(argv, env);
  let values: ReturnType<typeof parse>['values'];
  const parse = (args: string[]) =>
    parseArgs({
      args,
      strict: true,
      options: {
        id: { type: 'string' },
        peers: { type: 'string' },
        'data-dir': { type: 'string' },
        'cluster-secret': { type: 'string' },
        'client-port': { type: 'string' },
        'client-host': { type: 'string' },
        'advertise-client': { type: 'string' },
        listen: { type: 'string' },
        join: { type: 'boolean' },
        'max-attempts': { type: 'string' },
        'retention-ms': { type: 'string' },
        'tick-ms': { type: 'string' },
        'election-ticks': { type: 'string' },
        'log-level': { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
    });
  let options: Parameters<typeof openRaftQueueNode>[0];
  try {
    values = parse(argv).values;
    if (values.help) {
      console.log(usage);
      return 0;
    }
    const id = values.id;
    if (!id) throw new RangeError('--id is required');
    if (!values.peers) throw new RangeError('--peers is required');
    if (!values['data-dir']) throw new RangeError('--data-dir is required');
    const members = parsePeers(values.peers);
    const own = members[id];
    if (own === undefined) throw new RangeError(`--peers must include this node (${id})`);
    const secret = values['cluster-secret'] ?? env.PIXELFLEET_CLUSTER_SECRET;
    if (!secret) throw new RangeError('--cluster-secret (or PIXELFLEET_CLUSTER_SECRET) is required');
    const peers = { ...members };
    delete peers[id];
    const clientPort = integer('client-port', values['client-port']);
    const clientHost = values['client-host'] ?? '127.0.0.1';
    const maxAttempts = integer('max-attempts', values['max-attempts']);
    const retentionMs = integer('retention-ms', values['retention-ms']);
    const tickMs = integer('tick-ms', values['tick-ms']);
    const electionTick = integer('election-ticks', values['election-ticks']);
    options = {
      id,
      listen: values.listen ? parseAddress(values.listen) : own,
      peers,
      ...(values.join ? { voters: [] } : {}),
      dataDir: values['data-dir'],
      clusterSecret: secret,
      ...(clientPort === undefined ? {} : { clientListen: { host: clientHost, port: clientPort } }),
      ...(values['advertise-client'] ? { advertiseClientAddress: values['advertise-client'] } : {}),
      ...(maxAttempts === undefined ? {} : { maxAttempts }),
      ...(retentionMs === undefined ? {} : { retentionMs }),
      ...(tickMs === undefined ? {} : { tickMs }),
      ...(electionTick === undefined ? {} : { electionTick }),
    };
  } catch (error) {
    console.error(`pixelfleet queue: ${(error as Error).message}\n\n${usage}`);
    return 2;
  }

  const logger = createLogger({
    level: values['log-level'] ?? 'info',
    name: `pixelfleet-queue-${options.id}`,
  });
  let node: Awaited<ReturnType<typeof openRaftQueueNode>>;
  try {
    node = await openRaftQueueNode({ ...options, logger });
  } catch (error) {
    logger.error({ err: error }, 'queue node failed to start');
    return isPixelfleetError(error, 'PF_ERR_STORAGE_LOCKED') ? 2 : 1;
  }
  logger.info(
    {
      node: node.id,
      raft: `${options.listen.host}:${options.listen.port}`,
      client: node.clientAddress,
      peers: Object.keys(options.peers),
    },
    'queue node started',
  );

  return new Promise<number>((resolve) => {
    let signals = 0;
    const stop = (code: number) => {
      process.off('SIGTERM', onSignal);
      process.off('SIGINT', onSignal);
      resolve(code);
    };
    const onSignal = (signal: NodeJS.Signals) => {
      signals++;
      if (signals > 1) {
        logger.warn({ signal }, 'second signal: exiting now');
        stop(1);
        return;
      }
      logger.info({ signal }, 'signal received: shutting down gracefully');
      node.shutdown().then(
        () => {
          logger.info({ node: node.id }, 'queue node stopped');
          stop(0);
        },
        (error: unknown) => {
          logger.error({ err: error }, 'graceful shutdown failed');
          stop(1);
        },
      );
    };
    process.on('SIGTERM', onSignal);
    process.on('SIGINT', onSignal);
    node.host.subscribe({
      failed: (error) => {
        logger.error({ err: error }, 'queue node stopped after a failure; exiting');
        node.close().finally(() => stop(1));
      },
    });
  });
}

/** `queue status` and `queue members ...`: one request to the cluster, printed as JSON. */
async function administer(argv: string[], env: NodeJS.ProcessEnv): Promise<number> {
  const [command, action, ...rest] = argv;
  const args = command === 'status' ? argv.slice(1) : rest;
  let values: { cluster?: string; id?: string; address?: string; to?: string; 'cluster-secret'?: string };
  try {
    values = parseArgs({
      args,
      strict: true,
      options: {
        cluster: { type: 'string' },
        id: { type: 'string' },
        address: { type: 'string' },
        to: { type: 'string' },
        'cluster-secret': { type: 'string' },
      },
    }).values;
    if (!values.cluster) throw new RangeError('--cluster (client addresses of the nodes) is required');
    if (command === 'members' && !['add', 'remove', 'transfer'].includes(action ?? '')) {
      throw new RangeError(`members takes add, remove or transfer, got ${JSON.stringify(action)}`);
    }
    if ((action === 'add' || action === 'remove') && !values.id) throw new RangeError('--id is required');
    if (action === 'add' && !values.address)
      throw new RangeError('--address (the Raft host:port) is required');
  } catch (error) {
    console.error(`pixelfleet queue: ${(error as Error).message}\n\n${usage}`);
    return 2;
  }
  const secret = values['cluster-secret'] ?? env.PIXELFLEET_CLUSTER_SECRET;
  const nodes = values.cluster.split(',').filter((part) => part.trim() !== '');
  const client = new RaftQueueClient({
    nodes,
    requestTimeoutMs: 15_000,
    ...(secret ? { clusterSecret: secret } : {}),
  });
  try {
    let result: unknown;
    if (command === 'status') result = await leaderStatus(client, nodes);
    else if (action === 'add') result = await client.addMember(values.id!, values.address!);
    else if (action === 'remove') result = await client.removeMember(values.id!);
    else result = await client.transferLeadership(values.to);
    console.log(JSON.stringify(result, null, 2));
    return 0;
  } catch (error) {
    console.error(`pixelfleet queue: ${error instanceof Error ? error.message : String(error)}`);
    return error instanceof RangeError || isPixelfleetError(error, 'PF_ERR_ADMIN_UNAUTHORIZED') ? 2 : 1;
  } finally {
    await client.close();
  }
}

/** The leader's status document (or the first answering node's, when no leader is known). */
async function leaderStatus(client: RaftQueueClient, nodes: string[]): Promise<Record<string, unknown>> {
  let lastError: unknown;
  for (const node of nodes) {
    try {
      const status = await client.status(node);
      const leader = status.leaderClientAddress;
      return typeof leader === 'string' && leader !== node ? await client.status(leader) : status;
    } catch (error) {
      lastError = error;
    }
  }
  throw lastError;
}

if (process.argv[1] !== undefined && fileURLToPath(import.meta.url) === process.argv[1]) {
  // Exit explicitly: a node that stopped must not linger on a forgotten handle.
  process.exit(await runQueueCommand(process.argv.slice(2), process.env));
}
