/**
 * RaftQueueClient: the `JobQueue` for API servers and workers in other processes, talking to a
 * Raft queue cluster over the nodes' client ports (`client-protocol.ts`).
 *
 * - Finds the leader: starts with any node, follows PF_ERR_NOT_LEADER redirects (the error names
 *   the leader's client address) and remembers the leader until it fails.
 * - Retries across failover: a lost connection, a timed-out attempt, an election in progress or a
 *   proposal dropped by a leader change is retried — on the leader hint when there is one, else
 *   on the next node — after an exponential backoff with full jitter, until `requestTimeoutMs`.
 * - Never duplicates a job: a retried enqueue carries the same id and the state machine
 *   deduplicates it (the retry may then report `duplicate: true` for the job its own first
 *   attempt created).
 * - An ack whose first attempt may have landed (the connection died after sending it) and whose
 *   retry is refused with PF_ERR_LEASE_LOST succeeds if the job is now `succeeded`: the job is done.
 *   A retried claim may leave a lease behind that nobody holds; it expires and the job is
 *   redelivered (at-least-once delivery, as after any worker crash).
 * - Re-sends non-durable jobs lost with a leader. A `durable: false` job lives only in the
 *   leader's volatile lane, which dies with its leadership; the enqueue answer names the lane.
 *   The client remembers each such job it enqueued until its deadline (at most
 *   `volatileResendWindowMs`) or until told it is finished (`settled`, or an ack/nack through
 *   this client), keeps one `watchLane` long-poll open on the leader while it remembers any, and
 *   when the lane changes (new leader, or the leader stepped down and up again) it enqueues them
 *   again, same id, on the new leader. A job that had been claimed before the change is re-sent
 *   too: its worker still delivers the result (the ack is refused), and the copy finds its input
 *   gone or is converted twice and metered once (metering deduplicates by job id).
 */

import { connect, type Socket } from 'node:net';
import { isPixelfleetError, PixelfleetError } from '../../errors/index.ts';
import { sleep } from '../../resilience/remote/index.ts';
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
import {
  adminProof,
  encodeFrame,
  FrameSplitter,
  formatAddress,
  fromWireError,
  type Operation,
  PROTOCOL_MAGIC,
  parseAddress,
  type ResponseFrame,
} from './client-protocol.ts';

export interface RaftQueueClientOptions {
  /** Client addresses of the cluster's nodes ("host:port" or { host, port }); any subset works. */
  nodes: Array<string | { host: string; port: number }>;
  /** Give up on a request (PF_ERR_QUEUE_UNAVAILABLE) after this long, plus a claim's wait. Default 30 000. */
  requestTimeoutMs?: number;
  /** One attempt on one node may take this long (plus a claim's wait) before it is retried elsewhere. Default 3000. */
  attemptTimeoutMs?: number;
  /** First retry delay ceiling; it doubles per retry (full jitter: the delay is uniform below it). Default 10. */
  retryInitialDelayMs?: number;
  /** Ceiling of the retry delay. Default 250. */
  retryMaxDelayMs?: number;
  /** Connecting to a node may take this long. Default 1000. */
  connectTimeoutMs?: number;
  /** Uniform random source in [0, 1) for the jitter. */
  random?: () => number;
  /** The cluster secret, only needed for admin operations (membership, leadership transfer). */
  clusterSecret?: string | Uint8Array;
  /**
   * How long a non-durable job is remembered for re-sending after a leader change, at most
   * (its deadline ends it sooner). Default 30 000, the api's default synchronous timeout.
   */
  volatileResendWindowMs?: number;
}

/** Counters for tests, benchmarks and metrics. */
export interface RaftQueueClientStats {
  requests: number;
  attempts: number;
  redirects: number;
  retries: number;
  leader: string | null;
  /** Non-durable jobs enqueued again after their volatile lane was lost. */
  volatileResent: number;
  /** Non-durable jobs remembered for re-sending now. */
  volatileRemembered: number;
}

/** A non-durable job this client enqueued and was not told is finished. */
interface RememberedJob {
  request: EnqueueRequest;
  /** The lane that holds it, as last answered. */
  lane: string | undefined;
  forgetAt: number;
}

/** How long one watchLane long-poll waits on the leader. */
const LANE_WATCH_MS = 5_000;

interface PendingRequest {
  resolve(value: unknown): void;
  reject(error: Error): void;
  timer: NodeJS.Timeout;
}

/** Marks failures that say nothing about whether the request took effect on the node. */
class AttemptFailure extends Error {
  readonly outcomeUnknown: boolean;
  constructor(message: string, outcomeUnknown: boolean, cause?: unknown) {
    super(message, cause === undefined ? undefined : { cause });
    this.name = 'AttemptFailure';
    this.outcomeUnknown = outcomeUnknown;
  }
}

/** One framed connection to one node; reconnects lazily on the next request. */
class NodeConnection {
  readonly address: string;
  readonly #target: { host: string; port: number };
  readonly #connectTimeoutMs: number;
  readonly #pending = new Map<number, PendingRequest>();
  #socket: Socket | undefined;
  #connecting: Promise<Socket> | undefined;
  #nextId = 1;
  #corked = false;

  constructor(address: string, connectTimeoutMs: number) {
    this.address = address;
    this.#target = parseAddress(address);
    this.#connectTimeoutMs = connectTimeoutMs;
  }

  async request(
    operation: Operation,
    args: Record<string, unknown>,
    options: { timeoutMs: number; unreachable: string | undefined; signal?: AbortSignal },
  ): Promise<unknown> {
    const socket = await this.#connect();
    // Aborted (or the client closed) while connecting: the abort event has already fired.
    options.signal?.throwIfAborted();
    const id = this.#nextId++;
    return new Promise((resolve, reject) => {
      const { signal } = options;
      const onAbort = () => {
        this.#settle(id);
        this.#write(socket, encodeFrame({ i: this.#nextId++, o: 'cancel', a: { request: id } }));
        reject(signal?.reason);
      };
      const cleanup = () => signal?.removeEventListener('abort', onAbort);
      const timer = setTimeout(() => {
        this.#settle(id);
        cleanup();
        reject(new AttemptFailure(`no answer from ${this.address} within ${options.timeoutMs} ms`, true));
      }, options.timeoutMs);
      this.#pending.set(id, {
        resolve: (value) => {
          cleanup();
          resolve(value);
        },
        reject: (error) => {
          cleanup();
          reject(error);
        },
        timer,
      });
      signal?.addEventListener('abort', onAbort, { once: true });
      const frame: Record<string, unknown> = { i: id, o: operation, a: args };
      if (options.unreachable !== undefined) frame.n = options.unreachable;
      this.#write(socket, encodeFrame(frame));
    });
  }

  close(): void {
    this.#socket?.destroy();
    this.#socket = undefined;
    this.#failAll(new AttemptFailure(`connection to ${this.address} closed`, true));
  }

  #write(socket: Socket, frame: Buffer): void {
    if (socket.destroyed) return;
    // Requests issued in one turn leave in one write.
    if (!this.#corked) {
      this.#corked = true;
      socket.cork();
      process.nextTick(() => {
        this.#corked = false;
        socket.uncork();
      });
    }
    socket.write(frame);
  }

  #settle(id: number): PendingRequest | undefined {
    const pending = this.#pending.get(id);
    if (pending === undefined) return undefined;
    this.#pending.delete(id);
    clearTimeout(pending.timer);
    return pending;
  }

  #failAll(error: Error): void {
    for (const id of [...this.#pending.keys()]) this.#settle(id)?.reject(error);
  }

  #connect(): Promise<Socket> {
    if (this.#socket !== undefined && !this.#socket.destroyed) return Promise.resolve(this.#socket);
    this.#connecting ??= new Promise<Socket>((resolve, reject) => {
      const socket = connect({ host: this.#target.host, port: this.#target.port, noDelay: true });
      const splitter = new FrameSplitter();
      const timer = setTimeout(() => {
        socket.destroy(new Error(`connecting to ${this.address} timed out`));
      }, this.#connectTimeoutMs);
      socket.once('connect', () => {
        clearTimeout(timer);
        socket.write(PROTOCOL_MAGIC);
        this.#socket = socket;
        this.#connecting = undefined;
        resolve(socket);
      });
      socket.on('data', (chunk: Buffer) => {
        let frames: Buffer[];
        try {
          frames = splitter.push(chunk);
        } catch (error) {
          socket.destroy(error as Error);
          return;
        }
        for (const body of frames) {
          const response = JSON.parse(body.toString('utf8')) as ResponseFrame;
          const pending = this.#settle(response.i);
          if (pending === undefined) continue; // timed out or cancelled meanwhile
          if (response.e) pending.reject(fromWireError(response.e));
          else pending.resolve(response.r);
        }
      });
      socket.on('error', () => {});
      socket.once('close', () => {
        clearTimeout(timer);
        if (this.#socket === socket) this.#socket = undefined;
        if (this.#connecting !== undefined && this.#socket === undefined) {
          this.#connecting = undefined;
          reject(new AttemptFailure(`could not connect to ${this.address}`, false));
        }
        this.#failAll(new AttemptFailure(`connection to ${this.address} lost`, true));
      });
    });
    return this.#connecting;
  }
}

export class RaftQueueClient implements JobQueue {
  readonly #nodes: string[];
  readonly #connections = new Map<string, NodeConnection>();
  readonly #requestTimeoutMs: number;
  readonly #attemptTimeoutMs: number;
  readonly #retryInitialDelayMs: number;
  readonly #retryMaxDelayMs: number;
  readonly #connectTimeoutMs: number;
  readonly #random: () => number;
  readonly #clusterSecret: string | Uint8Array | undefined;
  readonly #closeController = new AbortController();
  readonly #volatileResendWindowMs: number;
  #leader: string | null = null;
  #cursor = 0;
  #closed = false;
  readonly #counters = { requests: 0, attempts: 0, redirects: 0, retries: 0, volatileResent: 0 };
  readonly #volatileJobs = new Map<string, RememberedJob>();
  /** The newest volatile lane token seen. */
  #lane: string | undefined;
  #watchingLanes = false;
  #laneWatchUnsupported = false;

  constructor(options: RaftQueueClientOptions) {
    if (!Array.isArray(options?.nodes) || options.nodes.length === 0) {
      throw new RangeError('nodes must list at least one node client address');
    }
    this.#nodes = options.nodes.map((node) =>
      typeof node === 'string' ? formatAddress(parseAddress(node)) : formatAddress(node),
    );
    const positive = (name: string, value: number | undefined, fallback: number) => {
      const resolved = value ?? fallback;
      if (!Number.isFinite(resolved) || resolved <= 0) {
        throw new RangeError(`${name} must be a positive number of milliseconds, got ${value}`);
      }
      return resolved;
    };
    this.#requestTimeoutMs = positive('requestTimeoutMs', options.requestTimeoutMs, 30_000);
    this.#attemptTimeoutMs = positive('attemptTimeoutMs', options.attemptTimeoutMs, 3_000);
    this.#retryInitialDelayMs = positive('retryInitialDelayMs', options.retryInitialDelayMs, 10);
    this.#retryMaxDelayMs = positive('retryMaxDelayMs', options.retryMaxDelayMs, 250);
    this.#connectTimeoutMs = positive('connectTimeoutMs', options.connectTimeoutMs, 1_000);
    this.#volatileResendWindowMs = positive('volatileResendWindowMs', options.volatileResendWindowMs, 30_000);
    if (this.#retryMaxDelayMs < this.#retryInitialDelayMs) {
      throw new RangeError('retryMaxDelayMs must be at least retryInitialDelayMs');
    }
    this.#random = options.random ?? Math.random;
    this.#clusterSecret = options.clusterSecret;
    // Start somewhere different per client, so many clients do not all probe node 1 first.
    this.#cursor = Math.floor(this.#random() * this.#nodes.length);
  }

  async enqueue(request: EnqueueRequest): Promise<EnqueueResult> {
    validateEnqueue(request);
    const answer = (await this.#call('enqueue', { ...request })) as EnqueueResult & { lane?: string };
    if (request.durable === false && answer.lane !== undefined) this.#remember(request, answer.lane);
    return { id: answer.id, duplicate: answer.duplicate, state: answer.state };
  }

  /**
   * Tells the client a non-durable job it enqueued is finished (its result was delivered), so a
   * leader change does not make it enqueue the job again. Optional: without it the job is
   * remembered until its deadline, and a re-sent copy finds its input gone.
   */
  settled(id: string): void {
    this.#volatileJobs.delete(id);
  }

  async claim(request: ClaimRequest): Promise<ClaimedJob | undefined> {
    validateClaim(request);
    request.signal?.throwIfAborted();
    const job = await this.#call(
      'claim',
      { consumer: request.consumer, leaseMs: request.leaseMs },
      { waitMs: request.waitMs ?? 0, ...(request.signal ? { signal: request.signal } : {}) },
    );
    return (job ?? undefined) as ClaimedJob | undefined;
  }

  async ack(id: string, leaseId: string, outcome?: JobOutcome): Promise<void> {
    validateFenced(id, leaseId);
    validateOutcome(outcome);
    this.#volatileJobs.delete(id);
    let uncertain = false;
    try {
      await this.#call(
        'ack',
        { id, leaseId, ...(outcome === undefined ? {} : { outcome }) },
        { onUncertain: () => (uncertain = true) },
      );
    } catch (error) {
      if (!uncertain || !isPixelfleetError(error, 'PF_ERR_LEASE_LOST')) throw error;
      // Our first attempt may have been the one that finished the job.
      const record = await this.get(id);
      if (record?.state !== 'succeeded') throw error;
    }
  }

  async nack(id: string, leaseId: string, options: NackOptions): Promise<void> {
    validateFenced(id, leaseId);
    validateNack(options);
    if (!options.retry) this.#volatileJobs.delete(id);
    await this.#call('nack', { id, leaseId, options });
  }

  async extend(id: string, leaseId: string, leaseMs: number): Promise<{ leaseExpiresAt: number }> {
    validateFenced(id, leaseId);
    checkDuration('leaseMs', leaseMs, false);
    return (await this.#call('extend', { id, leaseId, leaseMs })) as { leaseExpiresAt: number };
  }

  async releaseConsumer(consumer: string): Promise<number> {
    validateConsumer(consumer);
    // Safe to repeat after a lost answer: the consumer claims nothing until this resolves.
    const answer = (await this.#call('releaseConsumer', { consumer })) as { released: number };
    return answer.released;
  }

  async get(id: string): Promise<JobRecord | undefined> {
    return ((await this.#call('get', { id })) ?? undefined) as JobRecord | undefined;
  }

  async deadLetters(limit?: number): Promise<JobRecord[]> {
    if (limit !== undefined && !(Number.isInteger(limit) && limit >= 0)) {
      throw new RangeError(`limit must be an integer >= 0: got ${limit}`);
    }
    return (await this.#call('deadLetters', limit === undefined ? {} : { limit })) as JobRecord[];
  }

  async stats(): Promise<QueueStats> {
    return (await this.#call('stats', {})) as QueueStats;
  }

  /** The status document of one node (the leader's by default), as GET /status serves it. */
  async status(node?: string): Promise<Record<string, unknown>> {
    this.#assertOpen();
    const address = node ?? this.#leader ?? this.#nodes[0]!;
    return (await this.#connection(address).request(
      'status',
      {},
      { timeoutMs: this.#attemptTimeoutMs, unreachable: undefined },
    )) as Record<string, unknown>;
  }

  writable(): boolean {
    return !this.#closed;
  }

  /**
   * Adds a voter to the cluster (sent to the leader): `raftAddress` is where the new node listens
   * for its peers; start it first with `--join`. Needs `clusterSecret`. Resolves with the voters.
   */
  async addMember(
    id: string,
    raftAddress: string | { host: string; port: number },
  ): Promise<{ voters: string[] }> {
    const address = typeof raftAddress === 'string' ? parseAddress(raftAddress) : raftAddress;
    return (await this.#admin('addMember', { id, host: address.host, port: address.port })) as {
      voters: string[];
    };
  }

  /** Removes a voter from the cluster. Needs `clusterSecret`. Resolves with the voters. */
  async removeMember(id: string): Promise<{ voters: string[] }> {
    return (await this.#admin('removeMember', { id })) as { voters: string[] };
  }

  /** Asks the leader to hand leadership over (to `to`, or its most up-to-date follower). */
  async transferLeadership(to?: string): Promise<{ leader: string | null }> {
    return (await this.#admin('transferLeadership', to === undefined ? {} : { to })) as {
      leader: string | null;
    };
  }

  /** The node currently believed to lead, by client address. */
  get leader(): string | null {
    return this.#leader;
  }

  clientStats(): RaftQueueClientStats {
    return { ...this.#counters, leader: this.#leader, volatileRemembered: this.#volatileJobs.size };
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#closeController.abort(new PixelfleetError('PF_ERR_QUEUE_CLOSED', 'the queue client is closed'));
    for (const connection of this.#connections.values()) connection.close();
    this.#connections.clear();
  }

  // ---- internals ----

  #remember(request: EnqueueRequest, lane: string): void {
    const window = Date.now() + this.#volatileResendWindowMs;
    this.#volatileJobs.set(request.id, {
      request: { ...request },
      lane,
      forgetAt: request.deadline === undefined ? window : Math.min(request.deadline, window),
    });
    this.#laneSeen(lane);
    if (!this.#watchingLanes && !this.#laneWatchUnsupported) void this.#watchLanes();
  }

  /** Records the newest lane token; a change means every job of another lane is gone. */
  #laneSeen(lane: string): void {
    if (this.#lane === lane) return;
    this.#lane = lane;
    void this.#resendLost();
  }

  /** Forgets jobs past their window; answers how many are still remembered. */
  #forgetExpired(): number {
    const now = Date.now();
    for (const [id, job] of this.#volatileJobs) if (job.forgetAt <= now) this.#volatileJobs.delete(id);
    return this.#volatileJobs.size;
  }

  /** Enqueues again, same id, every remembered job whose lane is not the newest one. */
  async #resendLost(): Promise<void> {
    const lane = this.#lane;
    const now = Date.now();
    const lost = [...this.#volatileJobs.values()].filter((job) => job.lane !== lane && job.forgetAt > now);
    await Promise.all(
      lost.map(async (job) => {
        // Marked first, so an overlapping resend does not send it twice.
        job.lane = lane;
        this.#counters.volatileResent++;
        try {
          const answer = (await this.#call('enqueue', { ...job.request })) as { lane?: string };
          if (answer.lane !== undefined) {
            job.lane = answer.lane;
            this.#laneSeen(answer.lane);
          }
        } catch {
          // Still lost: the next lane watch answer sends it again.
          job.lane = undefined;
        }
      }),
    );
  }

  /**
   * Keeps one watchLane long-poll open on the leader while non-durable jobs are remembered: a
   * dead leader fails it (and #call finds the new one), a deposed one answers NOT_LEADER.
   */
  async #watchLanes(): Promise<void> {
    this.#watchingLanes = true;
    try {
      while (!this.#closed && this.#forgetExpired() > 0) {
        try {
          const answer = (await this.#call(
            'watchLane',
            { lane: this.#lane ?? '' },
            { waitMs: LANE_WATCH_MS },
          )) as { lane: string };
          this.#laneSeen(answer.lane);
          if ([...this.#volatileJobs.values()].some((job) => job.lane === undefined)) void this.#resendLost();
        } catch (error) {
          if (this.#closed) return;
          if (isPixelfleetError(error, 'PF_ERR_BAD_REQUEST')) {
            // A node without a volatile lane: nothing to watch.
            this.#laneWatchUnsupported = true;
            return;
          }
          await sleep(this.#retryMaxDelayMs, this.#closeController.signal).catch(() => {});
        }
      }
    } finally {
      this.#watchingLanes = false;
    }
  }

  #assertOpen(): void {
    if (this.#closed) throw new PixelfleetError('PF_ERR_QUEUE_CLOSED', 'the queue client is closed');
  }

  #admin(operation: Operation, args: Record<string, unknown>): Promise<unknown> {
    if (this.#clusterSecret === undefined) {
      throw new RangeError(`${operation} needs the clusterSecret option`);
    }
    const at = Date.now();
    const proof = adminProof(this.#clusterSecret, operation, args, at);
    return this.#call(operation, { ...args, at, proof });
  }

  #connection(address: string): NodeConnection {
    let connection = this.#connections.get(address);
    if (connection === undefined) {
      connection = new NodeConnection(address, this.#connectTimeoutMs);
      this.#connections.set(address, connection);
    }
    return connection;
  }

  #nextNode(after: string | undefined): string {
    if (this.#nodes.length === 1) return this.#nodes[0]!;
    let candidate = this.#nodes[this.#cursor % this.#nodes.length]!;
    this.#cursor++;
    if (candidate === after) {
      candidate = this.#nodes[this.#cursor % this.#nodes.length]!;
      this.#cursor++;
    }
    return candidate;
  }

  async #call(
    operation: Operation,
    args: Record<string, unknown>,
    options: { waitMs?: number; signal?: AbortSignal; onUncertain?: () => void } = {},
  ): Promise<unknown> {
    this.#assertOpen();
    this.#counters.requests++;
    const started = performance.now();
    const waitMs = options.waitMs ?? 0;
    const deadline = started + this.#requestTimeoutMs + waitMs;
    const signal = options.signal
      ? AbortSignal.any([options.signal, this.#closeController.signal])
      : this.#closeController.signal;
    let target = this.#leader ?? this.#nextNode(undefined);
    let unreachable: string | undefined;
    let failures = 0;
    let redirectsInARow = 0;
    for (;;) {
      signal.throwIfAborted();
      this.#counters.attempts++;
      const remainingWait = Math.max(0, waitMs - (performance.now() - started));
      const attemptArgs =
        operation === 'claim' || operation === 'watchLane' ? { ...args, waitMs: remainingWait } : args;
      let error: unknown;
      try {
        const result = await this.#connection(target).request(operation, attemptArgs, {
          timeoutMs: this.#attemptTimeoutMs + remainingWait,
          unreachable,
          signal,
        });
        this.#leader = target;
        return result;
      } catch (caught) {
        error = caught;
      }
      if (signal.aborted) throw signal.reason;
      const retry = this.#classify(error);
      if (retry === undefined) throw error;
      if (retry.outcomeUnknown) options.onUncertain?.();
      let delay = 0;
      if (retry.leaderAddress !== undefined && retry.leaderAddress !== target && redirectsInARow < 3) {
        // A redirect to a named leader: go there at once.
        redirectsInARow++;
        this.#counters.redirects++;
        target = retry.leaderAddress;
        this.#leader = target;
      } else {
        redirectsInARow = 0;
        failures++;
        this.#counters.retries++;
        if (retry.unreachable) unreachable = target;
        if (this.#leader === target) this.#leader = null;
        const ceiling = Math.min(this.#retryMaxDelayMs, this.#retryInitialDelayMs * 2 ** (failures - 1));
        delay = this.#random() * ceiling;
        target = retry.leaderAddress ?? this.#nextNode(target);
      }
      if (performance.now() + delay > deadline) {
        throw new PixelfleetError(
          'PF_ERR_QUEUE_UNAVAILABLE',
          `the queue cluster did not answer ${operation} within ${Math.round(performance.now() - started)} ms`,
          { cause: error },
        );
      }
      if (delay > 0) await sleep(delay, signal);
    }
  }

  /** Undefined: do not retry. Otherwise where to go next and what the failure says. */
  #classify(
    error: unknown,
  ): { leaderAddress: string | undefined; unreachable: boolean; outcomeUnknown: boolean } | undefined {
    if (error instanceof AttemptFailure) {
      return { leaderAddress: undefined, unreachable: true, outcomeUnknown: error.outcomeUnknown };
    }
    if (!isPixelfleetError(error)) return undefined;
    const hint = error.extensions.leaderAddress;
    const leaderAddress = typeof hint === 'string' && hint !== '' ? hint : undefined;
    switch (error.code) {
      case 'PF_ERR_NOT_LEADER':
        return { leaderAddress, unreachable: false, outcomeUnknown: false };
      case 'PF_ERR_PROPOSAL_DROPPED':
      case 'PF_ERR_SHUTTING_DOWN':
      case 'PF_ERR_QUEUE_UNAVAILABLE':
        return {
          leaderAddress,
          unreachable: false,
          outcomeUnknown: error.extensions.outcomeUnknown === true,
        };
      default:
        return undefined;
    }
  }
}
