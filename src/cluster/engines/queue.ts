/**
 * Which job queue the api and worker roles use: the cluster's own Raft queue (`--queue raft`,
 * reached through RaftQueueClient at --queue-nodes) or an existing NATS JetStream cluster
 * (`--queue nats://host:port[,host:port...]`, NatsJobQueue; no queue role runs then). Both are a
 * `JobQueue` and pass one contract suite, so the roles do not know which one they hold.
 */
import { PixelfleetError } from '../../errors/index.ts';
import { openNatsQueue } from '../../queue/nats/index.ts';
import { RaftQueueClient } from '../../queue/raft/index.ts';
import type { JobQueue } from '../../queue/types.ts';
import type { NodeContext } from '../roles/types.ts';

export type QueueEngine = { kind: 'raft' } | { kind: 'nats'; servers: string[] };

const dayMs = 86_400_000;

function invalidQueue(detail: string): PixelfleetError {
  return new PixelfleetError('PF_ERR_CONFIG', `--queue: ${detail}`, { extensions: { key: '--queue' } });
}

/** Reads the `--queue` setting: `raft`, or `nats://` followed by comma-separated host:port. */
export function queueEngineOf(setting: string): QueueEngine {
  const value = setting.trim();
  if (value === '' || value === 'raft') return { kind: 'raft' };
  if (!value.startsWith('nats://')) {
    throw invalidQueue(`expected raft or nats://host:port[,host:port...], got ${JSON.stringify(setting)}`);
  }
  const servers = value
    .slice('nats://'.length)
    .split(',')
    .map((entry) => entry.trim())
    .filter((entry) => entry !== '')
    .map((entry) => (entry.startsWith('nats://') ? entry : `nats://${entry}`));
  if (servers.length === 0) throw invalidQueue('nats:// needs at least one host:port');
  for (const server of servers) {
    let url: URL;
    try {
      url = new URL(server);
    } catch (cause) {
      throw new PixelfleetError('PF_ERR_CONFIG', `--queue: ${JSON.stringify(server)} is not a URL`, {
        cause,
        extensions: { key: '--queue' },
      });
    }
    if (url.hostname === '' || url.port === '') throw invalidQueue(`${server} must name a host and a port`);
  }
  return { kind: 'nats', servers };
}

/** Stream replicas for NATS: the setting, or 3 on a cluster of 3+ servers and 1 on a lone one. */
export function natsReplicasOf(configured: number, servers: readonly string[]): number {
  if (configured > 0) return configured;
  return servers.length >= 3 ? 3 : 1;
}

/**
 * The queue client of an api or worker role. Raft: needs --queue-nodes. NATS: connects and
 * makes sure the streams exist (every role may do so; creation is idempotent).
 */
export async function openClusterQueue(context: NodeContext, role: 'api' | 'worker'): Promise<JobQueue> {
  const { config } = context;
  const engine = queueEngineOf(config.queue);
  if (engine.kind === 'nats') {
    return openNatsQueue({
      servers: engine.servers,
      replicas: natsReplicasOf(config.queueReplicas, engine.servers),
      maxAttempts: config.maxAttempts,
      retentionMs: Math.max(config.resultTtl * 2, dayMs),
      name: `pixelfleet-${role}-${context.nodeId}`,
    });
  }
  if (config.queueNodes.length === 0) {
    throw new PixelfleetError(
      'PF_ERR_CONFIG',
      `--queue-nodes is required for the ${role} role on the Raft queue (or use --queue nats://...)`,
      { extensions: { key: '--queue-nodes' } },
    );
  }
  return new RaftQueueClient({ nodes: [...config.queueNodes], requestTimeoutMs: 10_000 });
}
