/**
 * The Redis `IdempotencyStore`, shared by every api server of a cluster: each transition is one
 * Lua script, so it is atomic on the Redis server whichever api server asks.
 *
 * Layout under `<prefix>` (default `pixelfleet:idempotency`):
 *   <prefix>:entry:<scope length>:<scope>:<key>  hash: state, fingerprint, token, expiresAt,
 *                                                retentionEnd, then status, headers, body, size
 *   <prefix>:expiry      sorted set: entry → the logical time it stops counting (sweep order)
 *   <prefix>:completed   sorted set: completed entry → completion sequence (eviction order)
 *   <prefix>:sizes       hash: completed entry → bytes counted against the budget
 *   <prefix>:bytes       the total of `sizes`;  <prefix>:sequence  the completion counter
 *
 * Guarantees (the same as the SQLite engine's, see sqlite-store.ts):
 * - `begin` claims a free key with a fresh token — a set-if-absent with a lease, done inside the
 *   script because "absent" also means "past its lease or retention as of nowMs": of any number
 *   of concurrent callers on any servers, exactly one is `started`.
 * - `complete` and `abandon` act only while their token still holds the key (compare-and-set in
 *   Lua), so a request that outlived its lease never clobbers or frees a newer holder's claim.
 * - Stored responses come back byte for byte (bodies travel as binary bulk strings).
 * - Completed responses stay under `maxStoredBytes`: storing one evicts the oldest completed
 *   entries until the total fits; one larger than the whole budget is not stored and frees its key.
 * Expiry is decided on the caller's `nowMs` (recorded in the entry), never on Redis's clock, so
 * every api server judges an entry alike; Redis TTLs (the logical lifetime plus `expirySlackMs`)
 * only reclaim memory when nobody sweeps. Durability is Redis's: without AOF a Redis restart
 * forgets the keys, and a retried request then runs again (safe for a resize; billed again).
 */

import { randomUUID } from 'node:crypto';
import { RESP_TYPES } from 'redis';
import { PixelfleetError } from '../../errors/index.ts';
// The files, not the folder's index: that index also exports the adapters factory, which imports
// this file.
import { type RedisCommander, redisUnavailable } from '../../resilience/ratelimit/redis/redis-connection.ts';
import { RedisScript } from '../../resilience/ratelimit/redis/redis-script.ts';
import { assertIdempotencyKey } from './key.ts';
import { entryOverheadBytes } from './sqlite-store.ts';
import {
  assertNonEmpty,
  assertResponse,
  assertTime,
  nonNegativeInteger,
  positiveInteger,
} from './store-checks.ts';
import type {
  BeginResult,
  IdempotencyStore,
  IdempotencyStoreSettings,
  StoredResponse,
  SweepResult,
} from './types.ts';

export interface RedisIdempotencyStoreOptions extends IdempotencyStoreSettings {
  /** A node-redis client or pool (see `openRedisConnection`). */
  redis: RedisCommander;
  /** Called once by `close()`, e.g. to close a connection this store was given to own. */
  release?: () => Promise<void>;
  /** First part of every key (default `pixelfleet:idempotency`). */
  prefix?: string;
  /**
   * Redis keeps an entry this long past its logical end before its TTL removes it (ms), so a
   * caller clock a little ahead of real time never loses an entry early. Default 60 s.
   */
  expirySlackMs?: number;
}

const defaults = {
  prefix: 'pixelfleet:idempotency',
  retentionMs: 24 * 60 * 60 * 1000,
  defaultLeaseMs: 60_000,
  maxStoredBytes: 256 * 1024 * 1024,
  sweepIntervalMs: 60_000,
  expirySlackMs: 60_000,
};

/** Entries removed per sweep script, so one sweep never blocks Redis for long. */
const sweepBatch = 500;

/** Shared Lua: forget a completed entry's budget accounting (KEYS[3] completed, [4] sizes, [5] bytes). */
const accounting = `
local function forget(entry)
  redis.call('ZREM', KEYS[3], entry)
  local size = redis.call('HGET', KEYS[4], entry)
  if size then
    redis.call('HDEL', KEYS[4], entry)
    redis.call('DECRBY', KEYS[5], size)
  end
end
local function remove(entry)
  forget(entry)
  redis.call('ZREM', KEYS[2], entry)
  redis.call('DEL', entry)
end
-- Evict the oldest completed entries until the total fits; never the entry named keep.
local function evictOverBudget(maxBytes, keep, limit)
  local evicted = 0
  while evicted < limit and tonumber(redis.call('GET', KEYS[5]) or '0') > maxBytes do
    local oldest = redis.call('ZRANGE', KEYS[3], 0, 0)[1]
    if not oldest or oldest == keep then break end
    remove(oldest)
    evicted = evicted + 1
  end
  return evicted
end
`;

/** KEYS: entry, expiry, completed, sizes, bytes. ARGV: fingerprint, now, leaseMs, retentionMs, token, slackMs. */
const beginScript = new RedisScript(`${accounting}
local entry = KEYS[1]
local now = tonumber(ARGV[2])
local current = redis.call('HMGET', entry, 'state', 'fingerprint', 'expiresAt')
if current[1] and tonumber(current[3]) > now then
  if current[2] ~= ARGV[1] then return { 'mismatch' } end
  if current[1] == 'in-progress' then return { 'in-progress' } end
  local stored = redis.call('HMGET', entry, 'status', 'headers', 'body')
  return { 'replay', stored[1], stored[2], stored[3] }
end
-- Absent, or past its lease or retention: as good as absent, so take its place.
remove(entry)
local leaseMs = tonumber(ARGV[3])
local expiresAt = string.format('%.17g', now + leaseMs)
redis.call('HSET', entry, 'state', 'in-progress', 'fingerprint', ARGV[1], 'token', ARGV[5],
  'expiresAt', expiresAt, 'retentionEnd', string.format('%.17g', now + tonumber(ARGV[4])))
redis.call('PEXPIRE', entry, string.format('%.0f', leaseMs + tonumber(ARGV[6])))
redis.call('ZADD', KEYS[2], expiresAt, entry)
return { 'started' }
`);

/**
 * KEYS: entry, expiry, completed, sizes, bytes, sequence.
 * ARGV: token, status, headers, body, size, maxStoredBytes, retentionMs, slackMs.
 */
const completeScript = new RedisScript(`${accounting}
local entry = KEYS[1]
local current = redis.call('HMGET', entry, 'state', 'token', 'retentionEnd')
if current[1] ~= 'in-progress' or current[2] ~= ARGV[1] then return 0 end
local size = tonumber(ARGV[5])
local maxBytes = tonumber(ARGV[6])
if size > maxBytes then
  -- It could never fit; storing it would only evict everything else first.
  remove(entry)
  return 0
end
redis.call('HSET', entry, 'state', 'completed', 'status', ARGV[2], 'headers', ARGV[3], 'body', ARGV[4],
  'expiresAt', current[3])
redis.call('HDEL', entry, 'token')
redis.call('PEXPIRE', entry, string.format('%.0f', tonumber(ARGV[7]) + tonumber(ARGV[8])))
redis.call('ZADD', KEYS[2], current[3], entry)
redis.call('ZADD', KEYS[3], redis.call('INCR', KEYS[6]), entry)
redis.call('HSET', KEYS[4], entry, size)
redis.call('INCRBY', KEYS[5], size)
evictOverBudget(maxBytes, entry, math.huge)
return 1
`);

/** KEYS: entry, expiry, completed, sizes, bytes. ARGV: token. */
const abandonScript = new RedisScript(`${accounting}
local current = redis.call('HMGET', KEYS[1], 'state', 'token')
if current[1] ~= 'in-progress' or current[2] ~= ARGV[1] then return 0 end
remove(KEYS[1])
return 1
`);

/** KEYS: (unused), expiry, completed, sizes, bytes. ARGV: now, batch, maxStoredBytes. */
const sweepScript = new RedisScript(`${accounting}
local now = tonumber(ARGV[1])
local batch = tonumber(ARGV[2])
local due = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', ARGV[1], 'LIMIT', 0, batch)
local expired = 0
for _, entry in ipairs(due) do
  local expiresAt = tonumber(redis.call('HGET', entry, 'expiresAt') or '-1')
  if expiresAt > now then
    -- Re-claimed since it was indexed: fix its place in the index instead.
    redis.call('ZADD', KEYS[2], expiresAt, entry)
  else
    remove(entry)
    expired = expired + 1
  end
end
local evicted = evictOverBudget(tonumber(ARGV[3]), '', batch)
return { expired, evicted, #due }
`);

const binaryReplies = { typeMapping: { [RESP_TYPES.BLOB_STRING]: Buffer } };

function asBuffer(bytes: Uint8Array): Buffer {
  return Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

export class RedisIdempotencyStore implements IdempotencyStore {
  readonly prefix: string;
  readonly retentionMs: number;
  readonly defaultLeaseMs: number;
  readonly maxStoredBytes: number;
  readonly #redis: RedisCommander;
  readonly #release: (() => Promise<void>) | undefined;
  readonly #slack: string;
  readonly #newToken: () => string;
  /** expiry, completed, sizes, bytes, sequence. */
  readonly #indexKeys: readonly [string, string, string, string, string];
  #timer: NodeJS.Timeout | undefined;
  #sweeping = false;
  #closed: Promise<void> | undefined;

  constructor(options: RedisIdempotencyStoreOptions) {
    if (options.redis === undefined || typeof options.redis.sendCommand !== 'function') {
      throw new RangeError('redis must be a node-redis client or pool');
    }
    const prefix = options.prefix ?? defaults.prefix;
    assertNonEmpty('prefix', prefix);
    this.prefix = prefix;
    this.retentionMs = positiveInteger('retentionMs', options.retentionMs ?? defaults.retentionMs);
    this.defaultLeaseMs = positiveInteger(
      'defaultLeaseMs',
      options.defaultLeaseMs ?? defaults.defaultLeaseMs,
    );
    this.maxStoredBytes = positiveInteger(
      'maxStoredBytes',
      options.maxStoredBytes ?? defaults.maxStoredBytes,
    );
    const sweepIntervalMs = nonNegativeInteger(
      'sweepIntervalMs',
      options.sweepIntervalMs ?? defaults.sweepIntervalMs,
    );
    this.#slack = String(
      nonNegativeInteger('expirySlackMs', options.expirySlackMs ?? defaults.expirySlackMs),
    );
    this.#redis = options.redis;
    this.#release = options.release;
    this.#newToken = options.newToken ?? randomUUID;
    this.#indexKeys = [
      `${prefix}:expiry`,
      `${prefix}:completed`,
      `${prefix}:sizes`,
      `${prefix}:bytes`,
      `${prefix}:sequence`,
    ];
    if (sweepIntervalMs > 0) {
      const clock = options.clock ?? Date.now;
      const onSweepError = options.onSweepError ?? (() => {});
      this.#timer = setInterval(() => {
        if (this.#sweeping) return;
        this.sweep(clock()).catch(onSweepError);
      }, sweepIntervalMs);
      // The sweep is housekeeping; it must never keep a process alive on its own.
      this.#timer.unref();
    }
  }

  /** The Redis key of one entry; the scope's length makes the split unambiguous. */
  entryKey(scope: string, key: string): string {
    return `${this.prefix}:entry:${scope.length}:${scope}:${key}`;
  }

  async begin(
    scope: string,
    key: string,
    fingerprint: string,
    nowMs: number,
    leaseMs: number = this.defaultLeaseMs,
  ): Promise<BeginResult> {
    assertNonEmpty('scope', scope);
    assertIdempotencyKey(key);
    assertNonEmpty('fingerprint', fingerprint);
    assertTime('nowMs', nowMs);
    positiveInteger('leaseMs', leaseMs);
    this.#assertOpen();
    const token = this.#newToken();
    const [expiry, completed, sizes, bytes] = this.#indexKeys;
    let reply: Buffer[];
    try {
      reply = await beginScript.run<Buffer[]>(
        this.#redis,
        [this.entryKey(scope, key), expiry, completed, sizes, bytes],
        [fingerprint, String(nowMs), String(leaseMs), String(this.retentionMs), token, this.#slack],
        binaryReplies,
      );
    } catch (error) {
      throw redisUnavailable('idempotency begin', error);
    }
    const kind = reply[0]!.toString();
    if (kind === 'started') return { kind, token };
    if (kind === 'mismatch' || kind === 'in-progress') return { kind };
    return {
      kind: 'replay',
      response: {
        status: Number(reply[1]!.toString()),
        headers: JSON.parse(reply[2]!.toString()) as Record<string, string>,
        body: asBuffer(reply[3]!),
      },
    };
  }

  async complete(scope: string, key: string, token: string, response: StoredResponse): Promise<boolean> {
    assertNonEmpty('scope', scope);
    assertNonEmpty('key', key);
    assertNonEmpty('token', token);
    assertResponse(response);
    this.#assertOpen();
    const headers = JSON.stringify(response.headers);
    const size =
      entryOverheadBytes +
      Buffer.byteLength(scope) +
      key.length +
      Buffer.byteLength(headers) +
      response.body.byteLength;
    try {
      const stored = await completeScript.run<number>(
        this.#redis,
        [this.entryKey(scope, key), ...this.#indexKeys],
        [
          token,
          String(response.status),
          headers,
          asBuffer(response.body),
          String(size),
          String(this.maxStoredBytes),
          String(this.retentionMs),
          this.#slack,
        ],
      );
      return stored === 1;
    } catch (error) {
      throw redisUnavailable('idempotency complete', error);
    }
  }

  async abandon(scope: string, key: string, token: string): Promise<boolean> {
    assertNonEmpty('scope', scope);
    assertNonEmpty('key', key);
    assertNonEmpty('token', token);
    this.#assertOpen();
    const [expiry, completed, sizes, bytes] = this.#indexKeys;
    try {
      const freed = await abandonScript.run<number>(
        this.#redis,
        [this.entryKey(scope, key), expiry, completed, sizes, bytes],
        [token],
      );
      return freed === 1;
    } catch (error) {
      throw redisUnavailable('idempotency abandon', error);
    }
  }

  async sweep(nowMs: number): Promise<SweepResult> {
    assertTime('nowMs', nowMs);
    this.#assertOpen();
    const [expiry, completed, sizes, bytes] = this.#indexKeys;
    this.#sweeping = true;
    try {
      let expired = 0;
      let evicted = 0;
      for (;;) {
        const [expiredNow, evictedNow, examined] = await sweepScript.run<number[]>(
          this.#redis,
          [this.prefix, expiry, completed, sizes, bytes],
          [String(nowMs), String(sweepBatch), String(this.maxStoredBytes)],
        );
        expired += expiredNow!;
        evicted += evictedNow!;
        if (examined! < sweepBatch && evictedNow! < sweepBatch) return { expired, evicted };
        if (this.#closed !== undefined) return { expired, evicted };
      }
    } catch (error) {
      throw redisUnavailable('idempotency sweep', error);
    } finally {
      this.#sweeping = false;
    }
  }

  close(): Promise<void> {
    this.#closed ??= (async () => {
      clearInterval(this.#timer);
      await this.#release?.();
    })();
    return this.#closed;
  }

  /** Bytes of completed responses counted against `maxStoredBytes` (for metrics and tests). */
  async storedBytes(): Promise<number> {
    this.#assertOpen();
    try {
      return Number((await this.#redis.sendCommand(['GET', this.#indexKeys[3]])) ?? 0);
    } catch (error) {
      throw redisUnavailable('idempotency stored bytes', error);
    }
  }

  #assertOpen(): void {
    if (this.#closed !== undefined) {
      throw new PixelfleetError(
        'PF_ERR_REDIS_UNAVAILABLE',
        `the Redis idempotency store ${this.prefix} is closed`,
      );
    }
  }
}
