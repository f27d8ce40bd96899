/**
 * The data plane's `ChangeBus` in the cluster: follows the identity role's change feed by long
 * polling (`GET /internal/changes`) and re-publishes each event to local subscribers (the
 * EdgeCache), so a revocation reaches every api server within one round trip of the commit.
 *
 * - The cursor (sequence number + feed incarnation) survives failures: after the identity
 *   process or the network comes back, polling resumes where it stopped.
 * - A `gap` answer (the cursor fell out of the feed's ring, or identity restarted and its feed
 *   began anew) calls `onGap`: the api role expires its whole cache, which is then refetched,
 *   still served stale if identity fails meanwhile.
 * - Failures back off with jitter; the cache TTL stays the backstop for anything missed.
 */
import { InternalHttpClient } from '../../cluster/http/index.ts';
import { Backoff, type RemotePolicy } from '../../resilience/remote/index.ts';
import {
  type ChangeBus,
  type ChangeEvent,
  type ChangeListener,
  InProcessChangeBus,
  type Unsubscribe,
} from '../change-bus.ts';
import type { ChangeFeedPage } from '../change-feed.ts';

export interface RemoteChangeBusOptions {
  identityUrl: string;
  clusterSecret: string;
  /** A policy whose timeout exceeds `waitMs` (long polls are slow by design). */
  policy: RemotePolicy;
  /** How long one poll may wait for an event on the identity side (default 20 s). */
  waitMs?: number;
  /** Events may have been missed: distrust every cached entry. */
  onGap?: () => void;
  /** A poll succeeded (readiness: identity reachable). */
  onReachable?: () => void;
  onError?: (error: unknown) => void;
}

export class RemoteChangeBus implements ChangeBus {
  readonly #local = new InProcessChangeBus();
  readonly #client: InternalHttpClient;
  readonly #options: RemoteChangeBusOptions;
  readonly #abort = new AbortController();
  readonly #backoff = new Backoff({ initialDelayMs: 100, maxDelayMs: 2000, jitter: 'full' });
  #cursor: number | undefined;
  #incarnation: string | undefined;
  #running: Promise<void> | undefined;
  #received = 0;
  #gaps = 0;

  constructor(options: RemoteChangeBusOptions) {
    this.#options = options;
    this.#client = new InternalHttpClient({
      origin: options.identityUrl,
      clusterSecret: options.clusterSecret,
      policy: options.policy,
      dependency: 'identity',
      connections: 1,
    });
  }

  /** Starts following the feed; resolves once the first poll answered (or failed). */
  start(): Promise<void> {
    let first: () => void = () => {};
    const answered = new Promise<void>((resolve) => {
      first = resolve;
    });
    this.#running ??= this.#follow(first);
    return answered;
  }

  /** Local fan-out only: the data plane never publishes management events. */
  publish(event: ChangeEvent): void {
    this.#local.publish(event);
  }

  subscribe(listener: ChangeListener): Unsubscribe {
    return this.#local.subscribe(listener);
  }

  stats(): { cursor: number | undefined; incarnation: string | undefined; received: number; gaps: number } {
    return {
      cursor: this.#cursor,
      incarnation: this.#incarnation,
      received: this.#received,
      gaps: this.#gaps,
    };
  }

  async close(): Promise<void> {
    this.#abort.abort();
    await this.#running;
    await this.#client.close();
  }

  async #follow(firstAnswer: () => void): Promise<void> {
    const waitMs = this.#options.waitMs ?? 20_000;
    let failures = 0;
    let previousDelay: number | undefined;
    while (!this.#abort.signal.aborted) {
      const query = new URLSearchParams({ waitMs: String(waitMs) });
      if (this.#cursor !== undefined) query.set('after', String(this.#cursor));
      if (this.#incarnation !== undefined) query.set('incarnation', this.#incarnation);
      try {
        const answer = await this.#client.call({
          method: 'GET',
          path: `/internal/changes?${query}`,
          idempotent: true,
          signal: this.#abort.signal,
        });
        const page = JSON.parse(answer.body.toString('utf8')) as ChangeFeedPage;
        failures = 0;
        previousDelay = undefined;
        this.#options.onReachable?.();
        // A fresh follower (no cursor) has nothing cached worth distrusting.
        if (page.gap && this.#cursor !== undefined) {
          this.#gaps++;
          this.#options.onGap?.();
        }
        for (const { event } of page.events) {
          this.#received++;
          this.#local.publish(event);
        }
        this.#incarnation = page.incarnation;
        this.#cursor = page.next;
        firstAnswer();
      } catch (error) {
        firstAnswer();
        if (this.#abort.signal.aborted) return;
        this.#options.onError?.(error);
        failures++;
        const delay = this.#backoff.delay(failures, previousDelay);
        previousDelay = delay;
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, delay);
          this.#abort.signal.addEventListener(
            'abort',
            () => {
              clearTimeout(timer);
              resolve();
            },
            { once: true },
          );
        });
      }
    }
  }
}
