/**
 * The queue as a pure, deterministic state machine: `apply(command)` in, a result out. The
 * embedded queue drives it from a local fsynced log; the Raft queue will drive it from the
 * replicated log. Commands carry their own time and lease ids come from a counter in the state,
 * so replicas applying the same commands in the same order reach the same state and hand out
 * the same leases. No clock, randomness or I/O in here.
 *
 * Scheduling: accounts with claimable jobs sit in a round-robin ring; a claim serves the account
 * at the front and moves it to the back, so one busy tenant cannot starve the others. Within an
 * account, the claimable job enqueued first is served first (a redelivered job keeps its place).
 *
 * Cost: every command is O(log n) amortised in the number of jobs. Heaps are deleted from lazily
 * (an entry knows whether it is still current), so nothing scans an array per command; only
 * `release-leases`, snapshots and the diagnostic reads walk all jobs.
 */
import { PixelfleetError } from '../errors/index.ts';
import type {
  AckCommand,
  ClaimApplied,
  ClaimCommand,
  CommandRejection,
  CommandResult,
  ConfigureCommand,
  EnqueueApplied,
  EnqueueCommand,
  ExtendApplied,
  ExtendCommand,
  NackCommand,
  QueueCommand,
  SettleApplied,
  TickApplied,
} from './commands.ts';
import { Fifo } from './deque.ts';
import { MinHeap } from './heap.ts';
import type { ClaimedJob, JobOutcome, JobPayload, JobRecord, JobState, QueueStats } from './types.ts';

export const DEFAULT_MAX_ATTEMPTS = 3;
export const DEFAULT_RETENTION_MS = 24 * 60 * 60 * 1000;

export interface QueueStateConfig {
  /** Deliveries allowed before a job is dead-lettered, when the job does not say. */
  maxAttempts: number;
  /** How long finished jobs are remembered: for `get`, for dead letters and for deduplication. */
  retentionMs: number;
}

/** A job as kept in the state and in snapshots. */
interface Job {
  id: string;
  account: string;
  payload: JobPayload;
  maxAttempts: number;
  enqueuedAt: number;
  deadline?: number;
  /** Per-job retention of the finished record; absent = the queue's. */
  retentionMs?: number;
  /** Incarnation number, unique for all time: FIFO order within an account, tie-break everywhere. */
  sequence: number;
  state: JobState;
  attempts: number;
  claimedAt?: number;
  firstClaimedAt?: number;
  finishedAt?: number;
  lastError?: string;
  outcome?: JobOutcome;
  /** Queued jobs only: not claimable before this time (nack backoff). */
  notBefore?: number;
  /** Running jobs only. */
  leaseId?: string;
  leaseExpiresAt?: number;
  consumer?: string;
}

/** Bookkeeping that is rebuilt from the jobs on restore, never serialised. */
interface JobSlot {
  job: Job;
  /** Non-zero while the job's entry in its account's ready heap is current. */
  readyToken: number;
}

interface Account {
  name: string;
  ready: MinHeap<ReadyEntry>;
  /** Claimable jobs (current entries in `ready`). */
  readyCount: number;
  /** Queued jobs, claimable or delayed. */
  queued: number;
  inflight: number;
  /** Token of the account's current ring entry; 0 when it is not in the ring. */
  ringToken: number;
}

interface ReadyEntry {
  sequence: number;
  id: string;
  token: number;
}
interface RingEntry {
  account: string;
  token: number;
}
interface TimedEntry {
  time: number;
  sequence: number;
  id: string;
}
interface LeaseEntry extends TimedEntry {
  leaseId: string;
}

interface Totals {
  enqueued: number;
  acked: number;
  nacked: number;
  redelivered: number;
  expired: number;
  deadLettered: number;
}

/** The serialisable form of the whole state (plain JSON). */
export interface QueueSnapshot {
  format: 'pixelfleet.queue-state.v1';
  config: QueueStateConfig;
  nextSequence: number;
  nextLease: number;
  totals: Totals;
  /** Every known job, in the order the state first saw it. */
  jobs: Job[];
  /** Accounts in creation order (the order `stats().perAccount` lists them). */
  accounts: string[];
  /** Accounts with claimable jobs, front of the round-robin ring first. */
  ring: string[];
  /** Dead-lettered job ids, oldest first. */
  deadLetters: string[];
}

const FINISHED: ReadonlySet<JobState> = new Set(['succeeded', 'dead', 'expired']);

const byTimeThenSequence = (a: TimedEntry, b: TimedEntry) =>
  a.time < b.time || (a.time === b.time && a.sequence < b.sequence);

export class QueueStateMachine {
  #config: QueueStateConfig;
  readonly #slots = new Map<string, JobSlot>();
  readonly #accounts = new Map<string, Account>();
  readonly #ring = new Fifo<RingEntry>();
  readonly #leases = new MinHeap<LeaseEntry>(byTimeThenSequence);
  readonly #delayed = new MinHeap<TimedEntry>(byTimeThenSequence);
  readonly #deadlines = new MinHeap<TimedEntry>(byTimeThenSequence);
  readonly #retention = new MinHeap<TimedEntry>(byTimeThenSequence);
  /** Insertion order = order of dead-lettering. */
  readonly #deadLetters = new Map<string, Job>();
  #totals: Totals = { enqueued: 0, acked: 0, nacked: 0, redelivered: 0, expired: 0, deadLettered: 0 };
  #nextSequence = 1;
  #nextLease = 1;
  #nextToken = 1;
  #queued = 0;
  #inflight = 0;
  #claimable = 0;
  /** Bumped by every state change, so `apply` can tell whether a command changed anything. */
  #mutations = 0;

  constructor(config: Partial<QueueStateConfig> = {}) {
    this.#config = validateConfig({
      maxAttempts: config.maxAttempts ?? DEFAULT_MAX_ATTEMPTS,
      retentionMs: config.retentionMs ?? DEFAULT_RETENTION_MS,
    });
  }

  static restore(snapshot: QueueSnapshot): QueueStateMachine {
    if (snapshot?.format !== 'pixelfleet.queue-state.v1') {
      throw new PixelfleetError('PF_ERR_STORAGE_CORRUPT', 'not a queue state snapshot (unknown format)');
    }
    const machine = new QueueStateMachine(snapshot.config);
    machine.#load(snapshot);
    return machine;
  }

  get config(): Readonly<QueueStateConfig> {
    return this.#config;
  }

  /** Jobs the state remembers (active and retained finished ones). */
  get size(): number {
    return this.#slots.size;
  }

  /** Jobs a claim could take right now (delayed jobs count once a tick or claim promotes them). */
  get claimable(): number {
    return this.#claimable;
  }

  apply<C extends QueueCommand>(command: C): CommandResult<C> {
    const before = this.#mutations;
    const result = this.#dispatch(command) as CommandResult<C>;
    result.changed = this.#mutations !== before;
    return result;
  }

  #dispatch(command: QueueCommand): CommandResult<QueueCommand> {
    switch (command.type) {
      case 'configure':
        return this.#configure(command);
      case 'enqueue':
        return this.#enqueue(command);
      case 'claim':
        return this.#claim(command);
      case 'ack':
        return this.#ack(command);
      case 'nack':
        return this.#nack(command);
      case 'extend':
        return this.#extend(command);
      case 'tick':
        return this.#tick(command.at);
      case 'release-leases':
        return this.#releaseLeases(command.at, command.consumer);
      default:
        // A replica must stop rather than diverge on a command it does not understand.
        throw new PixelfleetError(
          'PF_ERR_INTERNAL',
          `unknown queue command type ${JSON.stringify((command as { type?: unknown }).type)}`,
        );
    }
  }

  // ---- commands ----

  #configure(command: ConfigureCommand): { changed: boolean } {
    const next = validateConfig({ maxAttempts: command.maxAttempts, retentionMs: command.retentionMs });
    if (next.maxAttempts !== this.#config.maxAttempts || next.retentionMs !== this.#config.retentionMs) {
      this.#config = next;
      this.#mutations++;
    }
    return { changed: false };
  }

  #enqueue(command: EnqueueCommand): EnqueueApplied {
    const existing = this.#slots.get(command.id);
    if (existing) return { changed: false, id: command.id, duplicate: true, state: existing.job.state };
    const maxAttempts =
      Number.isInteger(command.maxAttempts) && (command.maxAttempts as number) >= 1
        ? (command.maxAttempts as number)
        : this.#config.maxAttempts;
    const job: Job = {
      id: command.id,
      account: command.account,
      payload: command.payload,
      maxAttempts,
      enqueuedAt: command.at,
      sequence: this.#nextSequence++,
      state: 'queued',
      attempts: 0,
    };
    if (command.deadline !== undefined) job.deadline = command.deadline;
    if (command.retentionMs !== undefined) job.retentionMs = command.retentionMs;
    const slot: JobSlot = { job, readyToken: 0 };
    this.#slots.set(job.id, slot);
    this.#totals.enqueued++;
    this.#mutations++;
    if (isPastDeadline(job, command.at)) {
      // Born expired: nobody is waiting for it any more, so it is never handed to a worker.
      job.state = 'expired';
      this.#finish(slot, 'expired', command.at, 'deadline passed before the job was claimed');
    } else {
      this.#enterQueue(slot, undefined);
    }
    return { changed: true, id: job.id, duplicate: false, state: job.state };
  }

  #claim(command: ClaimCommand): ClaimApplied {
    this.#promoteDelayed(command.at);
    for (;;) {
      const entry = this.#ring.shift();
      if (entry === undefined) return { changed: false, job: undefined };
      const account = this.#accounts.get(entry.account);
      if (account === undefined || account.ringToken !== entry.token) continue;
      const slot = this.#takeReady(account, command.at);
      // Served accounts go to the back of the ring; empty ones leave it.
      if (account.readyCount > 0) this.#joinRing(account);
      else account.ringToken = 0;
      if (slot === undefined) continue;
      return { changed: true, job: this.#lease(slot, account, command) };
    }
  }

  #ack(command: AckCommand): SettleApplied {
    const held = this.#heldLease(command.id, command.leaseId, command.at);
    if ('rejection' in held) return { changed: false, rejection: held.rejection };
    if (command.outcome !== undefined) held.slot.job.outcome = command.outcome;
    this.#totals.acked++;
    this.#finish(held.slot, 'succeeded', command.at, undefined);
    return { changed: true };
  }

  #nack(command: NackCommand): SettleApplied {
    const held = this.#heldLease(command.id, command.leaseId, command.at);
    if ('rejection' in held) return { changed: false, rejection: held.rejection };
    const { slot } = held;
    this.#totals.nacked++;
    slot.job.lastError = command.reason;
    if (command.retry && slot.job.attempts < slot.job.maxAttempts) {
      const delayMs = command.delayMs ?? 0;
      this.#requeue(slot, delayMs > 0 ? command.at + delayMs : undefined);
    } else {
      this.#finish(slot, 'dead', command.at, command.reason);
    }
    return { changed: true };
  }

  #extend(command: ExtendCommand): ExtendApplied {
    const held = this.#heldLease(command.id, command.leaseId, command.at);
    if ('rejection' in held) return { changed: false, rejection: held.rejection };
    const { job } = held.slot;
    job.leaseExpiresAt = command.at + command.leaseMs;
    this.#leases.push({
      time: job.leaseExpiresAt,
      sequence: job.sequence,
      id: job.id,
      leaseId: command.leaseId,
    });
    this.#mutations++;
    return { changed: true, leaseExpiresAt: job.leaseExpiresAt };
  }

  #tick(at: number): TickApplied {
    const result: TickApplied = {
      changed: false,
      redelivered: [],
      deadLettered: [],
      expired: [],
      promoted: 0,
      forgotten: 0,
    };
    for (let top = this.#leases.peek(); top !== undefined && top.time <= at; top = this.#leases.peek()) {
      this.#leases.pop();
      const slot = this.#slots.get(top.id);
      const job = slot?.job;
      if (slot === undefined || job?.state !== 'running' || job.leaseId !== top.leaseId) continue;
      if (job.leaseExpiresAt !== top.time) continue;
      this.#expireLease(slot, at, result);
    }
    for (let top = this.#deadlines.peek(); top !== undefined && top.time < at; top = this.#deadlines.peek()) {
      this.#deadlines.pop();
      const slot = this.#slots.get(top.id);
      if (slot === undefined || slot.job.sequence !== top.sequence || slot.job.state !== 'queued') continue;
      this.#expireQueued(slot, at);
      result.expired.push(slot.job.id);
    }
    result.promoted = this.#promoteDelayed(at);
    for (let top = this.#retention.peek(); top !== undefined; top = this.#retention.peek()) {
      // Heap times are forget-after times (finish + retention), fixed when the job finished.
      if (top.time > at) break;
      this.#retention.pop();
      const slot = this.#slots.get(top.id);
      if (slot === undefined || slot.job.sequence !== top.sequence || !FINISHED.has(slot.job.state)) continue;
      this.#slots.delete(top.id);
      this.#deadLetters.delete(top.id);
      this.#mutations++;
      result.forgotten++;
    }
    return result;
  }

  #releaseLeases(at: number, consumer: string | undefined): TickApplied {
    const result: TickApplied = {
      changed: false,
      redelivered: [],
      deadLettered: [],
      expired: [],
      promoted: 0,
      forgotten: 0,
    };
    const running = [...this.#slots.values()].filter(
      (slot) => slot.job.state === 'running' && (consumer === undefined || heldBy(slot.job, consumer)),
    );
    for (const slot of running) {
      this.#expireLease(
        slot,
        at,
        result,
        consumer === undefined ? 'lease expired' : `lease released by ${consumer}`,
      );
    }
    return result;
  }

  // ---- transitions ----

  #heldLease(id: string, leaseId: string, at: number): { slot: JobSlot } | { rejection: CommandRejection } {
    const slot = this.#slots.get(id);
    if (slot === undefined) {
      return { rejection: { code: 'PF_ERR_JOB_NOT_FOUND', message: `job ${id} is not known to the queue` } };
    }
    const { job } = slot;
    if (job.state !== 'running' || job.leaseId !== leaseId) {
      const now = job.state === 'running' ? 'leased again by another delivery' : job.state;
      return {
        rejection: {
          code: 'PF_ERR_LEASE_LOST',
          message: `job ${id}: lease ${leaseId} is no longer held (job is ${now})`,
        },
      };
    }
    // An expired lease is lost even before a tick hands the job to someone else: acking it
    // would race with the redelivery that is due.
    if (at >= (job.leaseExpiresAt as number)) {
      return {
        rejection: {
          code: 'PF_ERR_LEASE_LOST',
          message: `job ${id}: lease ${leaseId} expired at ${new Date(job.leaseExpiresAt as number).toISOString()}`,
        },
      };
    }
    return { slot };
  }

  #lease(slot: JobSlot, account: Account, command: ClaimCommand): ClaimedJob {
    const { job } = slot;
    this.#queued--;
    account.queued--;
    this.#inflight++;
    account.inflight++;
    job.state = 'running';
    job.attempts++;
    if (job.attempts > 1) this.#totals.redelivered++;
    job.claimedAt = command.at;
    job.firstClaimedAt ??= command.at;
    job.leaseId = `lease-${this.#nextLease++}`;
    job.leaseExpiresAt = command.at + command.leaseMs;
    job.consumer = command.consumer;
    this.#leases.push({ time: job.leaseExpiresAt, sequence: job.sequence, id: job.id, leaseId: job.leaseId });
    this.#mutations++;
    const claimed: ClaimedJob = {
      id: job.id,
      account: job.account,
      payload: job.payload,
      attempt: job.attempts,
      maxAttempts: job.maxAttempts,
      leaseId: job.leaseId,
      leaseExpiresAt: job.leaseExpiresAt,
      enqueuedAt: job.enqueuedAt,
    };
    if (job.deadline !== undefined) claimed.deadline = job.deadline;
    return claimed;
  }

  #expireLease(slot: JobSlot, at: number, result: TickApplied, how = 'lease expired'): void {
    const { job } = slot;
    if (job.attempts >= job.maxAttempts) {
      this.#finish(slot, 'dead', at, `${how} after ${job.attempts} attempts`);
      result.deadLettered.push(job.id);
    } else {
      job.lastError = `${how} (attempt ${job.attempts})`;
      this.#requeue(slot, undefined);
      result.redelivered.push(job.id);
    }
  }

  /** A running job goes back to the queue: claimable now, or from `notBefore` on. */
  #requeue(slot: JobSlot, notBefore: number | undefined): void {
    const account = this.#accountOf(slot.job);
    this.#inflight--;
    account.inflight--;
    clearLease(slot.job);
    this.#enterQueue(slot, notBefore);
  }

  #enterQueue(slot: JobSlot, notBefore: number | undefined): void {
    const { job } = slot;
    const account = this.#accountOf(job);
    job.state = 'queued';
    this.#queued++;
    account.queued++;
    if (job.deadline !== undefined) {
      this.#deadlines.push({ time: job.deadline, sequence: job.sequence, id: job.id });
    }
    if (notBefore === undefined) {
      this.#makeReady(slot, account);
    } else {
      job.notBefore = notBefore;
      this.#delayed.push({ time: notBefore, sequence: job.sequence, id: job.id });
    }
    this.#mutations++;
  }

  #makeReady(slot: JobSlot, account: Account): void {
    slot.readyToken = this.#nextToken++;
    account.ready.push({ sequence: slot.job.sequence, id: slot.job.id, token: slot.readyToken });
    account.readyCount++;
    this.#claimable++;
    if (account.ringToken === 0) this.#joinRing(account);
  }

  #joinRing(account: Account): void {
    account.ringToken = this.#nextToken++;
    this.#ring.push({ account: account.name, token: account.ringToken });
  }

  /** Pops the account's first claimable job, dropping any whose deadline has passed. */
  #takeReady(account: Account, at: number): JobSlot | undefined {
    for (let entry = account.ready.pop(); entry !== undefined; entry = account.ready.pop()) {
      const slot = this.#slots.get(entry.id);
      if (slot === undefined || slot.readyToken !== entry.token) continue;
      this.#leaveReady(slot, account);
      if (isPastDeadline(slot.job, at)) {
        this.#finishQueued(slot, at);
        continue;
      }
      return slot;
    }
    return undefined;
  }

  #leaveReady(slot: JobSlot, account: Account): void {
    slot.readyToken = 0;
    account.readyCount--;
    this.#claimable--;
    this.#mutations++;
  }

  #promoteDelayed(at: number): number {
    let promoted = 0;
    for (let top = this.#delayed.peek(); top !== undefined && top.time <= at; top = this.#delayed.peek()) {
      this.#delayed.pop();
      const slot = this.#slots.get(top.id);
      const job = slot?.job;
      if (slot === undefined || job?.sequence !== top.sequence || job.state !== 'queued') continue;
      if (job.notBefore !== top.time) continue;
      delete job.notBefore;
      this.#makeReady(slot, this.#accountOf(job));
      this.#mutations++;
      promoted++;
    }
    return promoted;
  }

  /** A queued job (claimable or delayed) whose deadline passed. */
  #expireQueued(slot: JobSlot, at: number): void {
    const account = this.#accountOf(slot.job);
    if (slot.readyToken !== 0) {
      this.#leaveReady(slot, account);
      if (account.readyCount === 0) account.ringToken = 0;
    }
    this.#finishQueued(slot, at);
  }

  #finishQueued(slot: JobSlot, at: number): void {
    delete slot.job.notBefore;
    this.#finish(slot, 'expired', at, 'deadline passed before the job was claimed');
  }

  /** Moves a job to a final state, whatever active state it was in. */
  #finish(
    slot: JobSlot,
    state: 'succeeded' | 'dead' | 'expired',
    at: number,
    reason: string | undefined,
  ): void {
    const { job } = slot;
    const account = this.#accounts.get(job.account);
    if (job.state === 'queued' && account) {
      this.#queued--;
      account.queued--;
    } else if (job.state === 'running' && account) {
      this.#inflight--;
      account.inflight--;
    }
    if (account && account.queued === 0 && account.inflight === 0) this.#accounts.delete(account.name);
    clearLease(job);
    job.state = state;
    job.finishedAt = at;
    if (reason !== undefined) job.lastError = reason;
    if (state === 'dead') {
      this.#deadLetters.set(job.id, job);
      this.#totals.deadLettered++;
    } else if (state === 'expired') {
      this.#totals.expired++;
    }
    this.#retention.push({ time: at + this.#retentionOf(job), sequence: job.sequence, id: job.id });
    this.#mutations++;
  }

  #retentionOf(job: Job): number {
    return job.retentionMs ?? this.#config.retentionMs;
  }

  #accountOf(job: Pick<Job, 'account'>): Account {
    let account = this.#accounts.get(job.account);
    if (account === undefined) {
      account = {
        name: job.account,
        ready: new MinHeap<ReadyEntry>((a, b) => a.sequence < b.sequence),
        readyCount: 0,
        queued: 0,
        inflight: 0,
        ringToken: 0,
      };
      this.#accounts.set(job.account, account);
    }
    return account;
  }

  // ---- reads ----

  /** Whether the state remembers this job (cheaper than `get`: builds no record). */
  has(id: string): boolean {
    return this.#slots.has(id);
  }

  get(id: string): JobRecord | undefined {
    const job = this.#slots.get(id)?.job;
    return job === undefined ? undefined : publicJobRecord(job);
  }

  /** Dead-lettered jobs, most recent first. */
  deadLetters(limit = 100): JobRecord[] {
    const all = [...this.#deadLetters.values()];
    const records: JobRecord[] = [];
    for (let index = all.length - 1; index >= 0 && records.length < limit; index--) {
      records.push(publicJobRecord(all[index]!));
    }
    return records;
  }

  stats(): QueueStats {
    const perAccount: QueueStats['perAccount'] = {};
    for (const account of this.#accounts.values()) {
      perAccount[account.name] = { queued: account.queued, inflight: account.inflight };
    }
    return {
      depth: this.#queued,
      inflight: this.#inflight,
      deadLetters: this.#deadLetters.size,
      enqueuedTotal: this.#totals.enqueued,
      ackedTotal: this.#totals.acked,
      nackedTotal: this.#totals.nacked,
      redeliveredTotal: this.#totals.redelivered,
      expiredTotal: this.#totals.expired,
      deadLetteredTotal: this.#totals.deadLettered,
      perAccount,
    };
  }

  /**
   * The earliest time a tick could change something (a lease or backoff ending, a deadline or a
   * retention window passing), or undefined when nothing is pending. May be early (heap tops are
   * removed lazily), never late. `retentionSlackMs` postpones the retention candidate so that
   * forgetting old jobs happens in batches rather than one tick per finished job.
   */
  nextDueAt(options: { retentionSlackMs?: number } = {}): number | undefined {
    const candidates = [
      this.#leases.peek()?.time,
      this.#delayed.peek()?.time,
      // A job expires once the time is past its deadline.
      plusOne(this.#deadlines.peek()?.time),
      plus(this.#retention.peek()?.time, options.retentionSlackMs ?? 0),
    ].filter((time): time is number => time !== undefined);
    return candidates.length === 0 ? undefined : Math.min(...candidates);
  }

  snapshot(): QueueSnapshot {
    return {
      format: 'pixelfleet.queue-state.v1',
      config: { ...this.#config },
      nextSequence: this.#nextSequence,
      nextLease: this.#nextLease,
      totals: { ...this.#totals },
      jobs: [...this.#slots.values()].map((slot) => ({ ...slot.job })),
      accounts: [...this.#accounts.keys()],
      ring: [...this.#ring]
        .filter((entry) => this.#accounts.get(entry.account)?.ringToken === entry.token)
        .map((entry) => entry.account),
      deadLetters: [...this.#deadLetters.keys()],
    };
  }

  #load(snapshot: QueueSnapshot): void {
    this.#nextSequence = snapshot.nextSequence;
    this.#nextLease = snapshot.nextLease;
    this.#totals = { ...snapshot.totals };
    // Accounts first, so that their map keeps the original creation order.
    for (const name of snapshot.accounts) this.#accountOf({ account: name });
    for (const stored of snapshot.jobs) {
      const job: Job = { ...stored };
      const slot: JobSlot = { job, readyToken: 0 };
      this.#slots.set(job.id, slot);
      if (job.state === 'queued') {
        const account = this.#accountOf(job);
        this.#queued++;
        account.queued++;
        if (job.deadline !== undefined) {
          this.#deadlines.push({ time: job.deadline, sequence: job.sequence, id: job.id });
        }
        if (job.notBefore === undefined) {
          slot.readyToken = this.#nextToken++;
          account.ready.push({ sequence: job.sequence, id: job.id, token: slot.readyToken });
          account.readyCount++;
          this.#claimable++;
        } else {
          this.#delayed.push({ time: job.notBefore, sequence: job.sequence, id: job.id });
        }
      } else if (job.state === 'running') {
        const account = this.#accountOf(job);
        this.#inflight++;
        account.inflight++;
        this.#leases.push({
          time: job.leaseExpiresAt as number,
          sequence: job.sequence,
          id: job.id,
          leaseId: job.leaseId as string,
        });
      } else {
        this.#retention.push({
          time: (job.finishedAt as number) + this.#retentionOf(job),
          sequence: job.sequence,
          id: job.id,
        });
      }
    }
    for (const name of snapshot.ring) {
      const account = this.#accounts.get(name);
      if (account && account.readyCount > 0 && account.ringToken === 0) this.#joinRing(account);
    }
    for (const id of snapshot.deadLetters) {
      const job = this.#slots.get(id)?.job;
      if (job?.state === 'dead') this.#deadLetters.set(id, job);
    }
    const missing = [...this.#accounts.values()].filter(
      (account) => account.readyCount > 0 && account.ringToken === 0,
    );
    if (missing.length > 0 || [...this.#accounts.values()].some((a) => a.queued + a.inflight === 0)) {
      throw new PixelfleetError(
        'PF_ERR_STORAGE_CORRUPT',
        'queue snapshot is inconsistent (accounts vs jobs)',
      );
    }
  }

  /**
   * Checks the internal bookkeeping against the jobs themselves and lists every violation (empty
   * when sound). O(n): for property tests and diagnostics, not for the hot path.
   */
  checkInvariants(): string[] {
    const problems: string[] = [];
    const counted = new Map<string, { queued: number; inflight: number; ready: number }>();
    let queued = 0;
    let inflight = 0;
    let claimable = 0;
    for (const [id, slot] of this.#slots) {
      const { job } = slot;
      if (job.id !== id) problems.push(`job ${id} stored under another id`);
      if (job.attempts > job.maxAttempts)
        problems.push(`job ${id}: ${job.attempts} > ${job.maxAttempts} attempts`);
      const tally = counted.get(job.account) ?? { queued: 0, inflight: 0, ready: 0 };
      counted.set(job.account, tally);
      if (job.state === 'queued') {
        queued++;
        tally.queued++;
        const ready = job.notBefore === undefined;
        if (ready !== (slot.readyToken !== 0))
          problems.push(`job ${id}: ready flag disagrees with notBefore`);
        if (ready) {
          claimable++;
          tally.ready++;
        }
      } else if (job.state === 'running') {
        inflight++;
        tally.inflight++;
        if (job.leaseId === undefined || job.leaseExpiresAt === undefined)
          problems.push(`job ${id}: running unleased`);
      } else {
        if (!FINISHED.has(job.state)) problems.push(`job ${id}: unknown state ${job.state}`);
        if (job.finishedAt === undefined) problems.push(`job ${id}: finished without finishedAt`);
        if (slot.readyToken !== 0) problems.push(`job ${id}: finished but still ready`);
      }
      if (job.state !== 'running' && job.leaseId !== undefined) problems.push(`job ${id}: stale lease`);
      if ((job.state === 'dead') !== this.#deadLetters.has(id))
        problems.push(`job ${id}: dead-letter list disagrees`);
    }
    if (queued !== this.#queued) problems.push(`queued count ${this.#queued} but ${queued} queued jobs`);
    if (inflight !== this.#inflight)
      problems.push(`inflight count ${this.#inflight} but ${inflight} running jobs`);
    if (claimable !== this.#claimable)
      problems.push(`claimable count ${this.#claimable} but ${claimable} ready jobs`);
    const inRing = new Map<string, number>();
    for (const entry of this.#ring) {
      if (this.#accounts.get(entry.account)?.ringToken === entry.token) {
        inRing.set(entry.account, (inRing.get(entry.account) ?? 0) + 1);
      }
    }
    for (const [name, tally] of counted) {
      if (tally.queued + tally.inflight === 0) continue;
      const account = this.#accounts.get(name);
      if (account === undefined) {
        problems.push(`account ${name} has active jobs but no account entry`);
        continue;
      }
      if (
        account.queued !== tally.queued ||
        account.inflight !== tally.inflight ||
        account.readyCount !== tally.ready
      ) {
        problems.push(`account ${name}: counts disagree with its jobs`);
      }
      if ((tally.ready > 0 ? 1 : 0) !== (inRing.get(name) ?? 0))
        problems.push(`account ${name}: ring membership wrong`);
    }
    for (const [name, account] of this.#accounts) {
      if (account.queued + account.inflight === 0) problems.push(`account ${name} is empty but kept`);
    }
    for (const id of this.#deadLetters.keys()) {
      if (this.#slots.get(id)?.job.state !== 'dead') problems.push(`dead letter ${id} is not a dead job`);
    }
    return problems;
  }
}

/** The error a driver throws for a refused fenced command. */
export function rejectionError(rejection: CommandRejection): PixelfleetError {
  return new PixelfleetError(rejection.code, rejection.message);
}

function validateConfig(config: QueueStateConfig): QueueStateConfig {
  if (!Number.isInteger(config.maxAttempts) || config.maxAttempts < 1) {
    throw new RangeError(`maxAttempts must be an integer >= 1: got ${config.maxAttempts}`);
  }
  if (!Number.isFinite(config.retentionMs) || config.retentionMs < 0) {
    throw new RangeError(`retentionMs must be a finite number >= 0: got ${config.retentionMs}`);
  }
  return { maxAttempts: config.maxAttempts, retentionMs: config.retentionMs };
}

function isPastDeadline(job: Job, at: number): boolean {
  return job.deadline !== undefined && at > job.deadline;
}

/** Whether `consumer`, or one of its slots (`<consumer>/<slot>`), holds the job's lease. */
function heldBy(job: Job, consumer: string): boolean {
  const holder = job.consumer;
  return holder !== undefined && (holder === consumer || holder.startsWith(`${consumer}/`));
}

function clearLease(job: Job): void {
  delete job.leaseId;
  delete job.leaseExpiresAt;
  delete job.consumer;
}

function plusOne(time: number | undefined): number | undefined {
  return time === undefined ? undefined : time + 1;
}

function plus(time: number | undefined, ms: number): number | undefined {
  return time === undefined ? undefined : time + ms;
}

/**
 * The public view of a job: the `JobRecord` fields only (no lease internals), absent optional
 * fields left out. Shared by every queue implementation that keeps richer job state.
 */
export function publicJobRecord(job: JobRecord): JobRecord {
  const record: JobRecord = {
    id: job.id,
    account: job.account,
    state: job.state,
    payload: job.payload,
    attempts: job.attempts,
    maxAttempts: job.maxAttempts,
    enqueuedAt: job.enqueuedAt,
  };
  if (job.claimedAt !== undefined) record.claimedAt = job.claimedAt;
  if (job.firstClaimedAt !== undefined) record.firstClaimedAt = job.firstClaimedAt;
  if (job.finishedAt !== undefined) record.finishedAt = job.finishedAt;
  if (job.lastError !== undefined) record.lastError = job.lastError;
  if (job.outcome !== undefined) record.outcome = job.outcome;
  if (job.deadline !== undefined) record.deadline = job.deadline;
  return record;
}
