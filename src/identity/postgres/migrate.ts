/**
 * Applies the PostgreSQL identity migrations: all pending versions in one transaction, recorded
 * in `schema_migrations` (the same history table the SQLite runner keeps).
 *
 * Several api servers may start at once against one database. Each takes a transaction-scoped
 * advisory lock (keyed by the schema) before it looks at the history, so exactly one applies the
 * pending versions and the others, once the lock is theirs, find nothing left to do. PostgreSQL
 * DDL is transactional: a failing migration leaves no trace, not even the schema it created.
 * A database migrated by a newer build is refused rather than used with a schema this build
 * does not know.
 */
import type pg from 'pg';
import { PixelfleetError } from '../../errors/index.ts';
import { quoteIdentifier, sqlState } from './connection.ts';
import type { PostgresMigration } from './migrations.ts';

export interface PostgresMigrateOptions {
  /** Schema to create and migrate (undefined: the connection's search_path). */
  schema: string | undefined;
  clock: () => number;
}

function assertMigrationList(migrations: readonly PostgresMigration[]): void {
  let previous = 0;
  for (const migration of migrations) {
    if (!Number.isInteger(migration.version) || migration.version <= previous) {
      throw new RangeError(
        `migration versions must be increasing positive integers; ${migration.version} follows ${previous}`,
      );
    }
    previous = migration.version;
  }
}

/** Returns the versions this call applied (empty when the database was already current). */
export async function applyPostgresMigrations(
  pool: pg.Pool,
  migrations: readonly PostgresMigration[],
  options: PostgresMigrateOptions,
): Promise<number[]> {
  assertMigrationList(migrations);
  const latest = migrations.at(-1)?.version ?? 0;
  const where = options.schema === undefined ? 'the default schema' : `schema ${options.schema}`;
  let client: pg.PoolClient;
  try {
    client = await pool.connect();
  } catch (cause) {
    throw new PixelfleetError(
      'PF_ERR_MANAGEMENT_UNAVAILABLE',
      `identity store: cannot connect to PostgreSQL: ${(cause as Error)?.message ?? cause}`,
      { cause },
    );
  }
  let pending: PostgresMigration | undefined;
  let broken: Error | undefined;
  try {
    await client.query('BEGIN');
    // Serialises concurrent starters; released by COMMIT or ROLLBACK.
    await client.query('SELECT pg_advisory_xact_lock(hashtextextended($1, 0))', [
      `pixelfleet identity migrations ${options.schema ?? ''}`,
    ]);
    if (options.schema !== undefined) {
      await client.query(`CREATE SCHEMA IF NOT EXISTS ${quoteIdentifier(options.schema)}`);
    }
    await client.query(`CREATE TABLE IF NOT EXISTS schema_migrations (
      version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at BIGINT NOT NULL)`);
    const recorded = await client.query<{ version: number | null }>(
      'SELECT max(version) AS version FROM schema_migrations',
    );
    const current = recorded.rows[0]?.version ?? 0;
    if (current > latest) {
      throw new PixelfleetError(
        'PF_ERR_STORAGE_CORRUPT',
        `PostgreSQL ${where} has identity schema version ${current}, newer than the ${latest} this build understands; run a newer Pixelfleet`,
        { extensions: { version: current, supportedVersion: latest } },
      );
    }
    const applied: number[] = [];
    for (const migration of migrations) {
      if (migration.version <= current) continue;
      pending = migration;
      await client.query(migration.sql);
      await client.query('INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, $2, $3)', [
        migration.version,
        migration.name,
        options.clock(),
      ]);
      applied.push(migration.version);
    }
    pending = undefined;
    await client.query('COMMIT');
    return applied;
  } catch (cause) {
    if (cause instanceof PixelfleetError || sqlState(cause) !== undefined) {
      await client.query('ROLLBACK').catch((rollbackFailure: Error) => {
        broken = rollbackFailure;
      });
    } else {
      broken = cause as Error;
    }
    if (cause instanceof PixelfleetError) throw cause;
    const step = pending === undefined ? 'schema check' : `migration ${pending.version} (${pending.name})`;
    throw new PixelfleetError(
      'PF_ERR_MANAGEMENT_UNAVAILABLE',
      `identity store ${step} failed on PostgreSQL ${where}; nothing was applied: ${(cause as Error)?.message ?? cause}`,
      { cause },
    );
  } finally {
    client.release(broken ?? false);
  }
}

/** The migration history recorded in the database: versions, ascending. */
export async function appliedPostgresMigrations(pool: pg.Pool): Promise<number[]> {
  const result = await pool.query<{ version: number }>(
    'SELECT version FROM schema_migrations ORDER BY version',
  );
  return result.rows.map((row) => row.version);
}
