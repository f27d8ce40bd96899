/**
 * What every role of a node shares and exposes: the process-wide context it is started with, and
 * the handle the node keeps (readiness for /readyz and heartbeats, and an orderly close).
 */
import type { FastifyInstance } from 'fastify';
import type { Config } from '../../config/index.ts';
import type { MemberRole } from '../../discovery/index.ts';
import type { Logger, ServiceMetrics } from '../../observability/index.ts';
import type {
  RemoteMetrics,
  RemotePolicy,
  RemotePolicyOptions,
  RetryBudget,
} from '../../resilience/remote/index.ts';
import type { RawRoutes } from '../http/raw-routes.ts';

export type RoleName = 'gateway' | 'api' | 'queue' | 'worker' | 'identity';

export interface NodeContext {
  config: Config;
  nodeId: string;
  logger: Logger;
  metrics: ServiceMetrics;
  remoteMetrics: RemoteMetrics;
  /** Shared by every remote policy of the process: retries stay a bounded share of calls. */
  retryBudget: RetryBudget;
  clusterSecret: string;
  env: NodeJS.ProcessEnv;
  /** The process's cluster-internal listener; routes are added before it listens. */
  internalApp: FastifyInstance;
  /** Routes served on the internal listener by bare node:http before fastify (hot paths). */
  internalRawRoutes: RawRoutes;
  /** Resolves to the internal listener's advertised base URL once it listens. */
  internalUrl: () => string;
  /** Host other members use to reach this process. */
  advertiseHost: string;
  /** Role data directories live under it: `<dataDir>/<role>`. */
  dataDir: string;
  /**
   * Api servers the registry reports alive, from this node's latest heartbeat answer (0 before
   * the first one): how many servers share each cluster-wide limit while Redis is unreachable.
   */
  aliveApiServers: () => number;
  /** The node stops: a role hit a failure it cannot recover from. */
  fatal: (error: unknown) => void;
  /**
   * A policy for calls to one remote dependency, with this node's settings filled in: the
   * configured jitter, a bulkhead of `remoteConcurrency` calls, the shared retry budget and the
   * remote metrics. `options` add to or override them.
   */
  remotePolicy: (options: RemotePolicyOptions) => RemotePolicy;
}

export interface RoleHandle {
  name: RoleName;
  /** Readiness for /readyz and the heartbeat's `ready`. */
  ready(): boolean;
  checks(): Record<string, unknown>;
  /** The member this role announces (none for the gateway, which hosts the registry). */
  member?: () => { role: MemberRole; url?: string; internalUrl?: string; inflight?: number };
  /** Where clients reach the role (printed by `pixelfleet node`, read by the supervisor). */
  urls: Record<string, string>;
  /** Stop taking work (the node stops heartbeats first, then calls this). */
  close(): Promise<void>;
}
