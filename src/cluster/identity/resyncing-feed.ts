/**
 * A change feed that can start over: `resync()` replaces the ring with an empty one under a new
 * incarnation, so every reader's next poll answers `gap: true` (and a poll waiting right now is
 * woken to get it). The identity role calls it when its change bus may have missed events — the
 * PostgreSQL listener reconnected, and notifications sent meanwhile are gone — so every api
 * server expires its edge cache instead of trusting entries a lost revocation made stale. To a
 * reader this is exactly what an identity restart looks like, the gap the feed already documents.
 *
 * It is a ChangeFeed (the internal routes take one) that delegates to the current inner feed;
 * its own `incarnation` field is unused: readers see the inner feed's in every page.
 */
import { ChangeFeed, type ChangeFeedOptions, type ChangeFeedPage } from '../../identity/change-feed.ts';
import type { ChangeEvent } from '../../identity/index.ts';

export class ResyncingChangeFeed extends ChangeFeed {
  readonly #options: Omit<ChangeFeedOptions, 'incarnation'>;
  #current: ChangeFeed;
  /** Aborted (and replaced) on each resync, to wake polls waiting on the old ring. */
  #resynced = new AbortController();
  #resyncs = 0;

  constructor(options: Omit<ChangeFeedOptions, 'incarnation'> = {}) {
    super(options);
    this.#options = options;
    this.#current = new ChangeFeed(options);
  }

  override get lastSeq(): number {
    return this.#current.lastSeq;
  }

  override get waiting(): number {
    return this.#current.waiting;
  }

  /** How many times the feed started over. */
  get resyncs(): number {
    return this.#resyncs;
  }

  override append(event: ChangeEvent): number {
    return this.#current.append(event);
  }

  override read(after: number | undefined, incarnation?: string, limit?: number): ChangeFeedPage {
    return this.#current.read(after, incarnation, limit);
  }

  override async wait(
    after: number | undefined,
    incarnation: string | undefined,
    timeoutMs: number,
    signal?: AbortSignal,
  ): Promise<ChangeFeedPage> {
    const feed = this.#current;
    const resynced = this.#resynced.signal;
    const page = await feed.wait(
      after,
      incarnation,
      timeoutMs,
      signal === undefined ? resynced : AbortSignal.any([signal, resynced]),
    );
    // Started over while this poll waited: answer from the new ring (a gap for this reader).
    return feed === this.#current ? page : this.#current.read(after, incarnation);
  }

  /** Events may have been lost: every reader gets a gap and resumes on a fresh ring. */
  resync(): void {
    this.#resyncs++;
    this.#current = new ChangeFeed(this.#options);
    const previous = this.#resynced;
    this.#resynced = new AbortController();
    previous.abort();
  }
}
