/**
 * NatsJobQueue: the `JobQueue` on NATS JetStream (nats-server 2.9+), for operators who already
 * run NATS. Same contract as the embedded and Raft queues (test/queue/contract.ts).
 *
 * Layout (names.ts, resources.ts): an R3 work-queue stream of jobs with one subject per account,
 * one durable pull consumer per account (AckWait = the failure-detection time, MaxDeliver = the
 * attempts cap), a KV bucket of job records, a dead-letter stream and an events stream for totals.
 *
 * - enqueue: publish with `Nats-Msg-Id` = job id, durable once a majority stored it. Failover
 *   errors are retried with backoff and jitter and the SAME id until `requestTimeoutMs`; the
 *   stream's duplicate window (>= that horizon) drops a retry whose first attempt landed, and the
 *   job record deduplicates beyond the window (for the retention).
 * - claim and fairness: the claiming process walks a ring of the accounts that have messages
 *   (account-ring.ts) and pulls one message from each account's consumer in turn, so within one
 *   process accounts are served round robin and FIFO within an account (the stream order). Across
 *   N claiming processes each keeps its own ring: every active account still gets a share of each
 *   process's claims, but turns are not coordinated (a process may serve account A twice while
 *   another serves B).
 * - leases: the lease id is `<stream sequence>.<delivery count>` (a fencing token: it changes on
 *   every delivery) and the job record holds the current one; ack/nack/extend compare-and-set the
 *   record against it, then settle the delivery with a confirmed (double) ack. Lease length and
 *   extension are kept by heartbeats on top of the consumer's fixed AckWait (lease-keeper.ts).
 * - attempts are the server's delivery count: a delivery lost on the way (a pull that timed out)
 *   costs an attempt.
 * - dead letters: dead-letters.ts (nack without retry, attempts exhausted, MAX_DELIVERIES advisory,
 *   sweeper).
 *
 * Consistency: enqueue, claim, ack, nack and extend are linearised per job by the record's
 * compare-and-set on the records stream leader; `get` reads that leader. `stats` is assembled from
 * several streams and consumers read one after another, so it is a slightly stale mix (a job just
 * acked may still count as in flight for a moment); totals and dead letters cover the retention.
 */
import {
  AckPolicy,
  DeliverPolicy,
  JetStreamApiError,
  type JetStreamClient,
  type JetStreamManager,
  jetstream,
  jetstreamManager,
} from '@nats-io/jetstream';
import { connect, type NatsConnection, type Subscription } from '@nats-io/transport-node';
import { PixelfleetError } from '../../errors/index.ts';
import type {
  ClaimedJob,
  ClaimRequest,
  EnqueueRequest,
  EnqueueResult,
  JobOutcome,
  JobQueue,
  JobRecord,
  JobState,
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
import { AccountRing } from './account-ring.ts';
import { DeadLetterOffice, type JobMessage, jobFromMessage } from './dead-letters.ts';
import { type Delivery, nakWithDelay, pullOne, type Settlement, settle } from './delivery.ts';
import { type KeptLease, LeaseKeeper } from './lease-keeper.ts';
import {
  accountConsumerName,
  accountTokenOf,
  decodeToken,
  encodeToken,
  jobSubject,
  type QueueResourceNames,
  resourceNames,
} from './names.ts';
import { type NatsQueueOptions, type ResolvedNatsQueueOptions, resolveOptions } from './options.ts';
import {
  isFinished,
  JobRecordStore,
  RevisionConflict,
  type StoredJob,
  toJobRecord,
  type VersionedJob,
} from './record-store.ts';
import { deleteStreams, ensureStreams, nanos } from './resources.ts';
import { type JetStreamAccess, type RetryPolicy, withRetry } from './retry.ts';
import { EventCounter } from './totals.ts';

/** Counters of this process, for tests, benchmarks and metrics. */
export interface NatsQueueDiagnostics {
  /** Leases this process keeps alive now. */
  heldLeases: number;
  deadLetteredByAdvisory: number;
  deadLetteredBySweeper: number;
  sweeps: number;
  /** Deliveries dropped at claim because their job had already finished (e.g. an ack reply was lost). */
  leftoversDiscarded: number;
  /** Active accounts in this process's claim ring. */
  accountsInRing: number;
}

export async function openNatsQueue(options: NatsQueueOptions): Promise<NatsJobQueue> {
  const resolved = resolveOptions(options);
  const names = resourceNames(resolved.stream, resolved.subjectPrefix);
  const ownsConnection = resolved.connection === undefined;
  const connection =
    resolved.connection ??
    (await connect({
      servers: resolved.servers,
      name: resolved.name,
      maxReconnectAttempts: -1,
      reconnectTimeWait: 250,
      reconnectJitter: 100,
      pingInterval: 2_000,
      timeout: resolved.attemptTimeoutMs,
    }));
  try {
    const manager = await jetstreamManager(connection, { timeout: resolved.attemptTimeoutMs });
    const client = jetstream(connection, { timeout: resolved.attemptTimeoutMs });
    const queue = new NatsJobQueue({ connection, ownsConnection, manager, client, names, options: resolved });
    await queue.start();
    return queue;
  } catch (error) {
    if (ownsConnection) await connection.close().catch(() => {});
    throw error;
  }
}

interface QueueParts {
  connection: NatsConnection;
  ownsConnection: boolean;
  manager: JetStreamManager;
  client: JetStreamClient;
  names: QueueResourceNames;
  options: ResolvedNatsQueueOptions;
}

export class NatsJobQueue implements JobQueue {
  readonly #connection: NatsConnection;
  readonly #ownsConnection: boolean;
  readonly #manager: JetStreamManager;
  readonly #client: JetStreamClient;
  readonly #names: QueueResourceNames;
  readonly #options: ResolvedNatsQueueOptions;
  readonly #closeController = new AbortController();
  readonly #retry: RetryPolicy;
  readonly #store: JobRecordStore;
  readonly #events: EventCounter;
  readonly #deadLetters: DeadLetterOffice;
  readonly #keeper: LeaseKeeper;
  readonly #ring = new AccountRing();
  readonly #consumers = new Map<string, Promise<string>>();
  readonly #wakers = new Set<() => void>();
  readonly #subscriptions: Subscription[] = [];
  #refreshing: Promise<void> | undefined;
  #lastRefresh = Number.NEGATIVE_INFINITY;
  #sweepTimer: NodeJS.Timeout | undefined;
  #sweeps = 0;
  #leftovers = 0;
  #closed = false;

  /** Use `openNatsQueue`. */
  constructor(parts: QueueParts) {
    this.#connection = parts.connection;
    this.#ownsConnection = parts.ownsConnection;
    this.#manager = parts.manager;
    this.#client = parts.client;
    this.#names = parts.names;
    this.#options = parts.options;
    this.#retry = {
      requestTimeoutMs: parts.options.requestTimeoutMs,
      retryInitialDelayMs: parts.options.retryInitialDelayMs,
      retryMaxDelayMs: parts.options.retryMaxDelayMs,
      random: parts.options.random,
      closed: this.#closeController.signal,
    };
    const access: JetStreamAccess = {
      client: parts.client,
      manager: parts.manager,
      names: parts.names,
      retry: this.#retry,
      attemptTimeoutMs: parts.options.attemptTimeoutMs,
    };
    this.#store = new JobRecordStore(access);
    this.#events = new EventCounter(access);
    this.#deadLetters = new DeadLetterOffice({
      ...access,
      connection: parts.connection,
      store: this.#store,
      ackWaitMs: parts.options.ackWaitMs,
    });
    this.#keeper = new LeaseKeeper({
      ackWaitMs: parts.options.ackWaitMs,
      heartbeat: (ackSubject) => {
        if (!this.#connection.isClosed()) this.#connection.publish(ackSubject, '+WPI');
      },
      onExpiry: (lease) => this.#onLeaseExpiry(lease),
    });
  }

  /** Creates the streams and starts the listeners. Called by `openNatsQueue`. */
  async start(): Promise<void> {
    await ensureStreams(this.#manager, this.#names, this.#options, this.#retry);
    this.#subscriptions.push(
      this.#connection.subscribe(this.#names.notifySubject, {
        callback: (_error, message) => {
          if (message?.data.length) this.#ring.add(message.string());
          this.#wake();
        },
      }),
    );
    if (this.#options.deadLetterAdvisories) {
      this.#subscriptions.push(
        this.#connection.subscribe(this.#names.maxDeliveriesAdvisory, {
          // One process of the group handles each advisory.
          queue: `${this.#names.jobsStream}_dead_letters`,
          callback: (_error, message) => {
            if (message === undefined || this.#closed) return;
            let advisory: { stream_seq: number; deliveries: number };
            try {
              advisory = message.json();
            } catch {
              return;
            }
            this.#deadLetters.onMaxDeliveries(advisory).catch(() => {
              // The sweeper finds it.
            });
          },
        }),
      );
    }
    if (this.#options.sweepIntervalMs > 0) {
      this.#sweepTimer = setInterval(() => {
        this.sweep().catch(() => {});
      }, this.#options.sweepIntervalMs);
      this.#sweepTimer.unref();
    }
  }

  async enqueue(request: EnqueueRequest): Promise<EnqueueResult> {
    validateEnqueue(request);
    this.#assertOpen();
    const existing = await this.#store.read(request.id);
    if (existing !== undefined) return { id: request.id, duplicate: true, state: existing.job.state };
    const now = Date.now();
    const maxAttempts = Math.min(request.maxAttempts ?? this.#options.maxAttempts, this.#options.maxAttempts);
    const message: JobMessage = {
      id: request.id,
      account: request.account,
      payload: request.payload,
      maxAttempts,
      enqueuedAt: now,
    };
    if (request.deadline !== undefined) message.deadline = request.deadline;
    if (request.deadline !== undefined && now > request.deadline) {
      // Born expired: nobody waits for it any more, so it never enters the jobs stream.
      const job: StoredJob = {
        ...jobFromMessage(message, 0),
        state: 'expired',
        finishedAt: now,
        lastError: 'deadline passed before the job was claimed',
      };
      delete job.sequence;
      if (!(await this.#createRecord(job))) {
        const current = await this.#store.read(request.id);
        return { id: request.id, duplicate: true, state: current?.job.state ?? 'expired' };
      }
      await Promise.all([
        this.#events.count('enqueued', request.id),
        this.#events.count('expired', request.id),
      ]);
      return { id: request.id, duplicate: false, state: 'expired' };
    }
    let uncertain = false;
    const ack = await withRetry(
      this.#retry,
      'enqueue',
      () =>
        this.#client.publish(jobSubject(this.#names, request.account), JSON.stringify(message), {
          msgID: request.id,
          timeout: this.#options.attemptTimeoutMs,
        }),
      { onUncertain: () => (uncertain = true) },
    );
    const token = encodeToken(request.account);
    if (ack.duplicate && !uncertain) {
      const current = await this.#store.read(request.id);
      return { id: request.id, duplicate: true, state: current?.job.state ?? 'queued' };
    }
    // A duplicate after a lost reply is most likely our own first attempt: finish its bookkeeping
    // (both steps are idempotent) and report it as the Raft client does, `duplicate: true`.
    await Promise.all([
      this.#createRecord(jobFromMessage(message, ack.seq)),
      this.#events.count('enqueued', request.id),
    ]);
    this.#ring.add(token);
    this.#prepareConsumer(token);
    this.#connection.publish(this.#names.notifySubject, token);
    const state: JobState = ack.duplicate
      ? ((await this.#store.read(request.id))?.job.state ?? 'queued')
      : 'queued';
    return { id: request.id, duplicate: ack.duplicate, state };
  }

  async claim(request: ClaimRequest): Promise<ClaimedJob | undefined> {
    validateClaim(request);
    this.#assertOpen();
    request.signal?.throwIfAborted();
    const signal = request.signal
      ? AbortSignal.any([request.signal, this.#closeController.signal])
      : this.#closeController.signal;
    const until = performance.now() + (request.waitMs ?? 0);
    for (;;) {
      signal.throwIfAborted();
      const job = await this.#claimOnce(request, signal);
      if (job !== undefined) return job;
      const remaining = until - performance.now();
      if (remaining <= 0) return undefined;
      await this.#waitForWork(Math.min(remaining, this.#options.pollIntervalMs), signal);
    }
  }

  async ack(id: string, leaseId: string, outcome?: JobOutcome): Promise<void> {
    validateFenced(id, leaseId);
    validateOutcome(outcome);
    this.#assertOpen();
    const { previous } = await this.#settleRecord(id, leaseId, (job) => {
      const next: StoredJob = { ...job, state: 'succeeded', finishedAt: Date.now() };
      if (outcome !== undefined) next.outcome = outcome;
      return next;
    });
    await Promise.all([
      this.#settleDelivery(previous.lease?.ackSubject, '+ACK'),
      this.#events.count('acked', id),
    ]);
  }

  async nack(id: string, leaseId: string, options: NackOptions): Promise<void> {
    validateFenced(id, leaseId);
    validateNack(options);
    this.#assertOpen();
    let retried = false;
    const { previous, next } = await this.#settleRecord(id, leaseId, (job) => {
      retried = options.retry && job.attempts < job.maxAttempts;
      const changed: StoredJob = { ...job, lastError: options.reason, nacks: (job.nacks ?? 0) + 1 };
      if (retried) return { ...changed, state: 'queued' };
      return { ...changed, state: 'dead', finishedAt: Date.now() };
    });
    const ackSubject = previous.lease!.ackSubject;
    const counted = this.#events.count('nacked', `${id}:${previous.attempts}`);
    if (retried) {
      await Promise.all([this.#settleDelivery(ackSubject, nakWithDelay(options.delayMs ?? 0)), counted]);
      this.#announce(previous.account);
    } else {
      await Promise.all([this.#deadLetters.finishLeftover(next, { ackSubject }), counted]);
    }
  }

  async extend(id: string, leaseId: string, leaseMs: number): Promise<{ leaseExpiresAt: number }> {
    validateFenced(id, leaseId);
    checkDuration('leaseMs', leaseMs, false);
    this.#assertOpen();
    for (;;) {
      const current = await this.#heldRecord(id, leaseId);
      const lease = current.job.lease!;
      const leaseExpiresAt = Date.now() + leaseMs;
      try {
        await this.#store.update(
          { ...current.job, lease: { ...lease, expiresAt: leaseExpiresAt } },
          current.revision,
        );
      } catch (error) {
        if (error instanceof RevisionConflict) continue;
        throw error;
      }
      this.#keeper.extend(id, leaseId, leaseExpiresAt);
      this.#connection.publish(lease.ackSubject, '+WPI');
      return { leaseExpiresAt };
    }
  }

  /**
   * Releases nothing: JetStream already detects a dead consumer. Its leases are kept alive only by
   * its own process's `+WPI` heartbeats (lease-keeper.ts), so once that process is gone the server
   * redelivers each of its messages within one AckWait, restart or not. Finding the dead
   * incarnation's leases here would mean reading every job record, as the records have no index
   * by consumer.
   */
  async releaseConsumer(consumer: string): Promise<number> {
    validateConsumer(consumer);
    this.#assertOpen();
    return 0;
  }

  async get(id: string): Promise<JobRecord | undefined> {
    this.#assertOpen();
    const current = await this.#store.read(id);
    return current === undefined ? undefined : toJobRecord(current.job);
  }

  async deadLetters(limit = 100): Promise<JobRecord[]> {
    if (!(Number.isInteger(limit) && limit >= 0)) {
      throw new RangeError(`limit must be an integer >= 0: got ${limit}`);
    }
    this.#assertOpen();
    return (await this.#deadLetters.list(limit)).map(toJobRecord);
  }

  async stats(): Promise<QueueStats> {
    this.#assertOpen();
    const [jobs, totals, deadLetters] = await Promise.all([
      withRetry(this.#retry, 'reading queue depth', () =>
        this.#manager.streams.info(this.#names.jobsStream, { subjects_filter: this.#names.jobsSubjects }),
      ),
      this.#events.read(),
      this.#deadLetters.count(),
    ]);
    const perAccount: QueueStats['perAccount'] = {};
    let depth = 0;
    let inflight = 0;
    await Promise.all(
      Object.entries(jobs.state.subjects ?? {}).map(async ([subject, count]) => {
        const token = accountTokenOf(this.#names, subject);
        if (token === undefined) return;
        let queued = count;
        let leased = 0;
        try {
          // A consumer created a moment ago may not have its R3 leader yet: its info request times
          // out like any other JetStream call during an election, so it retries the same way.
          const consumer = await withRetry(this.#retry, 'reading an account consumer', () =>
            this.#manager.consumers.info(this.#names.jobsStream, accountConsumerName(token)),
          );
          // Undelivered, and delivered but unsettled (a nak'd job waiting out its delay counts here).
          queued = consumer.num_pending;
          leased = consumer.num_ack_pending;
        } catch (error) {
          if (!(error instanceof JetStreamApiError && error.status === 404)) throw error;
        }
        if (queued === 0 && leased === 0) return;
        perAccount[decodeToken(token)] = { queued, inflight: leased };
        depth += queued;
        inflight += leased;
      }),
    );
    return {
      depth,
      inflight,
      deadLetters,
      enqueuedTotal: totals.enqueued,
      ackedTotal: totals.acked,
      nackedTotal: totals.nacked,
      redeliveredTotal: totals.redelivered,
      expiredTotal: totals.expired,
      deadLetteredTotal: deadLetters,
      perAccount,
    };
  }

  writable(): boolean {
    return !this.#closed && !this.#connection.isClosed();
  }

  /** One dead-letter sweep now (it also runs every `sweepIntervalMs`); resolves with the jobs it settled. */
  async sweep(): Promise<number> {
    this.#assertOpen();
    this.#sweeps++;
    return this.#deadLetters.sweep();
  }

  diagnostics(): NatsQueueDiagnostics {
    return {
      heldLeases: this.#keeper.size,
      deadLetteredByAdvisory: this.#deadLetters.counters.byAdvisory,
      deadLetteredBySweeper: this.#deadLetters.counters.bySweeper,
      sweeps: this.#sweeps,
      leftoversDiscarded: this.#leftovers,
      accountsInRing: this.#ring.size,
    };
  }

  /** The resources this queue uses (streams, subjects). */
  get resources(): Readonly<QueueResourceNames> {
    return this.#names;
  }

  /**
   * Stops using the queue. Leases held here are not released: their deliveries lapse after one
   * AckWait and are redelivered, as after a crash.
   */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#closeController.abort(new PixelfleetError('PF_ERR_QUEUE_CLOSED', 'the queue is closed'));
    this.#keeper.stop();
    if (this.#sweepTimer !== undefined) clearInterval(this.#sweepTimer);
    for (const subscription of this.#subscriptions) subscription.unsubscribe();
    if (this.#ownsConnection) await this.#connection.close().catch(() => {});
  }

  /** Deletes every stream of this queue, then closes it (tests, decommissioning). */
  async destroy(): Promise<void> {
    this.#assertOpen();
    await deleteStreams(this.#manager, this.#names);
    await this.close();
  }

  // ---- claim ----

  async #claimOnce(request: ClaimRequest, signal: AbortSignal): Promise<ClaimedJob | undefined> {
    let refreshed = false;
    if (this.#ring.size === 0 || performance.now() - this.#lastRefresh > this.#options.accountRefreshMs) {
      await this.#refreshAccounts();
      refreshed = true;
    }
    const job = await this.#claimTurn(request, signal);
    if (job !== undefined || refreshed) return job;
    if (performance.now() - this.#lastRefresh < this.#options.pollIntervalMs) return undefined;
    await this.#refreshAccounts();
    return this.#claimTurn(request, signal);
  }

  /** Asks every account of the ring once, in turn, for one job. */
  async #claimTurn(request: ClaimRequest, signal: AbortSignal): Promise<ClaimedJob | undefined> {
    for (const token of this.#ring.turn()) {
      signal.throwIfAborted();
      this.#ring.passed(token);
      const delivery = await this.#pull(token);
      if (delivery === undefined) continue;
      if (signal.aborted) {
        // Hand it straight back: the aborted claim takes nothing.
        await this.#settleDelivery(delivery.ackSubject, '-NAK');
        signal.throwIfAborted();
      }
      const job = await this.#lease(delivery, request);
      if (job !== undefined) return job;
    }
    return undefined;
  }

  async #refreshAccounts(): Promise<void> {
    this.#refreshing ??= (async () => {
      try {
        const info = await withRetry(this.#retry, 'listing accounts with jobs', () =>
          this.#manager.streams.info(this.#names.jobsStream, { subjects_filter: this.#names.jobsSubjects }),
        );
        const tokens: string[] = [];
        for (const [subject, count] of Object.entries(info.state.subjects ?? {})) {
          const token = accountTokenOf(this.#names, subject);
          if (token !== undefined && count > 0) tokens.push(token);
        }
        this.#ring.replace(tokens);
        this.#lastRefresh = performance.now();
        // Create the consumers of newly seen accounts side by side: each is a Raft group of its
        // own and takes a few hundred ms to form, which one claim should not pay per account.
        for (const token of tokens) this.#prepareConsumer(token);
      } finally {
        this.#refreshing = undefined;
      }
    })();
    return this.#refreshing;
  }

  async #pull(token: string): Promise<Delivery | undefined> {
    const consumer = await this.#ensureConsumer(token);
    try {
      return await pullOne(
        this.#connection,
        this.#names.jobsStream,
        consumer,
        this.#options.attemptTimeoutMs,
      );
    } catch (error) {
      // A consumer deleted behind our back, or a server in the middle of failing over: recreate
      // the consumer next time and let this turn move on to the next account.
      this.#consumers.delete(token);
      if (this.#closed) throw this.#closeController.signal.reason;
      if (error instanceof Error && error.name === 'NoRespondersError') return undefined;
      return undefined;
    }
  }

  /** Starts creating the account's consumer in the background, if not done yet. */
  #prepareConsumer(token: string): void {
    if (!this.#consumers.has(token)) this.#ensureConsumer(token).catch(() => {});
  }

  #ensureConsumer(token: string): Promise<string> {
    let pending = this.#consumers.get(token);
    if (pending === undefined) {
      const name = accountConsumerName(token);
      pending = withRetry(this.#retry, 'creating an account consumer', async () => {
        try {
          await this.#manager.consumers.add(this.#names.jobsStream, {
            durable_name: name,
            filter_subject: `${this.#names.subjectPrefix}.jobs.${token}`,
            ack_policy: AckPolicy.Explicit,
            deliver_policy: DeliverPolicy.All,
            ack_wait: nanos(this.#options.ackWaitMs),
            max_deliver: this.#options.maxAttempts,
            max_ack_pending: this.#options.maxInflightPerAccount,
          });
        } catch (error) {
          // Created earlier with other settings (an operator's change): use it as it is.
          if (!(error instanceof JetStreamApiError && error.status === 400)) throw error;
          await this.#manager.consumers.info(this.#names.jobsStream, name);
        }
        return name;
      });
      pending.catch(() => this.#consumers.delete(token));
      this.#consumers.set(token, pending);
    }
    return pending;
  }

  /** Turns a delivery into a leased job, or settles it when its job is already over. */
  async #lease(delivery: Delivery, request: ClaimRequest): Promise<ClaimedJob | undefined> {
    let message: JobMessage;
    try {
      message = JSON.parse(Buffer.from(delivery.data).toString('utf8')) as JobMessage;
    } catch {
      // Not a job this queue wrote: it can never be processed.
      await this.#settleDelivery(delivery.ackSubject, '+TERM');
      return undefined;
    }
    const handle = { ackSubject: delivery.ackSubject };
    for (;;) {
      const now = Date.now();
      const current = await this.#store.read(message.id);
      const job = current?.job ?? jobFromMessage(message, delivery.streamSequence);
      if (isFinished(job)) {
        this.#leftovers++;
        await this.#deadLetters.finishLeftover(job, handle);
        return undefined;
      }
      if (job.deadline !== undefined && now > job.deadline) {
        if (await this.#expire(current, job, delivery)) return undefined;
        continue;
      }
      if (delivery.deliveryCount > job.maxAttempts) {
        // The previous delivery was the last one and its holder vanished without settling it.
        await this.#deadLetters.kill(
          job.id,
          job,
          handle,
          (latest) => `lease expired after ${Math.max(latest.attempts, delivery.deliveryCount - 1)} attempts`,
        );
        return undefined;
      }
      const leaseId = `${delivery.streamSequence}.${delivery.deliveryCount}`;
      const leased: StoredJob = {
        ...job,
        state: 'running',
        attempts: delivery.deliveryCount,
        claimedAt: now,
        firstClaimedAt: job.firstClaimedAt ?? now,
        sequence: delivery.streamSequence,
        lease: {
          id: leaseId,
          ackSubject: delivery.ackSubject,
          expiresAt: now + request.leaseMs,
          consumer: request.consumer,
        },
      };
      try {
        if (current === undefined) await this.#store.create(leased);
        else await this.#store.update(leased, current.revision);
      } catch (error) {
        if (error instanceof RevisionConflict) continue;
        throw error;
      }
      this.#keeper.hold({
        id: job.id,
        leaseId,
        ackSubject: delivery.ackSubject,
        expiresAt: now + request.leaseMs,
      });
      if (delivery.deliveryCount > 1)
        await this.#events.count('redelivered', `${job.id}:${delivery.deliveryCount}`);
      const claimed: ClaimedJob = {
        id: job.id,
        account: job.account,
        payload: job.payload,
        attempt: delivery.deliveryCount,
        maxAttempts: job.maxAttempts,
        leaseId,
        leaseExpiresAt: now + request.leaseMs,
        enqueuedAt: job.enqueuedAt,
      };
      if (job.deadline !== undefined) claimed.deadline = job.deadline;
      return claimed;
    }
  }

  /** A queued job whose deadline passed: expired, its message dropped. False: lost a race, retry. */
  async #expire(current: VersionedJob | undefined, job: StoredJob, delivery: Delivery): Promise<boolean> {
    const expired: StoredJob = {
      ...job,
      state: 'expired',
      finishedAt: Date.now(),
      lastError: 'deadline passed before the job was claimed',
    };
    delete expired.lease;
    try {
      if (current === undefined) await this.#store.create(expired);
      else await this.#store.update(expired, current.revision);
    } catch (error) {
      if (error instanceof RevisionConflict) return false;
      throw error;
    }
    await Promise.all([
      this.#settleDelivery(delivery.ackSubject, '+TERM'),
      this.#events.count('expired', job.id),
    ]);
    return true;
  }

  #waitForWork(ms: number, signal: AbortSignal): Promise<void> {
    return new Promise((resolve, reject) => {
      const cleanup = () => {
        clearTimeout(timer);
        this.#wakers.delete(done);
        signal.removeEventListener('abort', onAbort);
      };
      const done = () => {
        cleanup();
        resolve();
      };
      const onAbort = () => {
        cleanup();
        reject(signal.reason);
      };
      const timer = setTimeout(done, ms);
      this.#wakers.add(done);
      if (signal.aborted) onAbort();
      else signal.addEventListener('abort', onAbort, { once: true });
    });
  }

  #wake(): void {
    for (const waker of [...this.#wakers]) waker();
  }

  /** Tells every process's waiting claims that `account` has a claimable job. */
  #announce(account: string): void {
    const token = encodeToken(account);
    this.#ring.add(token);
    this.#wake();
    if (!this.#connection.isClosed()) this.#connection.publish(this.#names.notifySubject, token);
  }

  // ---- settling ----

  /** The record, if `leaseId` is its current, unexpired lease; PF_ERR_LEASE_LOST otherwise. */
  async #heldRecord(id: string, leaseId: string): Promise<VersionedJob> {
    const current = await this.#store.read(id);
    if (current === undefined) {
      throw new PixelfleetError('PF_ERR_JOB_NOT_FOUND', `job ${id} is not known to the queue`);
    }
    const { job } = current;
    if (job.state !== 'running' || job.lease?.id !== leaseId) {
      const now = job.state === 'running' ? 'leased again by another delivery' : job.state;
      throw new PixelfleetError(
        'PF_ERR_LEASE_LOST',
        `job ${id}: lease ${leaseId} is no longer held (job is ${now})`,
      );
    }
    if (Date.now() >= job.lease.expiresAt) {
      throw new PixelfleetError(
        'PF_ERR_LEASE_LOST',
        `job ${id}: lease ${leaseId} expired at ${new Date(job.lease.expiresAt).toISOString()}`,
      );
    }
    return current;
  }

  /** Fenced compare-and-set of a held job's record; returns the record before (with its lease) and after. */
  async #settleRecord(
    id: string,
    leaseId: string,
    change: (job: StoredJob) => StoredJob,
  ): Promise<{ previous: StoredJob; next: StoredJob }> {
    for (;;) {
      const current = await this.#heldRecord(id, leaseId);
      const next = change(current.job);
      delete next.lease;
      try {
        await this.#store.update(next, current.revision);
      } catch (error) {
        if (error instanceof RevisionConflict) continue;
        throw error;
      }
      this.#keeper.release(id, leaseId);
      return { previous: current.job, next };
    }
  }

  /**
   * Confirms a settlement with the server. If it never confirms (the consumer's leader is failing
   * over), the delivery lapses after AckWait and the next claim of it settles it from the record.
   */
  async #settleDelivery(ackSubject: string | undefined, settlement: Settlement): Promise<void> {
    if (ackSubject === undefined) return;
    try {
      await withRetry(
        this.#retry,
        'settling a delivery',
        () => settle(this.#connection, ackSubject, settlement, this.#options.attemptTimeoutMs),
        { timeoutMs: Math.min(this.#options.requestTimeoutMs, this.#options.ackWaitMs) },
      );
    } catch (error) {
      if (this.#closed) throw error;
    }
  }

  async #onLeaseExpiry(lease: KeptLease): Promise<void> {
    if (this.#closed) return;
    for (;;) {
      const current = await this.#store.read(lease.id);
      const job = current?.job;
      if (current === undefined || job === undefined) return;
      if (job.state !== 'running' || job.lease?.id !== lease.leaseId) return;
      if (job.lease.expiresAt > Date.now()) {
        // Extended by another process: keep it alive until the new end.
        this.#keeper.hold({ ...lease, expiresAt: job.lease.expiresAt });
        return;
      }
      if (job.attempts >= job.maxAttempts) {
        await this.#deadLetters.kill(job.id, job, { ackSubject: lease.ackSubject }, (latest) =>
          latest.state === 'running' && latest.lease?.id === lease.leaseId
            ? `lease expired after ${latest.attempts} attempts`
            : undefined,
        );
        return;
      }
      const requeued: StoredJob = {
        ...job,
        state: 'queued',
        lastError: `lease expired (attempt ${job.attempts})`,
      };
      delete requeued.lease;
      try {
        await this.#store.update(requeued, current.revision);
      } catch (error) {
        if (error instanceof RevisionConflict) continue;
        throw error;
      }
      await this.#settleDelivery(lease.ackSubject, '-NAK');
      this.#announce(job.account);
      return;
    }
  }

  async #createRecord(job: StoredJob): Promise<boolean> {
    try {
      await this.#store.create(job);
      return true;
    } catch (error) {
      if (error instanceof RevisionConflict) return false;
      throw error;
    }
  }

  #assertOpen(): void {
    if (this.#closed) throw new PixelfleetError('PF_ERR_QUEUE_CLOSED', 'the queue is closed');
  }
}
