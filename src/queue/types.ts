/**
 * The job queue contract. The embedded queue (one process, a fsynced log on local disk) and the
 * Raft-replicated queue implement this same interface, and one contract test suite runs against
 * both. Blobs never travel through a queue: a payload is a small JSON descriptor that says where
 * the input lives.
 *
 * Guarantees every implementation gives:
 * - `enqueue` resolves only once the job is durable (fsynced locally, or on a majority), and is
 *   idempotent by `id`: enqueueing an id the queue already knows returns `duplicate: true` and
 *   never creates a second job (within the retention window).
 * - FIFO within one account; accounts are served round robin, so one busy tenant cannot starve
 *   the others.
 * - A claimed job is leased; a lease that is not acked, nacked or extended before it expires
 *   makes the job claimable again (redelivery). After `maxAttempts` deliveries the job goes to
 *   the dead-letter list with its last reason.
 * - `ack`, `nack` and `extend` are fenced by the lease id: a consumer whose lease expired gets
 *   `PF_ERR_LEASE_LOST` and cannot overwrite the newer holder's outcome.
 */

/** A JSON-serialisable job descriptor (never image bytes). */
export type JobPayload = { readonly [key: string]: unknown };

export type JobState = 'queued' | 'running' | 'succeeded' | 'dead' | 'expired';

export interface EnqueueRequest {
  /** Client-supplied id: the deduplication key. */
  id: string;
  /** Tenant the job belongs to, for fair scheduling. */
  account: string;
  payload: JobPayload;
  /** Deliveries allowed before dead-lettering (default: the queue's `maxAttempts`). */
  maxAttempts?: number;
  /**
   * Epoch ms after which the job is worthless (a synchronous caller gave up). A job not yet
   * claimed by then is dropped as `expired` instead of being converted for nobody.
   */
  deadline?: number;
  /**
   * How long the finished job's record is kept (for `get`, dead letters and deduplication);
   * default: the queue's retention. Synchronous jobs need none to speak of, and a long default
   * would hold every one of them in memory for a day.
   */
  retentionMs?: number;
  /**
   * False: resolve once the job is queued, without waiting for it to be durable. Only for jobs
   * that are worthless after a crash anyway — a synchronous caller whose input bytes live in the
   * same process. A replicated queue may ignore it (it must commit to make the job visible).
   * Default true.
   */
  durable?: boolean;
}

export interface EnqueueResult {
  id: string;
  /** True when a job with this id already existed; nothing new was queued. */
  duplicate: boolean;
  state: JobState;
}

export interface ClaimRequest {
  /** Who holds the lease (worker id); recorded for diagnostics. */
  consumer: string;
  leaseMs: number;
  /** Long-poll: wait up to this long for a job before resolving `undefined` (default 0). */
  waitMs?: number;
  signal?: AbortSignal;
}

export interface ClaimedJob {
  id: string;
  account: string;
  payload: JobPayload;
  /** 1-based delivery number. */
  attempt: number;
  maxAttempts: number;
  /** Fencing token for ack/nack/extend; changes on every delivery. */
  leaseId: string;
  leaseExpiresAt: number;
  enqueuedAt: number;
  deadline?: number;
}

export interface NackOptions {
  reason: string;
  /** False sends the job straight to the dead-letter list (a permanent failure). */
  retry: boolean;
  /** Do not redeliver before this many ms (backoff). */
  delayMs?: number;
}

/** A small JSON summary stored with a finished job (sizes, CPU time...). */
export type JobOutcome = { readonly [key: string]: unknown };

export interface JobRecord {
  id: string;
  account: string;
  state: JobState;
  payload: JobPayload;
  attempts: number;
  maxAttempts: number;
  enqueuedAt: number;
  /** When the latest delivery started. */
  claimedAt?: number;
  /** When the first delivery started (queue wait = firstClaimedAt - enqueuedAt). */
  firstClaimedAt?: number;
  finishedAt?: number;
  lastError?: string;
  outcome?: JobOutcome;
  deadline?: number;
}

export interface QueueStats {
  /** Jobs waiting to be claimed. */
  depth: number;
  /** Jobs currently leased. */
  inflight: number;
  deadLetters: number;
  enqueuedTotal: number;
  ackedTotal: number;
  nackedTotal: number;
  redeliveredTotal: number;
  expiredTotal: number;
  deadLetteredTotal: number;
  /** Jobs per account waiting or leased (for fairness and bulkheads). */
  perAccount: Record<string, { queued: number; inflight: number }>;
}

export interface JobQueue {
  enqueue(request: EnqueueRequest): Promise<EnqueueResult>;
  claim(request: ClaimRequest): Promise<ClaimedJob | undefined>;
  ack(id: string, leaseId: string, outcome?: JobOutcome): Promise<void>;
  nack(id: string, leaseId: string, options: NackOptions): Promise<void>;
  extend(id: string, leaseId: string, leaseMs: number): Promise<{ leaseExpiresAt: number }>;
  /**
   * Hands back every lease held by `consumer` or one of its slots (`<consumer>/<slot>`), as if
   * each had expired (the attempt counts, so a poison job still ends in the dead-letter list):
   * a worker restarted under its stable name calls it before claiming, so what its dead
   * incarnation held is redelivered now instead of when the leases would have run out. Never
   * call it for a consumer that may still be working. Resolves with how many jobs it released
   * (redelivered or dead-lettered); a queue that detects dead consumers by itself (JetStream's
   * AckWait) may release none.
   */
  releaseConsumer(consumer: string): Promise<number>;
  get(id: string): Promise<JobRecord | undefined>;
  deadLetters(limit?: number): Promise<JobRecord[]>;
  stats(): Promise<QueueStats>;
  /** True when the queue can accept writes (readiness). */
  writable(): boolean;
  close(): Promise<void>;
}
