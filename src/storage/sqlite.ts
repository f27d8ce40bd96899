/**
 * The one way Pixelfleet opens an embedded SQLite database (`node:sqlite`) and evolves its schema.
 *
 * `openSqliteDatabase` validates the options, creates the parent directory, waits `busyTimeoutMs`
 * for another connection's lock, and turns on WAL so readers never wait behind a writer.
 * `synchronous` is the durability choice: FULL (default) survives a power cut once a commit
 * returns, NORMAL may lose the last commits to one but saves an fsync per commit.
 *
 * `applyMigrations` brings the schema to the newest listed version. Guarantees:
 * - every pending migration runs in one `BEGIN IMMEDIATE` transaction together with the version
 *   bump, so the file is always at a version the code once wrote, never half migrated;
 * - reopening is idempotent and cheap: an up-to-date file is recognised by reading
 *   `PRAGMA user_version` (the file header), without a write lock;
 * - a file newer than the code is refused (`PF_ERR_STORAGE_CORRUPT`, naming the file) rather than
 *   written by code that does not know its layout;
 * - two processes opening the same file cannot both apply a migration: the version is re-read
 *   under the write lock.
 * `PRAGMA user_version` is the version; the `schema_migrations` table is the history (which
 * migration, when), for operators. The version is the larger of the two, so files written by
 * either mechanism alone (the stores used one each before) open without a rewrite.
 */
import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { isPixelfleetError, PixelfleetError } from '../errors/index.ts';

export interface SqliteDatabaseOptions {
  /** Path of the database file, or `:memory:`. The parent directory is created if missing. */
  path: string;
  /** How long a statement waits for another connection's lock before failing (ms, default 5 s). */
  busyTimeoutMs?: number | undefined;
  /** FULL (default): a returned commit survives a power cut. NORMAL: one fsync fewer per commit. */
  synchronous?: 'NORMAL' | 'FULL';
  /**
   * INCREMENTAL lets the store hand freed pages back to the file system (`incremental_vacuum`).
   * Only takes effect on a file that has no tables yet, i.e. when it is created.
   */
  autoVacuum?: 'INCREMENTAL';
}

/** One step of a schema's history. Once released it is never edited, only followed. */
export interface SqliteMigration {
  /** Positive integer, strictly increasing through the list. */
  version: number;
  name: string;
  sql: string;
}

export interface ApplyMigrationsOptions {
  /** Names the schema in errors, e.g. `identity store`. */
  component: string;
  /** Epoch-ms clock for the history's `applied_at` (default `Date.now`). */
  clock?: () => number;
}

const synchronousModes = new Set(['NORMAL', 'FULL']);

export function openSqliteDatabase(options: SqliteDatabaseOptions): DatabaseSync {
  const { path } = options;
  if (typeof path !== 'string' || path === '') throw new RangeError('path must be a file path or :memory:');
  const busyTimeoutMs = options.busyTimeoutMs ?? 5_000;
  if (!Number.isSafeInteger(busyTimeoutMs) || busyTimeoutMs < 0) {
    throw new RangeError(`busyTimeoutMs must be a non-negative integer, got ${busyTimeoutMs}`);
  }
  const synchronous = options.synchronous ?? 'FULL';
  if (!synchronousModes.has(synchronous)) {
    throw new RangeError(`synchronous must be NORMAL or FULL, got ${String(synchronous)}`);
  }
  if (options.autoVacuum !== undefined && options.autoVacuum !== 'INCREMENTAL') {
    throw new RangeError(`autoVacuum must be INCREMENTAL, got ${String(options.autoVacuum)}`);
  }
  let database: DatabaseSync;
  try {
    if (path !== ':memory:') mkdirSync(dirname(path), { recursive: true });
    database = new DatabaseSync(path, { timeout: busyTimeoutMs, enableForeignKeyConstraints: true });
  } catch (cause) {
    throw new PixelfleetError('PF_ERR_STORAGE_UNAVAILABLE', `cannot open the SQLite database ${path}`, {
      cause,
    });
  }
  try {
    // auto_vacuum first: it must be chosen before WAL and before the first table exists.
    if (options.autoVacuum !== undefined) database.exec(`PRAGMA auto_vacuum = ${options.autoVacuum}`);
    database.exec(`PRAGMA journal_mode = WAL; PRAGMA synchronous = ${synchronous};`);
  } catch (cause) {
    database.close();
    throw new PixelfleetError('PF_ERR_STORAGE_UNAVAILABLE', `cannot set up the SQLite database ${path}`, {
      cause,
    });
  }
  return database;
}

/** Brings the schema to the last listed version; returns the versions applied now. */
export function applyMigrations(
  database: DatabaseSync,
  migrations: readonly SqliteMigration[],
  options: ApplyMigrationsOptions,
): number[] {
  const { component } = options;
  const clock = options.clock ?? Date.now;
  assertMigrationList(migrations);
  const latest = migrations.at(-1)?.version ?? 0;
  const file = database.location() ?? ':memory:';
  const refuseNewer = (version: number) =>
    new PixelfleetError(
      'PF_ERR_STORAGE_CORRUPT',
      `${file} has ${component} schema version ${version}, newer than the ${latest} this build understands; ` +
        'run a newer Pixelfleet or start from a fresh data directory',
      { extensions: { file, version, supportedVersion: latest } },
    );

  const stamped = userVersion(database);
  if (stamped === latest) return [];
  if (stamped > latest) throw refuseNewer(stamped);

  let pending: SqliteMigration | undefined;
  try {
    database.exec('BEGIN IMMEDIATE');
    database.exec(`CREATE TABLE IF NOT EXISTS schema_migrations (
      version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at INTEGER NOT NULL) STRICT`);
    // Re-read under the write lock: another process may have migrated while this one waited.
    const recorded = database.prepare('SELECT max(version) AS version FROM schema_migrations').get()
      ?.version as number | null;
    const current = Math.max(userVersion(database), recorded ?? 0);
    if (current > latest) throw refuseNewer(current);
    const applied: number[] = [];
    const record = database.prepare(
      'INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)',
    );
    for (const migration of migrations) {
      if (migration.version <= current) continue;
      pending = migration;
      database.exec(migration.sql);
      record.run(migration.version, migration.name, clock());
      applied.push(migration.version);
    }
    pending = undefined;
    database.exec(`PRAGMA user_version = ${latest}`);
    database.exec('COMMIT');
    return applied;
  } catch (cause) {
    if (database.isTransaction) database.exec('ROLLBACK');
    if (isPixelfleetError(cause)) throw cause;
    const step = pending === undefined ? 'schema check' : `migration ${pending.version} (${pending.name})`;
    throw new PixelfleetError(
      'PF_ERR_STORAGE_UNAVAILABLE',
      `${component} ${step} failed on ${file}; nothing was applied: ${(cause as Error)?.message ?? cause}`,
      { cause },
    );
  }
}

/** The migration history recorded in the file: versions, ascending. */
export function appliedMigrations(database: DatabaseSync): number[] {
  const table = database
    .prepare(`SELECT 1 FROM sqlite_schema WHERE type = 'table' AND name = 'schema_migrations'`)
    .get();
  if (table === undefined) return [];
  return database
    .prepare('SELECT version FROM schema_migrations ORDER BY version')
    .all()
    .map((row) => row.version as number);
}

function userVersion(database: DatabaseSync): number {
  return database.prepare('PRAGMA user_version').get()?.user_version as number;
}

function assertMigrationList(migrations: readonly SqliteMigration[]): void {
  let previous = 0;
  for (const migration of migrations) {
    if (!Number.isSafeInteger(migration.version) || migration.version <= previous) {
      throw new RangeError(
        `migration versions must be positive integers in strictly increasing order; ${migration.version} follows ${previous}`,
      );
    }
    if (typeof migration.name !== 'string' || migration.name === '') {
      throw new RangeError(`migration ${migration.version} needs a name`);
    }
    previous = migration.version;
  }
}
