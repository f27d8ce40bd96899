/**
 * The `ChangeBus` over PostgreSQL LISTEN/NOTIFY, for api servers that share one PostgreSQL
 * identity store: every server hears every management change within one round trip of its
 * commit, with no identity process in between.
 *
 * - Subscribing: one dedicated connection (outside the pool, since LISTEN belongs to a session)
 *   LISTENs on the channel and fans each notification out to local subscribers. A heartbeat
 *   query finds a connection that died silently (a frozen server, a dropped route) within
 *   `heartbeatIntervalMs` plus the query timeout.
 * - Reconnecting: the listener reconnects with exponential backoff and full jitter. Notifications
 *   sent while it was away are lost, so after every reconnect the resync listeners run (the api
 *   role expires its whole edge cache, which is then refetched and still served stale while the
 *   store stays down). The cache TTL remains the backstop either way.
 * - Publishing: when the store announces its own changes (`storeAnnounces`, the wiring of
 *   `openPostgresIdentity`), PostgreSQL already sent each event iff its write committed, so
 *   `publish` has nothing left to do. Otherwise `publish` NOTIFYs through the listener's
 *   connection after the caller's commit (lost if that connection is down: events are hints).
 */
import pg from 'pg';
import { Backoff } from '../../resilience/remote/index.ts';
import {
  type ChangeBus,
  type ChangeEvent,
  type ChangeListener,
  InProcessChangeBus,
  type Unsubscribe,
} from '../change-bus.ts';
import {
  assertIdentifier,
  clientConfig,
  type PostgresConnectionOptions,
  quoteIdentifier,
  resolveConnectionOptions,
} from './connection.ts';

export interface PostgresChangeBusOptions extends Omit<PostgresConnectionOptions, 'poolSize'> {
  /** The LISTEN/NOTIFY channel (a lower-case identifier); the store must announce on the same. */
  channel: string;
  /** The store NOTIFYs inside each write's transaction; `publish` then does nothing. */
  storeAnnounces?: boolean;
  /** How often the listener proves its connection alive (default 5 s). */
  heartbeatIntervalMs?: number;
  /** Longest pause between reconnection attempts (default 5 s). */
  maxReconnectDelayMs?: number;
  /** Events may have been missed while disconnected: distrust everything cached. */
  onResync?: () => void;
  /** Connection failures and malformed notifications (default: a process warning). */
  onError?: (error: unknown) => void;
  /** Randomness for the reconnect jitter (tests). */
  random?: () => number;
}

export interface PostgresChangeBusStats {
  listening: boolean;
  /** Successful LISTENs after the first one. */
  reconnects: number;
  resyncs: number;
  received: number;
  malformed: number;
}

const changeTypes = new Set<string>([
  'key.issued',
  'key.revoked',
  'account.closed',
  'account.tier-changed',
  'tier.changed',
]);

function parseEvent(payload: string | undefined): ChangeEvent | undefined {
  if (payload === undefined) return undefined;
  try {
    const event = JSON.parse(payload) as ChangeEvent;
    return typeof event === 'object' && event !== null && changeTypes.has(event.type) ? event : undefined;
  } catch {
    return undefined;
  }
}

/** Drops the socket under a client whose polite `end()` is not being answered. */
function destroyConnection(client: pg.Client): void {
  (client as unknown as { connection?: { stream?: { destroy(): void } } }).connection?.stream?.destroy();
}

export class PostgresChangeBus implements ChangeBus {
  readonly channel: string;
  readonly #config: pg.ClientConfig;
  readonly #storeAnnounces: boolean;
  readonly #heartbeatIntervalMs: number;
  readonly #backoff: Backoff;
  readonly #onError: (error: unknown) => void;
  readonly #local: InProcessChangeBus;
  readonly #resyncListeners = new Set<() => void>();
  readonly #abort = new AbortController();
  #client: pg.Client | undefined;
  #running: Promise<void> | undefined;
  #listenedOnce = false;
  readonly #stats = { reconnects: 0, resyncs: 0, received: 0, malformed: 0 };

  constructor(options: PostgresChangeBusOptions) {
    assertIdentifier('channel', options.channel);
    const resolved = resolveConnectionOptions({ ...options, poolSize: 1 });
    const heartbeatIntervalMs = options.heartbeatIntervalMs ?? 5_000;
    if (!Number.isInteger(heartbeatIntervalMs) || heartbeatIntervalMs < 1) {
      throw new RangeError(`heartbeatIntervalMs must be a positive integer, got ${heartbeatIntervalMs}`);
    }
    this.channel = options.channel;
    this.#config = {
      ...clientConfig(resolved),
      application_name: `${resolved.applicationName}-listener`,
    };
    this.#storeAnnounces = options.storeAnnounces ?? false;
    this.#heartbeatIntervalMs = heartbeatIntervalMs;
    this.#backoff = new Backoff({
      initialDelayMs: 100,
      maxDelayMs: options.maxReconnectDelayMs ?? 5_000,
      jitter: 'full',
      random: options.random,
    });
    this.#onError =
      options.onError ??
      ((error) => process.emitWarning(`postgres change bus: ${(error as Error)?.message ?? error}`));
    this.#local = new InProcessChangeBus({
      onListenerError: (error) => this.#onError(error),
    });
    if (options.onResync !== undefined) this.#resyncListeners.add(options.onResync);
  }

  /**
   * Starts listening. Resolves once the first LISTEN is in place; rejects if that first attempt
   * fails (the bus keeps retrying in the background until `close`).
   */
  start(): Promise<void> {
    let settle: (error?: unknown) => void = () => {};
    const first = new Promise<void>((resolve, reject) => {
      settle = (error) => (error === undefined ? resolve() : reject(error));
    });
    if (this.#running === undefined) {
      this.#running = this.#follow(settle);
    } else {
      settle(this.#client === undefined ? new Error('the change bus is not listening yet') : undefined);
    }
    return first;
  }

  publish(event: ChangeEvent): void {
    if (this.#storeAnnounces) return;
    const client = this.#client;
    if (client === undefined) {
      this.#onError(new Error(`not connected: ${event.type} was not announced (the cache TTL covers it)`));
      return;
    }
    client
      .query('SELECT pg_notify($1, $2)', [this.channel, JSON.stringify(event)])
      .catch((error: unknown) => {
        this.#onError(error);
      });
  }

  subscribe(listener: ChangeListener): Unsubscribe {
    return this.#local.subscribe(listener);
  }

  /** Called after every reconnect: events may have been missed while disconnected. */
  subscribeResync(listener: () => void): Unsubscribe {
    const subscription = () => listener();
    this.#resyncListeners.add(subscription);
    return () => {
      this.#resyncListeners.delete(subscription);
    };
  }

  stats(): PostgresChangeBusStats {
    return { listening: this.#client !== undefined, ...this.#stats };
  }

  async close(): Promise<void> {
    this.#abort.abort();
    await this.#running;
  }

  async #follow(firstAttempt: (error?: unknown) => void): Promise<void> {
    let failures = 0;
    let previousDelay: number | undefined;
    while (!this.#abort.signal.aborted) {
      try {
        await this.#listenUntilLost(() => {
          failures = 0;
          previousDelay = undefined;
          firstAttempt();
        });
      } catch (error) {
        firstAttempt(error);
        if (this.#abort.signal.aborted) return;
        this.#onError(error);
      }
      if (this.#abort.signal.aborted) return;
      failures++;
      const delay = this.#backoff.delay(failures, previousDelay);
      previousDelay = delay;
      await this.#sleep(delay);
    }
  }

  /** One connection's life: connect, LISTEN, deliver, heartbeat; returns or throws when it ends. */
  async #listenUntilLost(listening: () => void): Promise<void> {
    const client = new pg.Client(this.#config);
    let lost: (error: unknown) => void = () => {};
    const connectionLost = new Promise<never>((_, reject) => {
      lost = reject;
    });
    connectionLost.catch(() => {});
    client.on('error', (error) => lost(error));
    client.on('end', () => lost(new Error('the listener connection ended')));
    client.on('notification', (message) => {
      if (message.channel !== this.channel) return;
      const event = parseEvent(message.payload);
      if (event === undefined) {
        this.#stats.malformed++;
        this.#onError(new Error(`malformed change notification: ${message.payload?.slice(0, 200)}`));
        return;
      }
      this.#stats.received++;
      this.#local.publish(event);
    });
    const stop = () => lost(new Error('closed'));
    this.#abort.signal.addEventListener('abort', stop, { once: true });
    try {
      await Promise.race([client.connect(), connectionLost]);
      await Promise.race([client.query(`LISTEN ${quoteIdentifier(this.channel)}`), connectionLost]);
      this.#client = client;
      if (this.#listenedOnce) {
        this.#stats.reconnects++;
        this.#resync();
      }
      this.#listenedOnce = true;
      listening();
      for (;;) {
        await Promise.race([this.#sleep(this.#heartbeatIntervalMs), connectionLost]);
        if (this.#abort.signal.aborted) return;
        // The query timeout bounds this: a frozen server fails it instead of hanging the loop.
        await Promise.race([client.query('SELECT 1'), connectionLost]);
      }
    } catch (error) {
      if (this.#abort.signal.aborted) return;
      throw error;
    } finally {
      this.#abort.signal.removeEventListener('abort', stop);
      if (this.#client === client) this.#client = undefined;
      // end() waits for the server's goodbye, which a frozen server never sends.
      const ended = client.end().catch(() => {});
      const timer = setTimeout(() => destroyConnection(client), 1_000);
      await ended;
      clearTimeout(timer);
    }
  }

  #resync(): void {
    this.#stats.resyncs++;
    for (const listener of [...this.#resyncListeners]) {
      try {
        listener();
      } catch (error) {
        this.#onError(error);
      }
    }
  }

  #sleep(ms: number): Promise<void> {
    const signal = this.#abort.signal;
    return new Promise<void>((resolve) => {
      if (signal.aborted) {
        resolve();
        return;
      }
      const done = (): void => {
        clearTimeout(timer);
        signal.removeEventListener('abort', done);
        resolve();
      };
      const timer = setTimeout(done, ms);
      signal.addEventListener('abort', done, { once: true });
    });
  }
}
