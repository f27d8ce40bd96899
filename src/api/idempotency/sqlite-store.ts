/**
 * The embedded `IdempotencyStore`: one SQLite file (`<dataDir>/idempotency.db`) through Node's
 * `node:sqlite`, in WAL mode, with response bodies as blobs.
 *
 * Guarantees:
 * - `begin` is one `BEGIN IMMEDIATE` transaction, so among any number of concurrent callers
 *   (this process, other threads, other processes on the same file) exactly one is `started`.
 * - `complete` and `abandon` act only while their token still holds the key (fencing), so a
 *   request that outlived its lease never overwrites or frees a newer holder's claim.
 * - An entry lives until its retention ends (`retentionMs` after `begin`, default 24 h); an
 *   in-progress marker lives until its lease ends, so a crashed request frees the key by itself.
 * - The stored bytes stay under `maxStoredBytes`: storing a response evicts the oldest completed
 *   entries until the total fits. An evicted key is free again, so a retry after eviction runs
 *   the request anew (a resize is safe to repeat; it is only billed again). A response larger
 *   than the whole budget is not stored at all and frees its key.
 * - Completed entries survive a process crash. With `synchronous = NORMAL` a power cut may lose
 *   the last moments of completions; the cost is a re-run on retry, never a wrong replay, and it
 *   saves an fsync on every request.
 */

import { randomUUID } from 'node:crypto';
import { join } from 'node:path';
import type { DatabaseSync, StatementSync } from 'node:sqlite';
import { setImmediate as yieldToEventLoop } from 'node:timers/promises';
import { isPixelfleetError, PixelfleetError } from '../../errors/index.ts';
import { applyMigrations, openSqliteDatabase } from '../../storage/index.ts';
import { assertIdempotencyKey } from './key.ts';
import { idempotencyMigrations } from './sqlite-schema.ts';
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

export interface SqliteIdempotencyStoreOptions extends IdempotencyStoreSettings {
  /** Path of the database file, or `:memory:` (tests of a single store only). */
  path: string;
  /** How long a write waits for another process's write lock before failing (ms). Default 5 s. */
  busyTimeoutMs?: number;
}

/** Counted per entry on top of its strings and body: row header, index entries, token. */
export const entryOverheadBytes = 128;

const defaults = {
  retentionMs: 24 * 60 * 60 * 1000,
  defaultLeaseMs: 60_000,
  maxStoredBytes: 256 * 1024 * 1024,
  sweepIntervalMs: 60_000,
};

/** Rows deleted per sweep transaction, so a large sweep never holds the write lock for long. */
const sweepBatch = 500;

function asBuffer(value: unknown): Buffer {
  const bytes = value as Uint8Array;
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

export class SqliteIdempotencyStore implements IdempotencyStore {
  readonly path: string;
  readonly retentionMs: number;
  readonly defaultLeaseMs: number;
  readonly maxStoredBytes: number;
  readonly #database: DatabaseSync;
  readonly #newToken: () => string;
  readonly #statements: ReturnType<typeof prepareStatements>;
  #timer: NodeJS.Timeout | undefined;
  #sweeping = false;
  #closed = false;

  constructor(options: SqliteIdempotencyStoreOptions) {
    assertNonEmpty('path', options.path);
    this.path = options.path;
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
    this.#newToken = options.newToken ?? randomUUID;

    // Incremental vacuum is what lets a sweep hand freed pages back to the file system.
    this.#database = openSqliteDatabase({
      path: options.path,
      busyTimeoutMs: options.busyTimeoutMs,
      synchronous: 'NORMAL',
      autoVacuum: 'INCREMENTAL',
    });
    try {
      applyMigrations(this.#database, idempotencyMigrations, { component: 'idempotency store' });
      // Bound the WAL file after each checkpoint: multi-MB bodies would otherwise leave it large.
      this.#database.exec('PRAGMA journal_size_limit = 67108864;');
      this.#statements = prepareStatements(this.#database);
    } catch (cause) {
      this.#database.close();
      throw cause;
    }

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
    const statements = this.#statements;
    return this.#write((): BeginResult => {
      const existing = statements.findEntry.get(scope, key);
      if (existing !== undefined && (existing.expires_at as number) > nowMs) {
        if (existing.fingerprint !== fingerprint) return { kind: 'mismatch' };
        if (existing.state === 'in-progress') return { kind: 'in-progress' };
        const stored = statements.readResponse.get(existing.id as number)!;
        return {
          kind: 'replay',
          response: {
            status: stored.status as number,
            headers: JSON.parse(stored.headers as string) as Record<string, string>,
            body: asBuffer(stored.body),
          },
        };
      }
      // An entry past its retention or lease is as good as absent: take its place.
      if (existing !== undefined) statements.deleteById.run(existing.id as number);
      const token = this.#newToken();
      const size = entryOverheadBytes + Buffer.byteLength(scope) + key.length + fingerprint.length;
      statements.insertMarker.run(scope, key, fingerprint, token, nowMs, nowMs + leaseMs, size);
      return { kind: 'started', token };
    });
  }

  async complete(scope: string, key: string, token: string, response: StoredResponse): Promise<boolean> {
    assertNonEmpty('scope', scope);
    assertNonEmpty('key', key);
    assertNonEmpty('token', token);
    assertResponse(response);
    const headers = JSON.stringify(response.headers);
    const size =
      entryOverheadBytes +
      Buffer.byteLength(scope) +
      key.length +
      Buffer.byteLength(headers) +
      response.body.byteLength;
    const statements = this.#statements;
    return this.#write(() => {
      const holder = statements.findHolder.get(scope, key, token);
      if (holder === undefined) return false;
      const id = holder.id as number;
      if (size > this.maxStoredBytes) {
        // It could never fit; storing it would only evict everything else first.
        statements.deleteById.run(id);
        return false;
      }
      statements.storeResponse.run(
        response.status,
        headers,
        response.body,
        size,
        (holder.created_at as number) + this.retentionMs,
        id,
      );
      this.#evictOverBudget(Number.POSITIVE_INFINITY, id);
      return true;
    });
  }

  async abandon(scope: string, key: string, token: string): Promise<boolean> {
    assertNonEmpty('scope', scope);
    assertNonEmpty('key', key);
    assertNonEmpty('token', token);
    const statements = this.#statements;
    return this.#write(() => statements.deleteMarker.run(scope, key, token).changes > 0);
  }

  async sweep(nowMs: number): Promise<SweepResult> {
    assertTime('nowMs', nowMs);
    this.#assertOpen();
    const statements = this.#statements;
    this.#sweeping = true;
    try {
      let expired = 0;
      let evicted = 0;
      for (;;) {
        const deleted = this.#write(() => Number(statements.deleteExpired.run(nowMs, sweepBatch).changes));
        expired += deleted;
        if (deleted < sweepBatch) break;
        // Let requests waiting on this thread run between batches.
        await yieldToEventLoop();
        if (this.#closed) return { expired, evicted };
      }
      for (;;) {
        const removed = this.#write(() => this.#evictOverBudget(sweepBatch, -1));
        evicted += removed;
        if (removed < sweepBatch) break;
        await yieldToEventLoop();
        if (this.#closed) return { expired, evicted };
      }
      // Hand the freed pages back to the file system so the file shrinks with the data.
      if (expired + evicted > 0) this.#write(() => this.#database.exec('PRAGMA incremental_vacuum'));
      return { expired, evicted };
    } finally {
      this.#sweeping = false;
    }
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    clearInterval(this.#timer);
    this.#database.close();
  }

  /** Bytes currently counted against `maxStoredBytes` (for metrics and tests). */
  storedBytes(): number {
    this.#assertOpen();
    return this.#statements.storedBytes.get()!.stored_bytes as number;
  }

  /** Number of entries, completed and in progress (for metrics and tests). */
  entryCount(): { completed: number; inProgress: number } {
    this.#assertOpen();
    const row = this.#statements.countEntries.get()!;
    return { completed: Number(row.completed ?? 0), inProgress: Number(row.in_progress ?? 0) };
  }

  /**
   * Deletes the oldest completed entries until the total fits; returns how many it removed.
   * `keepId` is the entry just stored, which must survive the eviction it caused.
   */
  #evictOverBudget(limit: number, keepId: number): number {
    const statements = this.#statements;
    let removed = 0;
    while (removed < limit) {
      const total = statements.storedBytes.get()!.stored_bytes as number;
      if (total <= this.maxStoredBytes) break;
      const oldest = statements.oldestCompleted.get(keepId);
      if (oldest === undefined) break;
      statements.deleteById.run(oldest.id as number);
      removed++;
    }
    return removed;
  }

  #assertOpen(): void {
    if (this.#closed) {
      throw new PixelfleetError('PF_ERR_STORAGE_UNAVAILABLE', `the idempotency store ${this.path} is closed`);
    }
  }

  /** One `BEGIN IMMEDIATE` transaction: the write lock is taken before anything is read. */
  #write<T>(work: () => T): T {
    this.#assertOpen();
    const database = this.#database;
    try {
      database.exec('BEGIN IMMEDIATE');
      const result = work();
      database.exec('COMMIT');
      return result;
    } catch (cause) {
      if (database.isTransaction) database.exec('ROLLBACK');
      if (isPixelfleetError(cause) || cause instanceof RangeError) throw cause;
      throw new PixelfleetError(
        'PF_ERR_STORAGE_UNAVAILABLE',
        `the idempotency store ${this.path} failed a write`,
        {
          cause,
        },
      );
    }
  }
}

function prepareStatements(database: DatabaseSync) {
  const prepare = (sql: string): StatementSync => database.prepare(sql);
  return {
    findEntry: prepare('SELECT id, fingerprint, state, expires_at FROM entries WHERE scope = ? AND key = ?'),
    findHolder: prepare(
      `SELECT id, created_at FROM entries
       WHERE scope = ? AND key = ? AND token = ? AND state = 'in-progress'`,
    ),
    readResponse: prepare('SELECT status, headers, body FROM entries WHERE id = ?'),
    insertMarker: prepare(
      `INSERT INTO entries (scope, key, fingerprint, token, state, created_at, expires_at, size)
       VALUES (?, ?, ?, ?, 'in-progress', ?, ?, ?)`,
    ),
    storeResponse: prepare(
      `UPDATE entries SET state = 'completed', status = ?, headers = ?, body = ?, size = ?, expires_at = ?
       WHERE id = ?`,
    ),
    deleteById: prepare('DELETE FROM entries WHERE id = ?'),
    deleteMarker: prepare(
      `DELETE FROM entries WHERE scope = ? AND key = ? AND token = ? AND state = 'in-progress'`,
    ),
    deleteExpired: prepare(
      'DELETE FROM entries WHERE id IN (SELECT id FROM entries WHERE expires_at <= ? LIMIT ?)',
    ),
    oldestCompleted: prepare(
      `SELECT id FROM entries WHERE state = 'completed' AND id != ? ORDER BY created_at, id LIMIT 1`,
    ),
    storedBytes: prepare('SELECT stored_bytes FROM totals WHERE id = 1'),
    countEntries: prepare(
      `SELECT SUM(state = 'completed') AS completed, SUM(state = 'in-progress') AS in_progress FROM entries`,
    ),
  };
}

/** The embedded store at `<dataDir>/idempotency.db`. */
export function openIdempotencyStore(
  dataDir: string,
  options: Omit<SqliteIdempotencyStoreOptions, 'path'> = {},
): SqliteIdempotencyStore {
  return new SqliteIdempotencyStore({ ...options, path: join(dataDir, 'idempotency.db') });
}
