/**
 * RaftQueue: the `JobQueue` served by one node of a Raft group. On the leader, every state
 * change (enqueue, claim, ack, nack, extend, lease expiry) becomes a command in the replicated
 * log; it takes effect, and the caller gets its answer, only once a majority has fsynced it and
 * the leader has applied it. On a follower, writes fail with PF_ERR_NOT_LEADER (carrying the
 * leader's id and client address for a redirect) and reads are still linearizable (ReadIndex
 * through the leader); only `stats` is answered by the leader from its own state.
 *
 * - Time enters the log through the leader: it stamps each batch of commands with its clock, and
 *   it alone proposes `tick` commands, only when the state says something is due (a lease or
 *   backoff ends, a deadline or retention window passes).
 * - Throughput: commands arriving in the same event-loop turn share one log entry (and so one
 *   fsync per node, one append message per follower).
 * - Idempotent enqueue: the state machine deduplicates ids, so a client that retries with the
 *   same id after a failover never creates a second job.
 * - Long-poll claims wait on the leader and are woken when the applied state has claimable jobs.
 * - Non-durable jobs (`durable: false`: synchronous requests, worthless after their api server
 *   dies) live in the leader's volatile lane (`volatile-lane.ts`), never in the log; claims
 *   alternate between the lanes when both have work. The lane dies with this node's leadership;
 *   `enqueueWithLane` and `watchLane` let clients notice and re-send (see `RaftQueueClient`).
 */

import type { ErrorCode } from '../../errors/index.ts';
import { PixelfleetError } from '../../errors/index.ts';
import type {
  AckCommand,
  ClaimApplied,
  CommandResult,
  ExtendApplied,
  ExtendCommand,
  NackCommand,
  QueueCommand,
  SettleApplied,
  TickApplied,
} from '../commands.ts';
import { enqueueCommand, releasedCount, unstampedEnqueue } from '../commands.ts';
import type { QueueLogger } from '../embedded/index.ts';
import { mergeStats } from '../lanes.ts';
import { rejectionError } from '../state-machine.ts';
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
import type { RaftHost } from './node.ts';
import {
  type AppliedResult,
  encodeCommandBatch,
  isCommandFailure,
  type QueueApplication,
  type UnstampedCommand,
} from './queue-application.ts';
import { isVolatileLease, VolatileLane } from './volatile-lane.ts';

/** Jobs are small descriptors; a command this large is a caller bug (image bytes in a payload). */
const MAX_COMMAND_BYTES = 1024 * 1024;
/** Bounds of one log entry's batch. */
const MAX_BATCH_BYTES = 1024 * 1024;
const MAX_BATCH_COMMANDS = 4096;
/** The tick timer never sleeps longer than this, so retention keeps up after clock jumps. */
const MAX_TIMER_DELAY_MS = 60_000;
/** Forgetting old jobs is not urgent: batch it instead of ticking once per finished job. */
const RETENTION_SLACK_MS = 1_000;

interface LaneWatcher {
  lane: string;
  resolve(token: string): void;
  reject(error: unknown): void;
}

interface PendingCommand {
  encoded: string;
  resolve(result: AppliedResult): void;
  reject(error: unknown): void;
}

export interface RaftQueueOptions {
  host: RaftHost;
  application: QueueApplication;
  /** The queue defaults the leader writes to the log (configure command). */
  maxAttempts: number;
  retentionMs: number;
  logger?: QueueLogger;
  /** Time source for the commands the leader stamps (epoch ms). */
  clock?: { now(): number };
  /** Runs when the queue is closed (the node facade closes the node with it). */
  onClose?: () => Promise<void>;
  /**
   * Expire every lease held when this node first leads after starting (embedded mode: the
   * consumers lived in the process that stopped). Never for a multi-node cluster, whose workers
   * run elsewhere and outlive a leader. Default false.
   */
  releaseLeasesOnStart?: boolean;
}

const silentLogger: QueueLogger = { info() {}, warn() {}, error() {} };

export class RaftQueue implements JobQueue {
  readonly #host: RaftHost;
  readonly #application: QueueApplication;
  readonly #config: { maxAttempts: number; retentionMs: number };
  readonly #logger: QueueLogger;
  readonly #clock: { now(): number };
  readonly #waiters = new ClaimWaiters();
  readonly #unsubscribe: () => void;
  readonly #onClose: (() => Promise<void>) | undefined;
  #releaseLeasesPending: boolean;
  #pending: PendingCommand[] = [];
  #pendingBytes = 0;
  #flushScheduled = false;
  #claimsInFlight = 0;
  #tickInFlight = false;
  #tickTimer: NodeJS.Timeout | undefined;
  #tickDueAt = Number.POSITIVE_INFINITY;
  /** Term in which this node, as leader, last caught up (configure written, timers armed). */
  #readyTerm = 0;
  #lastAt = 0;
  #closed = false;
  /** The volatile lane, while this node leads. */
  #lane: VolatileLane | undefined;
  /** Which lane a claim tries first; flips after every claim served while both have work. */
  #volatileFirst = true;
  readonly #laneWatchers = new Set<LaneWatcher>();

  constructor(options: RaftQueueOptions) {
    this.#host = options.host;
    this.#application = options.application;
    this.#config = { maxAttempts: options.maxAttempts, retentionMs: options.retentionMs };
    this.#logger = options.logger ?? silentLogger;
    this.#clock = options.clock ?? Date;
    this.#onClose = options.onClose;
    this.#releaseLeasesPending = options.releaseLeasesOnStart === true;
    this.#unsubscribe = this.#host.subscribe({
      roleChanged: () => this.#leadershipChanged(),
      applied: () => this.#stateAdvanced(),
      failed: (error) =>
        this.#waiters.rejectAll(
          new PixelfleetError('PF_ERR_QUEUE_UNAVAILABLE', 'the queue node stopped after a failure', {
            cause: error,
          }),
        ),
    });
    this.#leadershipChanged();
  }

  async enqueue(request: EnqueueRequest): Promise<EnqueueResult> {
    const { id, duplicate, state } = await this.enqueueWithLane(request);
    return { id, duplicate, state };
  }

  /**
   * `enqueue`, also naming the volatile lane a non-durable job went to: a client that later
   * sees another lane token knows the job is gone and re-sends it.
   */
  async enqueueWithLane(request: EnqueueRequest): Promise<EnqueueResult & { lane?: string }> {
    validateEnqueue(request);
    if (request.durable === false) {
      this.#assertWritable();
      const lane = this.#lane!;
      // Not normalised through JSON: nothing replays it, and only this process holds it.
      const result = this.#applyVolatile(lane, enqueueCommand(request, this.#stamp()));
      return { id: result.id, duplicate: result.duplicate, state: result.state, lane: lane.token };
    }
    const result = await this.#submit(unstampedEnqueue(request));
    return { id: result.id, duplicate: result.duplicate, state: result.state };
  }

  async claim(request: ClaimRequest): Promise<ClaimedJob | undefined> {
    validateClaim(request);
    this.#assertWritable();
    request.signal?.throwIfAborted();
    const waitMs = request.waitMs ?? 0;
    const until = this.#clock.now() + waitMs;
    const volatileJob = this.#claimVolatileFirst(request.consumer, request.leaseMs);
    if (volatileJob !== undefined) return volatileJob;
    if (this.#worthClaiming()) {
      const job =
        (await this.#proposeClaim(request.consumer, request.leaseMs)) ??
        this.#claimVolatile(request.consumer, request.leaseMs);
      if (job !== undefined || waitMs === 0) return job;
      request.signal?.throwIfAborted();
    } else if (waitMs === 0) {
      return this.#claimVolatile(request.consumer, request.leaseMs);
    }
    const remaining = until - this.#clock.now();
    if (remaining <= 0) return undefined;
    const { promise } = this.#waiters.wait({
      consumer: request.consumer,
      leaseMs: request.leaseMs,
      waitMs: remaining,
      ...(request.signal ? { signal: request.signal } : {}),
    });
    this.#serveWaiters();
    return promise;
  }

  async ack(id: string, leaseId: string, outcome?: JobOutcome): Promise<void> {
    validateFenced(id, leaseId);
    validateOutcome(outcome);
    const lane = this.#volatileLaneOf(id, leaseId);
    if (lane !== undefined) {
      this.#settleVolatile(lane, {
        type: 'ack',
        at: this.#stamp(),
        id,
        leaseId: lane.internalLeaseId(id, leaseId),
        ...(outcome === undefined ? {} : { outcome }),
      });
      return;
    }
    const result = await this.#submit({
      type: 'ack',
      id,
      leaseId,
      ...(outcome === undefined ? {} : { outcome }),
    });
    if (result.rejection) throw rejectionError(result.rejection);
  }

  async nack(id: string, leaseId: string, options: NackOptions): Promise<void> {
    validateFenced(id, leaseId);
    validateNack(options);
    const lane = this.#volatileLaneOf(id, leaseId);
    if (lane !== undefined) {
      this.#settleVolatile(lane, {
        type: 'nack',
        at: this.#stamp(),
        id,
        leaseId: lane.internalLeaseId(id, leaseId),
        reason: options.reason,
        retry: options.retry,
        ...(options.delayMs === undefined ? {} : { delayMs: options.delayMs }),
      });
      return;
    }
    const result = await this.#submit({
      type: 'nack',
      id,
      leaseId,
      reason: options.reason,
      retry: options.retry,
      ...(options.delayMs === undefined ? {} : { delayMs: options.delayMs }),
    });
    if (result.rejection) throw rejectionError(result.rejection);
  }

  async extend(id: string, leaseId: string, leaseMs: number): Promise<{ leaseExpiresAt: number }> {
    validateFenced(id, leaseId);
    checkDuration('leaseMs', leaseMs, false);
    const lane = this.#volatileLaneOf(id, leaseId);
    if (lane !== undefined) {
      const extended = this.#settleVolatile(lane, {
        type: 'extend',
        at: this.#stamp(),
        id,
        leaseId: lane.internalLeaseId(id, leaseId),
        leaseMs,
      });
      return { leaseExpiresAt: extended.leaseExpiresAt as number };
    }
    const result = await this.#submit({ type: 'extend', id, leaseId, leaseMs });
    if (result.rejection) throw rejectionError(result.rejection);
    return { leaseExpiresAt: result.leaseExpiresAt as number };
  }

  async releaseConsumer(consumer: string): Promise<number> {
    validateConsumer(consumer);
    this.#assertWritable();
    const volatile = this.#applyVolatile(this.#lane!, {
      type: 'release-leases',
      at: this.#stamp(),
      consumer,
    });
    const durable = await this.#submit({ type: 'release-leases', consumer });
    return releasedCount(volatile) + releasedCount(durable);
  }

  async get(id: string): Promise<JobRecord | undefined> {
    const volatile = this.#lane?.machine.get(id);
    if (volatile !== undefined) return volatile;
    await this.#linearizable();
    return this.#application.machine.get(id);
  }

  async deadLetters(limit?: number): Promise<JobRecord[]> {
    if (limit !== undefined && !(Number.isInteger(limit) && limit >= 0)) {
      throw new RangeError(`limit must be an integer >= 0: got ${limit}`);
    }
    await this.#linearizable();
    const durable = this.#application.machine.deadLetters(limit);
    const volatile = this.#lane?.machine.deadLetters(limit) ?? [];
    if (volatile.length === 0) return durable;
    // Most recent first, like each lane's own list.
    return [...durable, ...volatile]
      .sort((a, b) => (b.finishedAt ?? 0) - (a.finishedAt ?? 0))
      .slice(0, limit ?? 100);
  }

  /**
   * Monitoring and admission figures, which every api server and worker polls about once a
   * second. The leader answers from its applied state without a ReadIndex round: each round is
   * a heartbeat to every follower and back, so five polls a second added half as many messages
   * again as a three-node queue's 100 ms heartbeats. A leader cut off from the others may
   * answer with figures up to one election timeout old before it steps down (CheckQuorum). On a
   * follower, ReadIndex as ever.
   */
  async stats(): Promise<QueueStats> {
    if (this.#host.isLeader) this.#assertOpen();
    else await this.#linearizable();
    const durable = this.#application.machine.stats();
    const lane = this.#lane;
    return lane === undefined ? durable : mergeStats(durable, lane.machine.stats());
  }

  /** The token of the current volatile lane (PF_ERR_NOT_LEADER on a follower). */
  laneToken(): string {
    this.#assertWritable();
    return this.#lane!.token;
  }

  /**
   * Resolves with the current lane token once it differs from `lane`, or after `waitMs`; rejects
   * with PF_ERR_NOT_LEADER when this node stops leading (its lane, and `lane`, are gone then).
   * A client holding volatile jobs keeps one of these open to learn of a leader change at once.
   */
  watchLane(lane: string, waitMs: number, signal?: AbortSignal): Promise<string> {
    checkDuration('waitMs', waitMs, true);
    try {
      this.#assertWritable();
      signal?.throwIfAborted();
    } catch (error) {
      return Promise.reject(error);
    }
    const current = this.#lane!.token;
    if (current !== lane || waitMs === 0) return Promise.resolve(current);
    return new Promise<string>((resolve, reject) => {
      const finish = () => {
        clearTimeout(timer);
        signal?.removeEventListener('abort', onAbort);
        this.#laneWatchers.delete(watcher);
      };
      const onAbort = () => {
        finish();
        reject(signal?.reason);
      };
      const watcher: LaneWatcher = {
        lane,
        resolve: (token) => {
          finish();
          resolve(token);
        },
        reject: (error) => {
          finish();
          reject(error);
        },
      };
      const timer = setTimeout(() => watcher.resolve(this.#lane?.token ?? lane), waitMs);
      signal?.addEventListener('abort', onAbort, { once: true });
      this.#laneWatchers.add(watcher);
    });
  }

  /** True when this node can take writes now: it is open, healthy and the leader. */
  writable(): boolean {
    return !this.#closed && this.#host.isLeader;
  }

  /** Stops serving (and closes the node when the queue was opened with it). */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#unsubscribe();
    clearTimeout(this.#tickTimer);
    const closed = new PixelfleetError('PF_ERR_QUEUE_CLOSED', 'the queue is closed');
    this.#waiters.rejectAll(closed);
    this.#lane = undefined;
    for (const watcher of [...this.#laneWatchers]) watcher.reject(closed);
    const pending = this.#pending;
    this.#pending = [];
    for (const command of pending) command.reject(closed);
    await this.#onClose?.();
  }

  // ---- internals ----

  #assertOpen(): void {
    if (this.#closed) throw new PixelfleetError('PF_ERR_QUEUE_CLOSED', 'the queue is closed');
  }

  #assertWritable(): void {
    this.#assertOpen();
    if (!this.#host.healthy) {
      throw new PixelfleetError('PF_ERR_QUEUE_UNAVAILABLE', 'the queue node is not running');
    }
    if (!this.#host.isLeader) throw this.#host.notLeaderError();
  }

  async #linearizable(): Promise<void> {
    this.#assertOpen();
    await this.#host.read();
    this.#assertOpen();
  }

  /**
   * Queues a command for the next log entry. Resolves with the state machine's result once the
   * entry is committed and applied on this (leader) node.
   */
  #submit<C extends UnstampedCommand>(command: C): Promise<CommandResult<C & QueueCommand>> {
    try {
      this.#assertWritable();
    } catch (error) {
      return Promise.reject(error);
    }
    const encoded = JSON.stringify(command);
    if (encoded.length > MAX_COMMAND_BYTES) {
      return Promise.reject(
        new RangeError(
          `${command.type} command is ${encoded.length} bytes; the limit is ${MAX_COMMAND_BYTES} (payloads describe where the input is, they do not carry it)`,
        ),
      );
    }
    return new Promise<AppliedResult>((resolve, reject) => {
      this.#pending.push({ encoded, resolve, reject });
      this.#pendingBytes += encoded.length;
      if (this.#pending.length >= MAX_BATCH_COMMANDS || this.#pendingBytes >= MAX_BATCH_BYTES) {
        this.#flush();
      } else if (!this.#flushScheduled) {
        this.#flushScheduled = true;
        // Everything that arrives in this event-loop turn (a burst of client frames) rides along.
        setImmediate(() => this.#flush());
      }
    }).then((result) => {
      if (isCommandFailure(result)) {
        const code = result.failure.code.startsWith('PF_ERR_')
          ? (result.failure.code as ErrorCode)
          : 'PF_ERR_INTERNAL';
        throw new PixelfleetError(code, result.failure.message);
      }
      return result as CommandResult<C & QueueCommand>;
    });
  }

  #flush(): void {
    this.#flushScheduled = false;
    const batch = this.#pending;
    this.#pending = [];
    this.#pendingBytes = 0;
    if (batch.length === 0) return;
    let data: Uint8Array;
    try {
      this.#assertWritable();
      data = encodeCommandBatch(
        this.#stamp(),
        batch.map((command) => command.encoded),
      );
    } catch (error) {
      for (const command of batch) command.reject(error);
      return;
    }
    this.#host.propose(data).then(
      (results) => {
        const applied = results as AppliedResult[];
        for (const [position, command] of batch.entries()) command.resolve(applied[position]!);
      },
      (error) => {
        for (const command of batch) command.reject(error);
      },
    );
  }

  /** The leader's clock, never behind a time it or an earlier leader already put in the log. */
  #stamp(): number {
    this.#lastAt = Math.max(this.#lastAt, this.#clock.now(), this.#application.lastAt);
    return this.#lastAt;
  }

  /** Whether a claim now could find a job (otherwise answer or wait without touching the log). */
  #worthClaiming(): boolean {
    // Until this leader has applied its own term's first entry its state may be stale: ask the log.
    if (!this.#host.leaderCaughtUp) return true;
    const machine = this.#application.machine;
    const dueAt = machine.nextDueAt();
    if (dueAt !== undefined && dueAt <= this.#clock.now()) {
      // A claim promotes delayed jobs itself; lease expiry needs a tick.
      this.#tickNow();
      return true;
    }
    return machine.claimable > this.#claimsInFlight;
  }

  async #proposeClaim(consumer: string, leaseMs: number): Promise<ClaimedJob | undefined> {
    this.#claimsInFlight++;
    try {
      const result: ClaimApplied = await this.#submit({ type: 'claim', consumer, leaseMs });
      if (result.job !== undefined) this.#volatileFirst = true;
      return result.job;
    } finally {
      this.#claimsInFlight--;
    }
  }

  #serveWaiters(): void {
    if (this.#closed) return;
    const lane = this.#lane;
    // Volatile claims settle synchronously: hand them out before any log round trip.
    while (lane !== undefined && this.#waiters.idleCount > 0 && lane.claimable > 0) {
      const waiter = this.#waiters.takeFirst()!;
      const job = this.#claimVolatile(waiter.consumer, waiter.leaseMs);
      this.#waiters.settle(waiter, job);
      if (job === undefined) break;
    }
    if (!this.#host.leaderCaughtUp) return;
    const machine = this.#application.machine;
    while (this.#waiters.idleCount > 0 && machine.claimable > this.#claimsInFlight) {
      const waiter = this.#waiters.takeFirst()!;
      this.#proposeClaim(waiter.consumer, waiter.leaseMs).then(
        (job) => {
          const { orphaned } = this.#waiters.settle(waiter, job);
          if (orphaned) {
            this.#logger.warn(
              { id: job?.id },
              'a claim was aborted after its job was leased; the lease will expire and the job be redelivered',
            );
          }
          this.#serveWaiters();
        },
        (error) => this.#waiters.fail(waiter, error),
      );
    }
  }

  #leadershipChanged(): void {
    if (this.#closed) return;
    if (!this.#host.isLeader) {
      if (this.#lane !== undefined) {
        const lost = this.#lane.machine.stats();
        this.#lane = undefined;
        if (lost.depth + lost.inflight > 0) {
          this.#logger.warn(
            { queued: lost.depth, inflight: lost.inflight },
            'stopped leading: the volatile lane (synchronous jobs) is dropped; clients re-send what they wait for',
          );
        }
      }
      const notLeader = this.#host.notLeaderError();
      for (const watcher of [...this.#laneWatchers]) watcher.reject(notLeader);
      this.#readyTerm = 0;
      clearTimeout(this.#tickTimer);
      this.#tickTimer = undefined;
      this.#tickDueAt = Number.POSITIVE_INFINITY;
      // Waiting claims move to the new leader (the client retries there with what is left of its wait).
      this.#waiters.rejectIdle(this.#host.notLeaderError());
      return;
    }
    if (this.#lane === undefined) {
      this.#lane = new VolatileLane(this.#config);
      for (const watcher of [...this.#laneWatchers]) watcher.resolve(this.#lane.token);
    }
    this.#stateAdvanced();
  }

  #stateAdvanced(): void {
    if (this.#closed || !this.#host.leaderCaughtUp) return;
    const term = this.#host.role.term;
    if (this.#readyTerm !== term) {
      this.#readyTerm = term;
      const config = this.#application.machine.config;
      if (
        config.maxAttempts !== this.#config.maxAttempts ||
        config.retentionMs !== this.#config.retentionMs
      ) {
        this.#submit({ type: 'configure', ...this.#config }).catch((error) =>
          this.#logger.warn({ err: error }, 'could not write the queue configuration to the log'),
        );
      }
      if (this.#releaseLeasesPending) {
        this.#releaseLeasesPending = false;
        this.#submit({ type: 'release-leases' }).then(
          (result: TickApplied) => {
            if (result.changed) {
              this.#logger.warn(
                { redelivered: result.redelivered.length, deadLettered: result.deadLettered.length },
                'queue reopened with leases held by the previous process; their jobs are redelivered',
              );
            }
          },
          (error) => this.#logger.warn({ err: error }, 'could not release the previous leases'),
        );
      }
    }
    this.#scheduleTick();
    this.#serveWaiters();
  }

  // ---- the volatile lane ----

  /**
   * The volatile lane when it holds `id` (checked first: it answers without the log). A
   * volatile lease on a job this lane does not hold was granted by an earlier leader's lane:
   * PF_ERR_LEASE_LOST, as for any lease that is no longer current, without a log entry.
   */
  #volatileLaneOf(id: string, leaseId: string): VolatileLane | undefined {
    this.#assertWritable();
    const lane = this.#lane;
    if (lane?.has(id)) return lane;
    if (isVolatileLease(leaseId)) {
      throw new PixelfleetError(
        'PF_ERR_LEASE_LOST',
        `the lease on job ${id} was granted by an earlier queue leader, whose synchronous jobs are gone`,
      );
    }
    return undefined;
  }

  /** Applies a command to the volatile lane: no log; wakes waiters and timers as a commit would. */
  #applyVolatile<C extends QueueCommand>(lane: VolatileLane, command: C): CommandResult<C> {
    const result = lane.apply(command);
    if (result.changed) {
      this.#serveWaiters();
      this.#scheduleTick();
    }
    return result;
  }

  #settleVolatile<C extends AckCommand | NackCommand | ExtendCommand>(
    lane: VolatileLane,
    command: C,
  ): CommandResult<C> {
    const result = this.#applyVolatile(lane, command) as SettleApplied | ExtendApplied;
    if (result.rejection) throw rejectionError(result.rejection);
    return result as CommandResult<C>;
  }

  /** A volatile job, when it is the volatile lane's turn (or the durable lane has nothing). */
  #claimVolatileFirst(consumer: string, leaseMs: number): ClaimedJob | undefined {
    const lane = this.#lane;
    if (lane === undefined || lane.claimable === 0) return undefined;
    const durableIdle =
      this.#host.leaderCaughtUp && this.#application.machine.claimable <= this.#claimsInFlight;
    if (!this.#volatileFirst && !durableIdle) return undefined;
    return this.#claimVolatile(consumer, leaseMs);
  }

  #claimVolatile(consumer: string, leaseMs: number): ClaimedJob | undefined {
    const lane = this.#lane;
    if (lane === undefined) return undefined;
    const at = this.#stamp();
    const dueAt = lane.machine.nextDueAt();
    if (dueAt !== undefined && dueAt <= at) this.#tickVolatile(lane, at);
    if (lane.claimable === 0) return undefined;
    const job = lane.apply({ type: 'claim', at, consumer, leaseMs }).job;
    if (job === undefined) return undefined;
    // The durable lane's turn next (it is skipped when it has nothing).
    this.#volatileFirst = false;
    this.#scheduleTick();
    return lane.exposed(job);
  }

  #tickVolatile(lane: VolatileLane, at: number): void {
    const result = lane.apply({ type: 'tick', at });
    if (result.redelivered.length > 0 || result.deadLettered.length > 0 || result.expired.length > 0) {
      this.#logger.info(
        {
          redelivered: result.redelivered.length,
          deadLettered: result.deadLettered.length,
          expired: result.expired.length,
        },
        'synchronous jobs redelivered, dead-lettered or expired',
      );
    }
  }

  /** Arms one timer for the next time a tick could change something. Leader only. */
  #scheduleTick(): void {
    const slack = { retentionSlackMs: RETENTION_SLACK_MS };
    const durableDueAt = this.#host.leaderCaughtUp ? this.#application.machine.nextDueAt(slack) : undefined;
    const volatileDueAt = this.#lane?.machine.nextDueAt(slack);
    if (durableDueAt === undefined && volatileDueAt === undefined) return;
    const dueAt = Math.min(
      durableDueAt ?? Number.POSITIVE_INFINITY,
      volatileDueAt ?? Number.POSITIVE_INFINITY,
    );
    if (this.#tickTimer !== undefined && this.#tickDueAt <= dueAt) return;
    clearTimeout(this.#tickTimer);
    const delay = Math.min(Math.max(0, dueAt - this.#clock.now()), MAX_TIMER_DELAY_MS);
    this.#tickDueAt = dueAt;
    this.#tickTimer = setTimeout(() => {
      this.#tickTimer = undefined;
      this.#tickDueAt = Number.POSITIVE_INFINITY;
      if (this.#closed) return;
      const lane = this.#lane;
      if (lane !== undefined) {
        this.#tickVolatile(lane, this.#stamp());
        this.#serveWaiters();
      }
      // A durable tick is a log entry: only when the durable lane has something due.
      const durableDueAt = this.#application.machine.nextDueAt(slack);
      if (this.#host.leaderCaughtUp && durableDueAt !== undefined && durableDueAt <= this.#clock.now()) {
        this.#tickNow();
      } else {
        this.#scheduleTick();
      }
    }, delay);
    this.#tickTimer.unref();
  }

  #tickNow(): void {
    if (this.#tickInFlight || this.#closed || !this.#host.leaderCaughtUp) return;
    this.#tickInFlight = true;
    this.#submit({ type: 'tick' })
      .then((result: TickApplied) => {
        if (result.redelivered.length > 0 || result.deadLettered.length > 0) {
          this.#logger.info(
            { redelivered: result.redelivered.length, deadLettered: result.deadLettered.length },
            'leases expired; jobs redelivered or dead-lettered',
          );
        }
      })
      .catch(() => {
        // A new leader ticks for itself.
      })
      .finally(() => {
        this.#tickInFlight = false;
        if (this.#host.leaderCaughtUp) {
          this.#scheduleTick();
          this.#serveWaiters();
        }
      });
  }
}
