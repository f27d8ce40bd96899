/**
 * The queue's totals (enqueued, acked, nacked, redelivered, expired) kept cluster-wide without a
 * counter to contend on: each event is one small message on `<prefix>.events.<event>` with a
 * `Nats-Msg-Id` naming the job and the transition, so a retried call counts once; a total is the
 * stream's message count on that subject. Totals cover the retention window (the stream's max
 * age), like the finished records `get` can still see.
 */
import type { JetStreamClient, JetStreamManager } from '@nats-io/jetstream';
import { eventSubject, type QueueEvent, type QueueResourceNames } from './names.ts';
import { type RetryPolicy, withRetry } from './retry.ts';

export type QueueTotals = Record<QueueEvent, number>;

export class EventCounter {
  readonly #client: JetStreamClient;
  readonly #manager: JetStreamManager;
  readonly #names: QueueResourceNames;
  readonly #retry: RetryPolicy;
  readonly #attemptTimeoutMs: number;

  constructor(
    client: JetStreamClient,
    manager: JetStreamManager,
    names: QueueResourceNames,
    retry: RetryPolicy,
    attemptTimeoutMs: number,
  ) {
    this.#client = client;
    this.#manager = manager;
    this.#names = names;
    this.#retry = retry;
    this.#attemptTimeoutMs = attemptTimeoutMs;
  }

  /** Counts `event` once per `eventId`. */
  async count(event: QueueEvent, eventId: string): Promise<void> {
    await withRetry(this.#retry, `counting ${event}`, () =>
      this.#client.publish(eventSubject(this.#names, event), '', {
        msgID: `${event}:${eventId}`,
        timeout: this.#attemptTimeoutMs,
      }),
    );
  }

  async read(): Promise<QueueTotals> {
    const info = await withRetry(this.#retry, 'reading the totals', () =>
      this.#manager.streams.info(this.#names.eventsStream, {
        subjects_filter: `${this.#names.subjectPrefix}.events.>`,
      }),
    );
    const subjects = info.state.subjects ?? {};
    const total = (event: QueueEvent) => subjects[eventSubject(this.#names, event)] ?? 0;
    return {
      enqueued: total('enqueued'),
      acked: total('acked'),
      nacked: total('nacked'),
      redelivered: total('redelivered'),
      expired: total('expired'),
    };
  }
}
