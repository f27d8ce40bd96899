/**
 * Dead letters on nats-server 2.9, which has no dead-letter queue of its own. A job is dead when
 * it was nacked without retry, ran out of attempts, or the server gave up redelivering it
 * (MaxDeliver reached: the message then stays in the work-queue stream, delivered to nobody).
 * Whoever finds it dead — the nacking process, a lease expiry, the MAX_DELIVERIES advisory
 * listener or the sweeper — does the same three idempotent steps:
 * 1. the job record becomes `dead` with its reason (compare-and-set: one writer wins);
 * 2. the record is published to the dead-letter stream (`Nats-Msg-Id` = job id, one subject per
 *    job, so a repeat is detected even after the duplicate window);
 * 3. the job's message leaves the jobs stream (terminated if we hold its delivery, else deleted
 *    by sequence).
 * Advisories are core NATS messages, not guaranteed (none while the listener is disconnected or
 * the consumer's leader changes), so a periodic sweeper looks for stuck messages: accounts whose
 * stream count exceeds what their consumer still has pending or in flight, then the messages
 * between the ack floor and the last delivered whose record shows attempts exhausted and no live
 * lease.
 */
import type { JetStreamClient, JetStreamManager } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import { settle } from './delivery.ts';
import { accountConsumerName, accountTokenOf, deadLetterSubject, type QueueResourceNames } from './names.ts';
import {
  isFinished,
  type JobRecordStore,
  RevisionConflict,
  type StoredJob,
  toJobRecord,
} from './record-store.ts';
import { type JetStreamAccess, type RetryPolicy, withRetry } from './retry.ts';

/** The body of a message in the jobs stream. */
export interface JobMessage {
  id: string;
  account: string;
  payload: StoredJob['payload'];
  maxAttempts: number;
  enqueuedAt: number;
  deadline?: number;
}

/** Where the job's message is: a delivery we hold, or only its stream sequence. */
export type MessageHandle = { ackSubject: string } | { sequence: number };

export interface DeadLetterCounters {
  byAdvisory: number;
  bySweeper: number;
}

export function jobFromMessage(message: JobMessage, sequence: number): StoredJob {
  const job: StoredJob = {
    id: message.id,
    account: message.account,
    state: 'queued',
    payload: message.payload,
    attempts: 0,
    maxAttempts: message.maxAttempts,
    enqueuedAt: message.enqueuedAt,
    sequence,
  };
  if (message.deadline !== undefined) job.deadline = message.deadline;
  return job;
}

export class DeadLetterOffice {
  readonly counters: DeadLetterCounters = { byAdvisory: 0, bySweeper: 0 };
  readonly #connection: NatsConnection;
  readonly #client: JetStreamClient;
  readonly #manager: JetStreamManager;
  readonly #store: JobRecordStore;
  readonly #names: QueueResourceNames;
  readonly #retry: RetryPolicy;
  readonly #attemptTimeoutMs: number;
  readonly #ackWaitMs: number;

  constructor(
    parts: JetStreamAccess & { connection: NatsConnection; store: JobRecordStore; ackWaitMs: number },
  ) {
    this.#connection = parts.connection;
    this.#client = parts.client;
    this.#manager = parts.manager;
    this.#store = parts.store;
    this.#names = parts.names;
    this.#retry = parts.retry;
    this.#attemptTimeoutMs = parts.attemptTimeoutMs;
    this.#ackWaitMs = parts.ackWaitMs;
  }

  /**
   * Makes the job dead if `decide` (given its current record) returns a reason; returns whether
   * the job is dead now. Re-reads and re-decides when another process changed the record meanwhile.
   */
  async kill(
    id: string,
    fallback: StoredJob,
    handle: MessageHandle,
    decide: (job: StoredJob) => string | undefined,
  ): Promise<boolean> {
    for (;;) {
      const current = await this.#store.read(id);
      const job = current?.job ?? fallback;
      if (isFinished(job)) {
        await this.finishLeftover(job, handle);
        return job.state === 'dead';
      }
      const reason = decide(job);
      if (reason === undefined) return false;
      const dead: StoredJob = { ...job, state: 'dead', lastError: reason, finishedAt: Date.now() };
      delete dead.lease;
      try {
        if (current === undefined) await this.#store.create(dead);
        else await this.#store.update(dead, current.revision);
      } catch (error) {
        if (error instanceof RevisionConflict) continue;
        throw error;
      }
      await this.#publish(dead);
      await this.#removeMessage(handle);
      return true;
    }
  }

  /** A message whose job already finished: make sure its dead letter exists, then drop it. */
  async finishLeftover(job: StoredJob, handle: MessageHandle): Promise<void> {
    if (job.state === 'dead') await this.#ensurePublished(job);
    await this.#removeMessage(handle, job.state === 'succeeded' ? '+ACK' : '+TERM');
  }

  /** Dead letters, most recent first. */
  async list(limit: number): Promise<StoredJob[]> {
    const info = await withRetry(this.#retry, 'reading dead letters', () =>
      this.#manager.streams.info(this.#names.deadLetterStream),
    );
    const result: StoredJob[] = [];
    for (let sequence = info.state.last_seq; sequence >= info.state.first_seq && sequence > 0; sequence--) {
      if (result.length >= limit) break;
      const stored = await withRetry(this.#retry, 'reading a dead letter', () =>
        this.#manager.streams.getMessage(this.#names.deadLetterStream, { seq: sequence }),
      );
      if (stored !== null) result.push(stored.json<StoredJob>());
    }
    return result;
  }

  async count(): Promise<number> {
    const info = await withRetry(this.#retry, 'counting dead letters', () =>
      this.#manager.streams.info(this.#names.deadLetterStream),
    );
    return info.state.messages;
  }

  /** A MAX_DELIVERIES advisory: the server will not deliver `sequence` again. */
  async onMaxDeliveries(advisory: { stream_seq: number; deliveries: number }): Promise<void> {
    const message = await this.#jobMessage(advisory.stream_seq);
    if (message === undefined) return;
    const dead = await this.kill(
      message.id,
      jobFromMessage(message, advisory.stream_seq),
      { sequence: advisory.stream_seq },
      (job) =>
        `lease expired after ${Math.max(job.attempts, advisory.deliveries)} attempts (the server stopped redelivering: max deliveries)`,
    );
    if (dead) this.counters.byAdvisory++;
  }

  /** One sweep over every account; returns how many stuck messages it settled. */
  async sweep(): Promise<number> {
    const info = await this.#manager.streams.info(this.#names.jobsStream, {
      subjects_filter: this.#names.jobsSubjects,
    });
    let settled = 0;
    for (const [subject, count] of Object.entries(info.state.subjects ?? {})) {
      const token = accountTokenOf(this.#names, subject);
      if (token === undefined) continue;
      let consumer: Awaited<ReturnType<JetStreamManager['consumers']['info']>>;
      try {
        consumer = await this.#manager.consumers.info(this.#names.jobsStream, accountConsumerName(token));
      } catch {
        continue; // no consumer: nothing was ever delivered, nothing can be stuck
      }
      if (count <= consumer.num_pending + consumer.num_ack_pending) continue;
      const maxDeliver = consumer.config.max_deliver ?? -1;
      let sequence = consumer.ack_floor.stream_seq + 1;
      const last = consumer.delivered.stream_seq;
      for (let examined = 0; sequence <= last && examined < 1_000; examined++) {
        const stored = await this.#manager.streams.getMessage(this.#names.jobsStream, {
          seq: sequence,
          next_by_subj: subject,
        } as never);
        if (stored === null || stored.seq > last) break;
        sequence = stored.seq + 1;
        const message = stored.json<JobMessage>();
        const handle = { sequence: stored.seq };
        const now = Date.now();
        const dead = await this.kill(message.id, jobFromMessage(message, stored.seq), handle, (job) => {
          if (job.sequence !== undefined && job.sequence !== stored.seq) return undefined;
          const exhausted = maxDeliver > 0 && job.attempts >= maxDeliver;
          const leaseLive = job.lease !== undefined && job.lease.expiresAt + 2 * this.#ackWaitMs > now;
          return exhausted && !leaseLive
            ? `lease expired after ${job.attempts} attempts (found by the dead-letter sweeper)`
            : undefined;
        });
        if (dead) {
          this.counters.bySweeper++;
          settled++;
        }
      }
    }
    return settled;
  }

  async #jobMessage(sequence: number): Promise<JobMessage | undefined> {
    const stored = await withRetry(this.#retry, 'reading a job message', () =>
      this.#manager.streams.getMessage(this.#names.jobsStream, { seq: sequence }),
    );
    if (stored === null) return undefined;
    try {
      return stored.json<JobMessage>();
    } catch {
      return undefined;
    }
  }

  async #publish(job: StoredJob): Promise<void> {
    await withRetry(this.#retry, 'publishing a dead letter', () =>
      this.#client.publish(
        deadLetterSubject(this.#names, job.account, job.id),
        JSON.stringify(toJobRecord(job)),
        {
          msgID: `dead:${job.id}`,
          timeout: this.#attemptTimeoutMs,
        },
      ),
    );
  }

  async #ensurePublished(job: StoredJob): Promise<void> {
    const existing = await withRetry(this.#retry, 'looking up a dead letter', () =>
      this.#manager.streams.getMessage(this.#names.deadLetterStream, {
        last_by_subj: deadLetterSubject(this.#names, job.account, job.id),
      }),
    );
    if (existing === null) await this.#publish(job);
  }

  async #removeMessage(handle: MessageHandle, settlement: '+ACK' | '+TERM' = '+TERM'): Promise<void> {
    if ('ackSubject' in handle) {
      await withRetry(this.#retry, 'settling a delivery', () =>
        settle(this.#connection, handle.ackSubject, settlement, this.#attemptTimeoutMs),
      );
      return;
    }
    await withRetry(this.#retry, 'deleting a job message', async () => {
      try {
        await this.#manager.streams.deleteMessage(this.#names.jobsStream, handle.sequence, false);
      } catch (error) {
        // Already gone: acked, terminated or deleted by another process.
        if (error instanceof Error && /no message found|not found/i.test(error.message)) return;
        throw error;
      }
    });
  }
}
