/**
 * What the api role's routes need, and the per-request facts the access log reports.
 */
import type { Config } from '../config/index.ts';
import type { Principal } from '../identity/index.ts';
import type { Logger, ServiceMetrics, TraceContext } from '../observability/index.ts';
import type { JobQueue } from '../queue/types.ts';
import type { UsageMeter } from '../usage/usage-meter.ts';
import type { JobOrigin } from '../worker/dispatcher.ts';
import type { Admission } from './admission.ts';
import type { BlobStore, StoredResult } from './blobs.ts';
import type { Completions } from './completions.ts';
import type { IdempotencyStore } from './idempotency/index.ts';
import type { TenancyGuard } from './tenancy.ts';

export interface ApiDependencies {
  config: Config;
  queue: JobQueue;
  blobs: BlobStore;
  completions: Completions;
  admission: Admission;
  tenancy: TenancyGuard;
  usage: UsageMeter;
  idempotency: IdempotencyStore;
  metrics: ServiceMetrics;
  logger: Logger;
  workers: () => { size: number; alive: number; busy: number };
  /** Cluster mode: this api server, named in every job so workers know whom to ask. */
  origin?: JobOrigin;
  /** Cluster mode: readiness decided by the role (queue and identity reachable), not local workers. */
  readiness?: () => { ready: boolean; checks: Record<string, unknown> };
  /** Cluster mode: fetches an async result this server does not hold from the job's origin. */
  remoteResult?: (jobId: string, origin: JobOrigin) => Promise<StoredResult | undefined>;
}

/** Filled in by routes, written to the one access-log line of the request. */
export interface RequestFacts {
  trace: TraceContext;
  jobId?: string;
  code?: string;
  bytesIn?: number;
  bytesOut?: number;
  queueWaitMs?: number;
  conversionMs?: number;
  cpuMicros?: number;
  admitted?: boolean;
  accountId?: string;
  keyId?: string;
}

declare module 'fastify' {
  interface FastifyRequest {
    facts: RequestFacts;
    /** Who is calling; set for every /v1 request that passed authentication. */
    principal: Principal;
  }
}
