/**
 * The one Redis connection shape the adapters need, and how one is opened.
 *
 * Adapters talk to Redis through `RedisCommander` (just `sendCommand`), so a single client, a
 * `createClientPool` pool, or a test double all fit. node-redis writes every command queued in
 * the same event-loop turn in one socket write (automatic pipelining): N concurrent decisions
 * cost one write and one read burst, not N round trips, so one connection goes far (see
 * bench/ratelimit.ts for the figures).
 *
 * Failure posture: the offline queue is off, so while the connection is down a command fails at
 * once instead of piling up behind a reconnect (the callers have a local fallback and a breaker);
 * the client keeps reconnecting in the background with capped backoff.
 */
import { createClient, createClientPool } from 'redis';
import { isPixelfleetError, PixelfleetError } from '../../../errors/index.ts';

export type RedisArgument = string | Buffer;

/** The part of a node-redis client (or pool) the adapters use. */
export interface RedisCommander {
  sendCommand(args: RedisArgument[], options?: { typeMapping?: Record<number, unknown> }): Promise<unknown>;
}

export interface RedisConnectionOptions {
  /** redis://[user:password@]host:port[/db] (or rediss:// for TLS). */
  url: string;
  /** Shown in CLIENT LIST, so an operator can tell Pixelfleet's connections apart. */
  clientName?: string;
  /** Give up on one connection attempt after this long (ms). Default 2 s. */
  connectTimeoutMs?: number;
  /** Longest pause between reconnect attempts (ms). Default 1 s. */
  maxReconnectDelayMs?: number;
  /**
   * Use a pool of up to this many connections instead of one (default 1: a single pipelined
   * connection). More only helps when one connection's socket becomes the bottleneck.
   */
  poolSize?: number;
  /** Told about connection errors (they are also visible as failed commands). Default: ignored. */
  onError?: (error: unknown) => void;
}

export interface RedisConnection {
  readonly commander: RedisCommander;
  /** Resolves once connected; rejects only if closed first. Commands fail fast until then. */
  readonly ready: Promise<void>;
  close(): Promise<void>;
}

export function openRedisConnection(options: RedisConnectionOptions): RedisConnection {
  if (typeof options.url !== 'string' || !/^rediss?:\/\//.test(options.url)) {
    throw new RangeError(`url must be a redis:// or rediss:// URL, got ${String(options.url)}`);
  }
  const poolSize = options.poolSize ?? 1;
  if (!Number.isSafeInteger(poolSize) || poolSize < 1) {
    throw new RangeError(`poolSize must be a positive integer, got ${String(poolSize)}`);
  }
  const maxReconnectDelayMs = options.maxReconnectDelayMs ?? 1000;
  const clientOptions = {
    url: options.url,
    disableOfflineQueue: true,
    ...(options.clientName === undefined ? {} : { name: options.clientName }),
    socket: {
      connectTimeout: options.connectTimeoutMs ?? 2000,
      reconnectStrategy: (retries: number) => Math.min(50 * 2 ** Math.min(retries, 10), maxReconnectDelayMs),
    },
  };
  const onError = options.onError ?? (() => {});
  if (poolSize === 1) {
    const client = createClient(clientOptions);
    // node-redis emits 'error' on every failed reconnect; unhandled, that would end the process.
    client.on('error', onError);
    const ready = client.connect().then(() => undefined);
    ready.catch(() => {});
    let closed: Promise<void> | undefined;
    return {
      commander: client as unknown as RedisCommander,
      ready,
      close: () => {
        closed ??= Promise.resolve().then(() => {
          client.destroy();
        });
        return closed;
      },
    };
  }
  const pool = createClientPool(clientOptions, { minimum: 1, maximum: poolSize, acquireTimeout: 3000 });
  pool.on('error', onError);
  const ready = pool.connect().then(() => undefined);
  ready.catch(() => {});
  let closed: Promise<void> | undefined;
  return {
    commander: pool as unknown as RedisCommander,
    ready,
    close: () => {
      closed ??= Promise.resolve().then(() => {
        pool.destroy();
      });
      return closed;
    },
  };
}

/** Every Redis failure surfaces as PF_ERR_REDIS_UNAVAILABLE with the original as its cause. */
export function redisUnavailable(operation: string, cause: unknown): PixelfleetError {
  if (isPixelfleetError(cause)) return cause;
  const reason = cause instanceof Error ? cause.message : String(cause);
  return new PixelfleetError('PF_ERR_REDIS_UNAVAILABLE', `Redis ${operation} failed: ${reason}`, { cause });
}
