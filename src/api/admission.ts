/**
 * Admission control at the front door. Two cheap checks protect latency before any body is
 * read: a cap on requests in flight (load shedding) and a queue-depth high-water mark
 * (backpressure from the slower workers). Both answer 503 with Retry-After at once, so a
 * surge costs the server almost nothing and latency of admitted requests stays bounded.
 */
import { PixelfleetError } from '../errors/index.ts';

export interface AdmissionOptions {
  maxInflight: number;
  queueHighWater: number;
  /** Bulkhead: queued plus running jobs of one account. */
  accountMaxJobs: number;
  /** Conversions per second the workers sustain recently, to estimate Retry-After. */
  throughput: () => number;
}

export class Admission {
  readonly #options: AdmissionOptions;
  #inflight = 0;
  #shuttingDown = false;
  /** Last depth the queue reported, plus what this server enqueued since (so bursts count at once). */
  #queueDepth = 0;
  /** Queued plus running jobs per account, same freshness as the depth. */
  #accountJobs = new Map<string, number>();

  constructor(options: AdmissionOptions) {
    if (!Number.isInteger(options.maxInflight) || options.maxInflight < 1) {
      throw new RangeError(`maxInflight must be a positive integer, got ${options.maxInflight}`);
    }
    this.#options = options;
  }

  get inflight(): number {
    return this.#inflight;
  }

  get shuttingDown(): boolean {
    return this.#shuttingDown;
  }

  beginShutdown(): void {
    this.#shuttingDown = true;
  }

  /** Admits a request or throws the 503 to send; call `release` exactly once when admitted. */
  admit(): void {
    if (this.#shuttingDown) {
      throw new PixelfleetError(
        'PF_ERR_SHUTTING_DOWN',
        'this server is shutting down; retry on another or shortly',
        {
          extensions: { retryAfterSeconds: 1 },
        },
      );
    }
    if (this.#inflight >= this.#options.maxInflight) {
      throw new PixelfleetError(
        'PF_ERR_OVERLOADED',
        `${this.#inflight} requests are in flight (limit ${this.#options.maxInflight}); retry after the Retry-After delay`,
        { extensions: { retryAfterSeconds: this.#retryAfterSeconds(this.#inflight) } },
      );
    }
    this.#inflight++;
  }

  release(): void {
    this.#inflight--;
  }

  /** The queue's own figure, refreshed periodically (a network round trip in a cluster). */
  observeQueue(stats: {
    depth: number;
    perAccount: Record<string, { queued: number; inflight: number }>;
  }): void {
    this.#queueDepth = stats.depth;
    const jobs = new Map<string, number>();
    for (const [account, counts] of Object.entries(stats.perAccount))
      jobs.set(account, counts.queued + counts.inflight);
    this.#accountJobs = jobs;
  }

  /** Counts a job this server enqueued before the next refresh reports it. */
  noteEnqueued(account: string): void {
    this.#queueDepth++;
    this.#accountJobs.set(account, (this.#accountJobs.get(account) ?? 0) + 1);
  }

  /** The per-account bulkhead: one tenant's backlog cannot fill the queue for everyone. */
  checkAccount(account: string): void {
    const jobs = this.#accountJobs.get(account) ?? 0;
    if (jobs >= this.#options.accountMaxJobs) {
      throw new PixelfleetError(
        'PF_ERR_ACCOUNT_BACKLOG_FULL',
        `account ${account} has ${jobs} queued and running jobs (limit ${this.#options.accountMaxJobs}); retry when some finish`,
        {
          extensions: {
            limit: this.#options.accountMaxJobs,
            retryAfterSeconds: this.#retryAfterSeconds(jobs),
          },
        },
      );
    }
  }

  get queueDepth(): number {
    return this.#queueDepth;
  }

  /** Backpressure check made just before a job is enqueued. */
  checkQueue(): void {
    const depth = this.#queueDepth;
    if (depth >= this.#options.queueHighWater) {
      throw new PixelfleetError(
        'PF_ERR_QUEUE_FULL',
        `${depth} jobs are waiting (high-water mark ${this.#options.queueHighWater}); retry after the Retry-After delay`,
        { extensions: { retryAfterSeconds: this.#retryAfterSeconds(depth) } },
      );
    }
  }

  /** Time for the backlog to drain at the observed rate, clamped to 1–30 s. */
  #retryAfterSeconds(backlog: number): number {
    const rate = this.#options.throughput();
    if (!(rate > 0)) return 1;
    return Math.min(30, Math.max(1, Math.ceil(backlog / rate)));
  }
}
