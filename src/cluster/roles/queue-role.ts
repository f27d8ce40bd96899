/**
 * The queue role: one node of the Raft-replicated job queue (src/queue/raft), serving queue
 * clients (api servers, workers) on its client port. Ready while it knows a leader.
 */
import { join } from 'node:path';
import { PixelfleetError } from '../../errors/index.ts';
import { openRaftQueueNode, parseAddress } from '../../queue/raft/index.ts';
import type { NodeContext, RoleHandle } from './types.ts';

const dayMs = 86_400_000;

export function parseQueuePeers(entries: readonly string[]): Record<string, { host: string; port: number }> {
  const peers: Record<string, { host: string; port: number }> = {};
  for (const entry of entries) {
    const separator = entry.indexOf('=');
    if (separator <= 0) {
      throw new PixelfleetError(
        'PF_ERR_CONFIG',
        `--queue-peers: entries are id=host:port, got ${JSON.stringify(entry)}`,
        {
          extensions: { key: '--queue-peers' },
        },
      );
    }
    peers[entry.slice(0, separator)] = parseAddress(entry.slice(separator + 1));
  }
  return peers;
}

export async function startQueueRole(context: NodeContext): Promise<RoleHandle> {
  const { config, nodeId, logger } = context;
  const members = parseQueuePeers(config.queuePeers);
  const own = members[nodeId];
  if (own === undefined) {
    throw new PixelfleetError('PF_ERR_CONFIG', `--queue-peers must name this node (${nodeId})`, {
      extensions: { key: '--queue-peers' },
    });
  }
  const peers = { ...members };
  delete peers[nodeId];
  const node = await openRaftQueueNode({
    id: nodeId,
    listen: own,
    peers,
    dataDir: join(context.dataDir, 'queue'),
    clusterSecret: context.clusterSecret,
    clientListen: { host: config.internalHost, port: config.queueClientPort },
    ...(context.advertiseHost !== config.internalHost && config.queueClientPort !== 0
      ? { advertiseClientAddress: `${context.advertiseHost}:${config.queueClientPort}` }
      : {}),
    maxAttempts: config.maxAttempts,
    retentionMs: Math.max(config.resultTtl * 2, dayMs),
    logger: logger.child({ role: 'queue' }),
  });
  node.host.subscribe({ failed: (error) => context.fatal(error) });
  const clientAddress = node.clientAddress ?? '';
  logger.info({ node: nodeId, raft: `${own.host}:${own.port}`, client: clientAddress }, 'queue role started');
  return {
    name: 'queue',
    ready: () => node.status().leader !== null,
    checks: () => {
      const status = node.status();
      return { queueRole: status.role, queueLeader: status.leader, queueTerm: status.term };
    },
    member: () => ({ role: 'queue', internalUrl: `http://${clientAddress}` }),
    urls: { queueClient: clientAddress },
    close: () => node.shutdown(),
  };
}
