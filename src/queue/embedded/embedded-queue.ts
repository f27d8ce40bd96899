/**
 * The embedded job queue: the queue state machine driven by an fsynced record log in
 * `<dataDir>/queue/`, for a single process (the default runtime mode).
 *
 * How it stays durable: every state-changing command is applied to the in-memory state machine
 * and appended to the log in the same synchronous step, so the log order is the apply order and
 * replaying the log rebuilds the same state. `enqueue`, `ack` and `nack` resolve only once their
 * record is fsynced (concurrent callers share one fsync: group commit). Reads (`get`, `stats`)
 * may see effects whose record is still being synced.
 *
 * After a crash, open replays the snapshot and the log, then expires every lease that was held:
 * in embedded mode the consumers lived in the process that died, so their jobs are redelivered
 * (the attempt counts, as after any lease expiry).
 *
 * Two lanes. Jobs enqueued with `durable: false` (synchronous requests, whose input bytes and
 * waiting client live in this process and die with it) go to a volatile lane: a second state
 * machine with no log. Logging them would cost a write and a share of an fsync per command for
 * jobs that are worthless after a crash anyway, and replaying them would only redeliver jobs
 * whose input is gone. Each lane keeps its own per-account round robin; claims alternate between
 * the lanes when both have work, so neither starves the other. Ids are routed to the lane that
 * holds them; the lanes share no ids (volatile ids are server-made UUIDs), so an enqueue is
 * deduplicated within its own lane only.
 */
import { join } from 'node:path';
import { isPixelfleetError, PixelfleetError } from '../../errors/index.ts';
import { openRecordLog, type RecordLog, type RecordLogStats } from '../../storage/index.ts';
import { type CommandResult, enqueueCommand, type QueueCommand, releasedCount } from '../commands.ts';
import { mergeStats } from '../lanes.ts';
import {
  DEFAULT_MAX_ATTEMPTS,
  DEFAULT_RETENTION_MS,
  QueueStateMachine,
  rejectionError,
} from '../state-machine.ts';
import type {
  ClaimedJob,
  ClaimRequest,
  EnqueueRequest,
  EnqueueResult,
  JobOutcome,
  JobQueue,
  JobRecord,
  NackOptions,
  QueueStats,
} from '../types.ts';
import {
  checkDuration,
  validateClaim,
  validateConsumer,
  validateEnqueue,
  validateFenced,
  validateNack,
  validateOutcome,
} from '../validate.ts';
import { ClaimWaiters } from './claim-waiters.ts';
import { decodeCommand, decodeSnapshot, encodeCommand, encodeSnapshot } from './codec.ts';

/** The subset of a pino logger the queue uses. */
export interface QueueLogger {
  info(details: object, message: string): void;
  warn(details: object, message: string): void;
  error(details: object, message: string): void;
}

export interface EmbeddedQueueOptions {
  /** The queue keeps its files in `<dataDir>/queue/`. */
  dataDir: string;
  /** Deliveries before a job is dead-lettered, unless the job says otherwise (default 3). */
  maxAttempts?: number;
  /** How long finished jobs are kept for `get`, dead letters and deduplication (default 24 h). */
  retentionMs?: number;
  /**
   * Write a snapshot and start a fresh log after this many records (default 10 000). Never more
   * often than once per as many records as the state holds jobs, so that compaction stays
   * amortised O(1) per command however large the state is.
   */
  snapshotEvery?: number;
  /** Time source for the commands (epoch ms); timers still run on the real clock. */
  clock?: { now(): number };
  logger?: QueueLogger;
}

const DEFAULT_SNAPSHOT_EVERY = 10_000;
/** The maintenance timer never sleeps longer than this, so retention keeps up after clock jumps. */
const MAX_TIMER_DELAY_MS = 60_000;
/** Jobs are small descriptors; a command this large is a caller bug (image bytes in a payload). */
const MAX_COMMAND_BYTES = 1024 * 1024;
/** Forgetting old jobs is not urgent: batch it instead of ticking once per finished job. */
const RETENTION_SLACK_MS = 1_000;

const silentLogger: QueueLogger = { info() {}, warn() {}, error() {} };

export async function openEmbeddedQueue(options: EmbeddedQueueOptions): Promise<EmbeddedQueue> {
  if (typeof options?.dataDir !== 'string' || options.dataDir === '') {
    throw new RangeError('dataDir must be a non-empty path');
  }
  const maxAttempts = options.maxAttempts ?? DEFAULT_MAX_ATTEMPTS;
  const retentionMs = options.retentionMs ?? DEFAULT_RETENTION_MS;
  const snapshotEvery = options.snapshotEvery ?? DEFAULT_SNAPSHOT_EVERY;
  if (!Number.isInteger(snapshotEvery) || snapshotEvery < 1) {
    throw new RangeError(`snapshotEvery must be an integer >= 1: got ${snapshotEvery}`);
  }
  // Checks maxAttempts and retentionMs with the state machine's own rules.
  new QueueStateMachine({ maxAttempts, retentionMs });
  const logger = options.logger ?? silentLogger;
  const clock = options.clock ?? Date;
  const directory = join(options.dataDir, 'queue');

  let queue: EmbeddedQueue | undefined;
  const { log, recovery } = await openRecordLog({
    directory,
    onError: (error) => queue?.diskFailed(error),
  });
  try {
    if (recovery.truncation) {
      logger.warn(
        { directory, truncatedBytes: recovery.truncatedBytes, ...recovery.truncation },
        'queue log had a torn tail (a write cut short by a crash); truncated it',
      );
    }
    const machine = recovery.snapshot
      ? QueueStateMachine.restore(decodeSnapshot(recovery.snapshot))
      : new QueueStateMachine({ maxAttempts, retentionMs });
    for (const [index, record] of recovery.records.entries()) {
      machine.apply(decodeCommand(record, `${directory} record ${index}`));
    }
    queue = new EmbeddedQueue({
      machine,
      log,
      clock,
      logger,
      snapshotEvery,
      replayed: recovery.records.length,
    });
    queue.recover({ maxAttempts, retentionMs });
    // Open succeeds only once the recovery records are on disk, and fails if the disk does.
    await log.sync();
    logger.info(
      { directory, replayedRecords: recovery.records.length, fromSnapshot: recovery.snapshot !== undefined },
      'queue opened',
    );
    return queue;
  } catch (error) {
    await (queue ?? log).close().catch(() => {});
    throw error;
  }
}

export class EmbeddedQueue implements JobQueue {
  readonly #machine: QueueStateMachine;
  /** The volatile lane: jobs enqueued with `durable: false`, never logged. */
  readonly #volatile: QueueStateMachine;
  /** Which lane a claim tries first; flips after every claim served while both have work. */
  #volatileFirst = true;
  readonly #log: RecordLog;
  readonly #clock: { now(): number };
  readonly #logger: QueueLogger;
  readonly #snapshotEvery: number;
  readonly #waiters = new ClaimWaiters();
  #recordsSinceSnapshot: number;
  #compacting = false;
  #timer: NodeJS.Timeout | undefined;
  #timerDueAt = Number.POSITIVE_INFINITY;
  #lastAt = 0;
  #serving = false;
  #closed = false;
  #failure: Error | undefined;

  /** Use `openEmbeddedQueue`, which replays the log first. */
  constructor(init: {
    machine: QueueStateMachine;
    log: RecordLog;
    clock: { now(): number };
    logger: QueueLogger;
    snapshotEvery: number;
    replayed: number;
  }) {
    this.#machine = init.machine;
    this.#volatile = new QueueStateMachine(init.machine.config);
    this.#log = init.log;
    this.#clock = init.clock;
    this.#logger = init.logger;
    this.#snapshotEvery = init.snapshotEvery;
    this.#recordsSinceSnapshot = init.replayed;
  }

  async enqueue(request: EnqueueRequest): Promise<EnqueueResult> {
    this.#assertWritable();
    validateEnqueue(request);
    if (request.durable === false) return this.#enqueueVolatile(request);
    const { command, encoded } = normalised(enqueueCommand(request, this.#now()));
    const { result, durable } = this.#commit(command, encoded);
    // A duplicate may be answering for a job whose own record is still being synced.
    await this.#durable(durable ?? this.#log.sync());
    return { id: result.id, duplicate: result.duplicate, state: result.state };
  }

  #enqueueVolatile(request: EnqueueRequest): EnqueueResult {
    // Not normalised through JSON like logged commands: nothing replays it, and the api role
    // builds a fresh payload per request that it never mutates afterwards.
    const result = this.#applyVolatile(enqueueCommand(request, this.#now()));
    return { id: result.id, duplicate: result.duplicate, state: result.state };
  }

  async claim(request: ClaimRequest): Promise<ClaimedJob | undefined> {
    validateClaim(request);
    this.#assertWritable();
    request.signal?.throwIfAborted();
    const job = this.#claimNow(request.consumer, request.leaseMs);
    if (job !== undefined || !request.waitMs) return job;
    return this.#waiters.wait({
      consumer: request.consumer,
      leaseMs: request.leaseMs,
      waitMs: request.waitMs,
      ...(request.signal ? { signal: request.signal } : {}),
    });
  }

  async ack(id: string, leaseId: string, outcome?: JobOutcome): Promise<void> {
    validateFenced(id, leaseId);
    validateOutcome(outcome);
    this.#assertWritable();
    if (this.#volatile.has(id)) {
      const settled = this.#applyVolatile({
        type: 'ack',
        at: this.#now(),
        id,
        leaseId,
        ...(outcome === undefined ? {} : { outcome }),
      });
      if (settled.rejection) throw rejectionError(settled.rejection);
      return;
    }
    const { command, encoded } = normalised({
      type: 'ack',
      at: this.#now(),
      id,
      leaseId,
      ...(outcome === undefined ? {} : { outcome }),
    });
    const { result, durable } = this.#commit(command, encoded);
    if (result.rejection) throw rejectionError(result.rejection);
    await this.#durable(durable);
  }

  async nack(id: string, leaseId: string, options: NackOptions): Promise<void> {
    validateFenced(id, leaseId);
    validateNack(options);
    this.#assertWritable();
    const command = {
      type: 'nack' as const,
      at: this.#now(),
      id,
      leaseId,
      reason: options.reason,
      retry: options.retry,
      ...(options.delayMs === undefined ? {} : { delayMs: options.delayMs }),
    };
    if (this.#volatile.has(id)) {
      const settled = this.#applyVolatile(command);
      if (settled.rejection) throw rejectionError(settled.rejection);
      return;
    }
    const { result, durable } = this.#commit(command);
    if (result.rejection) throw rejectionError(result.rejection);
    await this.#durable(durable);
  }

  async extend(id: string, leaseId: string, leaseMs: number): Promise<{ leaseExpiresAt: number }> {
    validateFenced(id, leaseId);
    checkDuration('leaseMs', leaseMs, false);
    this.#assertWritable();
    const command = { type: 'extend' as const, at: this.#now(), id, leaseId, leaseMs };
    // Not awaited, like claims: see #claimNow.
    const result = this.#volatile.has(id) ? this.#applyVolatile(command) : this.#commit(command).result;
    if (result.rejection) throw rejectionError(result.rejection);
    return { leaseExpiresAt: result.leaseExpiresAt as number };
  }

  async releaseConsumer(consumer: string): Promise<number> {
    validateConsumer(consumer);
    this.#assertWritable();
    const command = { type: 'release-leases' as const, at: this.#now(), consumer };
    const volatile = this.#applyVolatile(command);
    const { result, durable } = this.#commit(command);
    await this.#durable(durable);
    return releasedCount(volatile) + releasedCount(result);
  }

  async get(id: string): Promise<JobRecord | undefined> {
    this.#assertOpen();
    return this.#volatile.get(id) ?? this.#machine.get(id);
  }

  async deadLetters(limit?: number): Promise<JobRecord[]> {
    this.#assertOpen();
    if (limit !== undefined && !(Number.isInteger(limit) && limit >= 0)) {
      throw new RangeError(`limit must be an integer >= 0: got ${limit}`);
    }
    const durable = this.#machine.deadLetters(limit);
    const volatile = this.#volatile.deadLetters(limit);
    if (volatile.length === 0) return durable;
    // Most recent first, like each lane's own list.
    return [...durable, ...volatile]
      .sort((a, b) => (b.finishedAt ?? 0) - (a.finishedAt ?? 0))
      .slice(0, limit ?? 100);
  }

  async stats(): Promise<QueueStats> {
    this.#assertOpen();
    return mergeStats(this.#machine.stats(), this.#volatile.stats());
  }

  writable(): boolean {
    return !this.#closed && this.#failure === undefined;
  }

  /** Log statistics (records, fsynced batches, compactions), for benchmarks and metrics. */
  storageStats(): RecordLogStats {
    return this.#log.stats();
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#waiters.rejectAll(
      new PixelfleetError('PF_ERR_QUEUE_CLOSED', 'the queue closed while waiting for a job'),
    );
    await this.#log.close();
  }

  /** Called by `openEmbeddedQueue` after replay, before anyone else can use the queue. */
  recover(config: { maxAttempts: number; retentionMs: number }): void {
    this.#commit({ type: 'configure', at: this.#now(), ...config });
    const { result } = this.#commit({ type: 'release-leases', at: this.#now() });
    if (result.changed) {
      this.#logger.warn(
        { redelivered: result.redelivered.length, deadLettered: result.deadLettered.length },
        'queue reopened with leases held by the previous process; their jobs are redelivered',
      );
    }
    this.#tick();
  }

  /** Called by the record log when a write or fsync fails: the queue stops accepting writes. */
  diskFailed(error: Error): void {
    if (this.#failure) return;
    this.#failure = error;
    this.#logger.error({ err: error }, 'queue log failed a disk write; the queue is no longer writable');
    this.#waiters.rejectAll(this.#unavailable(error));
  }

  // ---- internals ----

  /**
   * Claims and extends are appended to the log (they change attempts and lease ids that replay
   * must reproduce) but callers do not wait for their fsync: they ride the next group commit with
   * everything else. Losing one in a crash is harmless in embedded mode: the consumer holding the
   * lease died in the same crash, the job is still queued (or leased) in the replayed state, and
   * reopening redelivers it; at worst a delivery goes uncounted. The ack or nack that follows a
   * claim is appended after it, so once that is durable, so is the claim.
   */
  #claimNow(consumer: string, leaseMs: number): ClaimedJob | undefined {
    const now = this.#now();
    if (Math.min(this.#volatile.nextDueAt() ?? Infinity, this.#machine.nextDueAt() ?? Infinity) <= now) {
      this.#tick();
    }
    const command = { type: 'claim' as const, at: now, consumer, leaseMs };
    const fromVolatile = () => (this.#volatile.claimable > 0 ? this.#applyVolatile(command).job : undefined);
    const fromDurable = () => (this.#machine.claimable > 0 ? this.#commit(command).result.job : undefined);
    const job = this.#volatileFirst ? (fromVolatile() ?? fromDurable()) : (fromDurable() ?? fromVolatile());
    if (job !== undefined && this.#volatile.claimable > 0 && this.#machine.claimable > 0) {
      this.#volatileFirst = !this.#volatileFirst;
    }
    return job;
  }

  /** Applies a command to the volatile lane: no log, otherwise as `#commit`. */
  #applyVolatile<C extends QueueCommand>(command: C): CommandResult<C> {
    const result = this.#volatile.apply(command);
    if (result.changed) {
      this.#serveWaiters();
      this.#scheduleTimer();
    }
    return result;
  }

  /**
   * Applies a command and, when it changed the state, appends it to the log in the same
   * synchronous step (log order = apply order). `encoded` is passed when the caller already
   * encoded the command.
   */
  #commit<C extends QueueCommand>(
    command: C,
    encoded?: Buffer,
  ): { result: CommandResult<C>; durable: Promise<void> | undefined } {
    const record = encoded ?? encodeCommand(command);
    // Checked before applying: a command the log would refuse must not change the state either.
    if (record.byteLength > MAX_COMMAND_BYTES) {
      throw new RangeError(
        `${command.type} command is ${record.byteLength} bytes; the limit is ${MAX_COMMAND_BYTES} (payloads describe where the input is, they do not carry it)`,
      );
    }
    const result = this.#machine.apply(command);
    let durable: Promise<void> | undefined;
    if (result.changed) {
      durable = this.#log.append(record);
      this.#recordsSinceSnapshot++;
      this.#maybeCompact();
      this.#serveWaiters();
      this.#scheduleTimer();
    }
    return { result, durable };
  }

  async #durable(durable: Promise<void> | undefined): Promise<void> {
    if (durable === undefined) return;
    try {
      await durable;
    } catch (error) {
      throw this.#unavailable(error);
    }
  }

  #serveWaiters(): void {
    // Claims below commit commands, which would call back in here.
    if (this.#serving) return;
    this.#serving = true;
    try {
      while (
        this.#waiters.size > 0 &&
        this.#machine.claimable + this.#volatile.claimable > 0 &&
        this.writable()
      ) {
        const waiter = this.#waiters.first()!;
        const job = this.#claimNow(waiter.consumer, waiter.leaseMs);
        // Every claimable job may have just expired by deadline: nothing to hand out after all.
        if (job === undefined) break;
        waiter.resolve(job);
      }
    } finally {
      this.#serving = false;
    }
  }

  #tick(): void {
    const at = this.#now();
    const volatile = this.#volatile.apply({ type: 'tick', at });
    if (volatile.deadLettered.length > 0 || volatile.expired.length > 0) {
      this.#logger.info(
        { deadLettered: volatile.deadLettered, expired: volatile.expired },
        'synchronous jobs dead-lettered or expired',
      );
    }
    const { result } = this.#commit({ type: 'tick', at });
    if (result.changed && (result.redelivered.length > 0 || result.deadLettered.length > 0)) {
      this.#logger.info(
        { redelivered: result.redelivered, deadLettered: result.deadLettered },
        'leases expired; jobs redelivered or dead-lettered',
      );
    }
    if (result.expired.length > 0) {
      this.#logger.info({ expired: result.expired }, 'queued jobs expired: their deadline passed');
    }
    this.#scheduleTimer();
  }

  /** Arms one timer for the next time a tick could change something (lease, backoff, deadline). */
  #scheduleTimer(): void {
    if (this.#closed) return;
    const slack = { retentionSlackMs: RETENTION_SLACK_MS };
    const dueAt = Math.min(
      this.#machine.nextDueAt(slack) ?? Number.POSITIVE_INFINITY,
      this.#volatile.nextDueAt(slack) ?? Number.POSITIVE_INFINITY,
    );
    if (dueAt === Number.POSITIVE_INFINITY) return;
    if (this.#timer !== undefined && this.#timerDueAt <= dueAt) return;
    clearTimeout(this.#timer);
    const delay = Math.min(Math.max(0, dueAt - this.#clock.now()), MAX_TIMER_DELAY_MS);
    this.#timerDueAt = dueAt;
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      this.#timerDueAt = Number.POSITIVE_INFINITY;
      if (this.writable()) this.#tick();
    }, delay);
    // Pending leases must not keep a finished process alive.
    this.#timer.unref();
  }

  #maybeCompact(): void {
    if (this.#compacting || this.#recordsSinceSnapshot < this.#snapshotEvery) return;
    if (this.#recordsSinceSnapshot < this.#machine.size) return;
    this.#compacting = true;
    this.#recordsSinceSnapshot = 0;
    // The snapshot is taken now, in the same synchronous step as the compact call, so it covers
    // exactly the records appended before it.
    const started = performance.now();
    const snapshot = encodeSnapshot(this.#machine.snapshot());
    this.#log.compact(snapshot).then(
      () => {
        this.#compacting = false;
        this.#logger.info(
          {
            snapshotBytes: snapshot.byteLength,
            jobs: this.#machine.size,
            ms: Math.round(performance.now() - started),
          },
          'queue log compacted',
        );
      },
      // The log reports the failure through diskFailed; the queue is unwritable from here on.
      () => {},
    );
  }

  #now(): number {
    // Commands get non-decreasing times even if the wall clock steps back.
    this.#lastAt = Math.max(this.#lastAt, this.#clock.now());
    return this.#lastAt;
  }

  #assertOpen(): void {
    if (this.#closed) throw new PixelfleetError('PF_ERR_QUEUE_CLOSED', 'the queue is closed');
  }

  #assertWritable(): void {
    this.#assertOpen();
    if (this.#failure) throw this.#unavailable(this.#failure);
  }

  #unavailable(cause: unknown): PixelfleetError {
    if (
      isPixelfleetError(cause, 'PF_ERR_QUEUE_CLOSED') ||
      isPixelfleetError(cause, 'PF_ERR_QUEUE_UNAVAILABLE')
    ) {
      return cause;
    }
    if (this.#closed && !this.#failure)
      return new PixelfleetError('PF_ERR_QUEUE_CLOSED', 'the queue is closed');
    return new PixelfleetError('PF_ERR_QUEUE_UNAVAILABLE', 'the queue cannot write to its log', { cause });
  }
}

/**
 * Commands that carry caller objects are applied as they will replay: decoded from their JSON.
 * Without this a payload holding, say, a Date would be a Date until the next restart and a
 * string after it; it also detaches the state from objects the caller may mutate later.
 */
function normalised<C extends QueueCommand>(command: C): { command: C; encoded: Buffer } {
  const encoded = encodeCommand(command);
  return { command: decodeCommand(encoded, 'new command') as C, encoded };
}
