/**
 * The change feed: the management plane's change events, numbered and kept in a bounded
 * in-memory ring, so data-plane caches in other processes can follow them by long-polling
 * (`GET /internal/changes?after=<seq>`). Pure apart from the timers of `wait`.
 *
 * Guarantees:
 * - Sequence numbers are consecutive from 1 within one incarnation (one process lifetime).
 * - A reader either gets every event after its cursor, in order, or `gap: true`: its cursor fell
 *   out of the ring, or belongs to another incarnation (the identity process restarted and its
 *   ring started empty). A gap tells the reader that events may be lost, so it must distrust
 *   everything it cached (expire it) and resume from `next`. Nothing is ever silently skipped.
 * Why a ring and not the audit log: events are hints (the cache TTL is the backstop), and a
 * reader that falls behind by more than the ring holds is cheaper to resynchronise by expiring
 * its cache than by replaying history.
 */
import { randomUUID } from 'node:crypto';
import type { ChangeEvent } from './change-bus.ts';

export interface NumberedChange {
  seq: number;
  event: ChangeEvent;
}

export interface ChangeFeedPage {
  /** Identifies this feed's lifetime; a reader sends it back with its cursor. */
  incarnation: string;
  /** Events after the reader's cursor, oldest first (empty on a gap). */
  events: NumberedChange[];
  /** The cursor to send next time. */
  next: number;
  /** True when events may have been missed: expire everything cached, resume from `next`. */
  gap: boolean;
}

export interface ChangeFeedOptions {
  /** Events kept for readers that fall behind (default 4096). */
  capacity?: number;
  /** Fixed incarnation id (tests); default a random UUID. */
  incarnation?: string;
}

export class ChangeFeed {
  readonly incarnation: string;
  readonly #capacity: number;
  readonly #ring: NumberedChange[] = [];
  #lastSeq = 0;
  readonly #waiters = new Set<() => void>();

  constructor(options: ChangeFeedOptions = {}) {
    const capacity = options.capacity ?? 4096;
    if (!Number.isInteger(capacity) || capacity < 1) {
      throw new RangeError(`capacity must be a positive integer, got ${capacity}`);
    }
    this.#capacity = capacity;
    this.incarnation = options.incarnation ?? randomUUID();
  }

  get lastSeq(): number {
    return this.#lastSeq;
  }

  /** Numbers and keeps one event; wakes every waiting reader. Returns its sequence number. */
  append(event: ChangeEvent): number {
    const seq = ++this.#lastSeq;
    this.#ring.push({ seq, event });
    if (this.#ring.length > this.#capacity) this.#ring.shift();
    for (const wake of [...this.#waiters]) wake();
    return seq;
  }

  /**
   * Events after `after` (no cursor: start at the tail, nothing to replay). `incarnation` is the
   * one the reader's cursor came from; a different one is a gap.
   */
  read(after: number | undefined, incarnation?: string, limit = 1000): ChangeFeedPage {
    const page = (events: NumberedChange[], next: number, gap: boolean): ChangeFeedPage => ({
      incarnation: this.incarnation,
      events,
      next,
      gap,
    });
    if (after === undefined) return page([], this.#lastSeq, false);
    if (
      (incarnation !== undefined && incarnation !== this.incarnation) ||
      !Number.isSafeInteger(after) ||
      after < 0 ||
      after > this.#lastSeq
    ) {
      return page([], this.#lastSeq, true);
    }
    const oldest = this.#ring[0]?.seq ?? this.#lastSeq + 1;
    // The reader needs `after + 1` next; anything older than the ring's start is lost to it.
    if (after + 1 < oldest) return page([], this.#lastSeq, true);
    const start = after + 1 - oldest;
    const events = this.#ring.slice(start, start + limit);
    return page(events, events.at(-1)?.seq ?? after, false);
  }

  /**
   * Long poll: resolves at once when `read` has events or a gap, otherwise on the next append
   * or after `timeoutMs` (with an empty page), or when `signal` aborts.
   */
  async wait(
    after: number | undefined,
    incarnation: string | undefined,
    timeoutMs: number,
    signal?: AbortSignal,
  ): Promise<ChangeFeedPage> {
    const now = this.read(after, incarnation);
    if (now.gap || now.events.length > 0 || after === undefined || timeoutMs <= 0 || signal?.aborted)
      return now;
    await new Promise<void>((resolve) => {
      const done = () => {
        clearTimeout(timer);
        this.#waiters.delete(done);
        signal?.removeEventListener('abort', done);
        resolve();
      };
      const timer = setTimeout(done, timeoutMs);
      this.#waiters.add(done);
      signal?.addEventListener('abort', done, { once: true });
    });
    return this.read(after, incarnation);
  }

  /** Readers currently long-polling. */
  get waiting(): number {
    return this.#waiters.size;
  }
}
