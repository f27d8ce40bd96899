/**
 * The queue's totals (enqueued, acked, nacked, redelivered, expired) kept cluster-wide without a
 * counter to contend on: each event is one small message on `<prefix>.events.<event>` with a
 * `Nats-Msg-Id` naming the job and the transition, so a retried call counts once; a total is the
 * stream's message count on that subject. Totals cover the retention window (the stream's max
 * age), like the finished records `get` can still see.
 */
import { eventSubject, type QueueEvent } from './names.ts';
import { type JetStreamAccess, withRetry } from './retry.ts';

export type QueueTotals = Record<QueueEvent, number>;

export class EventCounter {
  readonly #js: JetStreamAccess;

  constructor(access: JetStreamAccess) {
    this.#js = access;
  }

  /** Counts `event` once per `eventId`. */
  async count(event: QueueEvent, eventId: string): Promise<void> {
    await withRetry(this.#js.retry, `counting ${event}`, () =>
      this.#js.client.publish(eventSubject(this.#js.names, event), '', {
        msgID: `${event}:${eventId}`,
        timeout: this.#js.attemptTimeoutMs,
      }),
    );
  }

  async read(): Promise<QueueTotals> {
    const info = await withRetry(this.#js.retry, 'reading the totals', () =>
      this.#js.manager.streams.info(this.#js.names.eventsStream, {
        subjects_filter: `${this.#js.names.subjectPrefix}.events.>`,
      }),
    );
    const subjects = info.state.subjects ?? {};
    const total = (event: QueueEvent) => subjects[eventSubject(this.#js.names, event)] ?? 0;
    return {
      enqueued: total('enqueued'),
      acked: total('acked'),
      nacked: total('nacked'),
      redelivered: total('redelivered'),
      expired: total('expired'),
    };
  }
}
