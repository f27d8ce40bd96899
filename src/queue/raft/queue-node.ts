/**
 * One node of the Raft-replicated job queue, assembled: Raft storage in `<dataDir>/raft/`, the
 * host (ticks, transport, Ready loop), the replicated queue application, the `RaftQueue` that
 * serves it on this node, and optionally the client port (framed protocol + GET /status).
 *
 * A one-node group (`peers: {}`) elects itself at once and is a complete durable queue in one
 * process, with the same code path as a three-node cluster.
 */
import { join } from 'node:path';
import type { NodeId } from '../../consensus/index.ts';
import type { PeerAddress, TransportOptions } from '../../consensus/transport/index.ts';
import { PixelfleetError } from '../../errors/index.ts';
import type { QueueLogger } from '../embedded/index.ts';
import { DEFAULT_MAX_ATTEMPTS, DEFAULT_RETENTION_MS, QueueStateMachine } from '../state-machine.ts';
import { formatAddress } from './client-protocol.ts';
import { type HostStatus, type RaftHost, startRaftHost } from './node.ts';
import { QueueApplication } from './queue-application.ts';
import { type QueueServer, startQueueServer } from './queue-server.ts';
import { RaftQueue } from './raft-queue.ts';

export interface RaftQueueNodeOptions {
  /** This node's id (e.g. "n1"). */
  id: NodeId;
  /** Where this node listens for its peers (Raft traffic). */
  listen: PeerAddress;
  /** How to reach every other member, by id. Empty for a one-node group. */
  peers: Record<NodeId, PeerAddress>;
  /**
   * Founding voters; default this node and every peer. Pass `[]` for a node joining a running
   * cluster (it waits until the leader adds it with `addMember`).
   */
  voters?: NodeId[];
  /** The node keeps its Raft log in `<dataDir>/raft/`. */
  dataDir: string;
  /** Shared secret of the cluster (at least 16 bytes): authenticates every node-to-node link. */
  clusterSecret: string | Uint8Array;
  /** Serve queue clients (and GET /status) here; omit for an in-process node. Port 0 picks one. */
  clientListen?: PeerAddress;
  /** Address other nodes give clients for this node; default `clientListen` with the bound port. */
  advertiseClientAddress?: string;
  /** Deliveries before a job is dead-lettered, unless the job says otherwise (default 3). */
  maxAttempts?: number;
  /** How long finished jobs are kept for `get`, dead letters and deduplication (default 24 h). */
  retentionMs?: number;
  /** Milliseconds per Raft tick (default 25). */
  tickMs?: number;
  /** Election timeout in ticks, randomized in [n, 2n) (default 20, i.e. 500–1000 ms). */
  electionTick?: number;
  /** Heartbeat interval in ticks (default 4, i.e. 100 ms). */
  heartbeatTick?: number;
  /** Applied bytes between snapshots (default 16 MiB). */
  snapshotEveryBytes?: number;
  logger?: QueueLogger;
  /** Extra transport settings (tests route links through fault proxies with `peers`). */
  transport?: Partial<Omit<TransportOptions, 'nodeId' | 'listen' | 'peers' | 'secret' | 'onMessage'>>;
  /** Time source for command times (epoch ms). */
  clock?: { now(): number };
  /**
   * One-node embedded use: expire the leases of the previous process on start, as the embedded
   * queue does (its consumers died with it). Never set this for a multi-node cluster.
   */
  releaseLeasesOnStart?: boolean;
}

export interface RaftQueueNode {
  readonly id: NodeId;
  /** The `JobQueue` served by this node (writes need it to be the leader). */
  readonly queue: RaftQueue;
  readonly host: RaftHost;
  /** The replicated state as this node applied it (for inspection: digests, diagnostics). */
  readonly application: QueueApplication;
  /** Bound client port, or null without `clientListen`. */
  readonly clientPort: number | null;
  /** What this node advertises to clients, or null. */
  readonly clientAddress: string | null;
  status(): HostStatus;
  /** Leader only: adds a voter reachable at `address` (its Raft listen address). */
  addMember(id: NodeId, address: PeerAddress): Promise<void>;
  /** Leader only: removes a voter. */
  removeMember(id: NodeId): Promise<void>;
  /** Leader only: hands leadership over; resolves with the new leader (or null). */
  transferLeadership(to?: NodeId): Promise<NodeId | null>;
  /** Graceful stop: hand leadership to a follower, stop serving, flush the log, release the directory. */
  shutdown(): Promise<void>;
  /** Immediate stop (no leadership transfer). Idempotent. */
  close(): Promise<void>;
}

export async function openRaftQueueNode(options: RaftQueueNodeOptions): Promise<RaftQueueNode> {
  if (typeof options?.dataDir !== 'string' || options.dataDir === '') {
    throw new RangeError('dataDir must be a non-empty path');
  }
  const maxAttempts = options.maxAttempts ?? DEFAULT_MAX_ATTEMPTS;
  const retentionMs = options.retentionMs ?? DEFAULT_RETENTION_MS;
  // Checks maxAttempts and retentionMs with the state machine's own rules.
  new QueueStateMachine({ maxAttempts, retentionMs });
  const peers = options.peers ?? {};
  const voters = options.voters ?? [options.id, ...Object.keys(peers)];
  const application = new QueueApplication({ maxAttempts, retentionMs });
  const host = await startRaftHost({
    id: options.id,
    voters,
    listen: options.listen,
    peers,
    secret: options.clusterSecret,
    directory: join(options.dataDir, 'raft'),
    application,
    ...(options.tickMs === undefined ? {} : { tickMs: options.tickMs }),
    ...(options.electionTick === undefined ? {} : { electionTick: options.electionTick }),
    ...(options.heartbeatTick === undefined ? {} : { heartbeatTick: options.heartbeatTick }),
    ...(options.snapshotEveryBytes === undefined ? {} : { snapshotEveryBytes: options.snapshotEveryBytes }),
    ...(options.logger ? { logger: options.logger } : {}),
    ...(options.transport ? { transport: options.transport } : {}),
  });
  let server: QueueServer | undefined;
  let closing: Promise<void> | undefined;
  const close = (): Promise<void> => {
    closing ??= (async () => {
      await server?.close();
      await host.close();
    })();
    return closing;
  };
  const queue = new RaftQueue({
    host,
    application,
    maxAttempts,
    retentionMs,
    ...(options.logger ? { logger: options.logger } : {}),
    ...(options.clock ? { clock: options.clock } : {}),
    onClose: close,
    ...(options.releaseLeasesOnStart ? { releaseLeasesOnStart: true } : {}),
  });
  try {
    let clientAddress: string | null = null;
    if (options.clientListen) {
      server = await startQueueServer({
        queue,
        host,
        listen: options.clientListen,
        adminSecret: options.clusterSecret,
        // This node's applied state, not a linearizable read: enough for an operator's glance.
        describe: () => {
          const stats = application.machine.stats();
          return {
            queue: {
              depth: stats.depth,
              inflight: stats.inflight,
              deadLetters: stats.deadLetters,
              enqueuedTotal: stats.enqueuedTotal,
              ackedTotal: stats.ackedTotal,
            },
          };
        },
        ...(options.logger ? { logger: options.logger } : {}),
      });
      clientAddress =
        options.advertiseClientAddress ??
        formatAddress({ host: options.clientListen.host, port: server.port });
      host.advertiseClientAddress(clientAddress);
    }
    if (voters.length === 1 && voters[0] === options.id) await waitForLeadership(host, 5_000);
    const node: RaftQueueNode = {
      id: options.id,
      queue,
      host,
      application,
      clientPort: server?.port ?? null,
      clientAddress,
      status: () => host.status(),
      addMember: (id, address) => host.addMember(id, address),
      removeMember: (id) => host.removeMember(id),
      transferLeadership: (to) => host.transferLeadership(to),
      async shutdown() {
        if (host.isLeader) {
          const successor = await host.transferLeadership().catch(() => null);
          options.logger?.info({ node: options.id, successor }, 'leadership handed over for shutdown');
        }
        await queue.close();
      },
      close: () => queue.close(),
    };
    return node;
  } catch (error) {
    await queue.close().catch(() => {});
    throw error;
  }
}

function waitForLeadership(host: RaftHost, timeoutMs: number): Promise<void> {
  if (host.isLeader) return Promise.resolve();
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      unsubscribe();
      reject(new PixelfleetError('PF_ERR_QUEUE_UNAVAILABLE', 'the one-node queue did not elect itself'));
    }, timeoutMs);
    const unsubscribe = host.subscribe({
      roleChanged: () => {
        if (!host.isLeader) return;
        clearTimeout(timer);
        unsubscribe();
        resolve();
      },
    });
  });
}
