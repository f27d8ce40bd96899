/**
 * How the PostgreSQL identity adapter talks to the server: validated connection options, a
 * bounded pool, and the mapping of driver failures to Pixelfleet errors.
 *
 * Every wait is bounded, so an unreachable or frozen server turns into a prompt
 * PF_ERR_MANAGEMENT_UNAVAILABLE (503) instead of a hang: connecting (`connectTimeoutMs`), each
 * statement on the server (`statement_timeout`), each reply on the client (a read timeout a
 * little above it, for a server that no longer answers at all), a lock wait, and an idle
 * transaction. TCP keep-alive finds dead peers on idle connections.
 */
import pg from 'pg';
import { isPixelfleetError, PixelfleetError } from '../../errors/index.ts';

export interface PostgresConnectionOptions {
  /** `postgres://user:password@host:port/database` (libpq URL syntax, `?sslmode=` included). */
  url: string;
  /**
   * Schema holding the identity tables; created if missing. Default: the role's search_path
   * (usually `public`). Lets several installations share one database.
   */
  schema?: string;
  /** Most connections the pool opens (default 10): bounds the load one api server puts on PostgreSQL. */
  poolSize?: number;
  /** Longest wait for a connection, new or from the pool (default 5 s). */
  connectTimeoutMs?: number;
  /** Longest a statement may run (default 5 s); also bounds waiting for a frozen server. */
  queryTimeoutMs?: number;
  /** Shown in pg_stat_activity (default `pixelfleet-identity`). */
  applicationName?: string;
}

export interface ResolvedConnectionOptions {
  url: string;
  schema: string | undefined;
  poolSize: number;
  connectTimeoutMs: number;
  queryTimeoutMs: number;
  applicationName: string;
}

const identifierPattern = /^[a-z_][a-z0-9_]{0,62}$/;

export function assertIdentifier(name: string, value: string): void {
  if (!identifierPattern.test(value)) {
    throw new RangeError(
      `${name} must be a lower-case PostgreSQL identifier ([a-z_][a-z0-9_]*, at most 63 characters), got ${JSON.stringify(value)}`,
    );
  }
}

function boundedInteger(name: string, value: number, min: number, max: number): number {
  if (!Number.isInteger(value) || value < min || value > max) {
    throw new RangeError(`${name} must be an integer from ${min} to ${max}, got ${value}`);
  }
  return value;
}

export function resolveConnectionOptions(options: PostgresConnectionOptions): ResolvedConnectionOptions {
  if (typeof options.url !== 'string' || !/^postgres(ql)?:\/\//.test(options.url)) {
    throw new RangeError('url must be a postgres:// or postgresql:// connection URL');
  }
  if (options.schema !== undefined) assertIdentifier('schema', options.schema);
  return {
    url: options.url,
    schema: options.schema,
    poolSize: boundedInteger('poolSize', options.poolSize ?? 10, 1, 1000),
    connectTimeoutMs: boundedInteger('connectTimeoutMs', options.connectTimeoutMs ?? 5_000, 1, 600_000),
    queryTimeoutMs: boundedInteger('queryTimeoutMs', options.queryTimeoutMs ?? 5_000, 1, 600_000),
    applicationName: options.applicationName ?? 'pixelfleet-identity',
  };
}

/**
 * BIGINT (int8) columns hold epoch milliseconds, byte counts and ids, all far below 2^53; the
 * driver returns them as strings by default, which would leak into every Account and Tier.
 */
const int8Oid = 20;
const types: pg.CustomTypesConfig = {
  getTypeParser: ((oid: number, format?: 'text' | 'binary') => {
    if (oid === int8Oid && format !== 'binary') return (text: string) => Number(text);
    return pg.types.getTypeParser(oid, format as 'text');
  }) as pg.CustomTypesConfig['getTypeParser'],
};

/** Settings for one connection (the pool's, or the change bus's dedicated listener). */
export function clientConfig(options: ResolvedConnectionOptions): pg.ClientConfig {
  return {
    connectionString: options.url,
    connectionTimeoutMillis: options.connectTimeoutMs,
    statement_timeout: options.queryTimeoutMs,
    lock_timeout: options.queryTimeoutMs,
    idle_in_transaction_session_timeout: Math.max(options.queryTimeoutMs * 2, 10_000),
    // The server's statement_timeout answers first while it is alive; this one catches a server
    // (or network) that stopped answering altogether.
    query_timeout: options.queryTimeoutMs + 1_000,
    keepAlive: true,
    keepAliveInitialDelayMillis: 10_000,
    application_name: options.applicationName,
    ...(options.schema === undefined ? {} : { options: `-c search_path=${options.schema}` }),
    types,
  };
}

export function createPool(options: ResolvedConnectionOptions, onIdleError: (error: Error) => void): pg.Pool {
  const pool = new pg.Pool({
    ...clientConfig(options),
    max: options.poolSize,
    idleTimeoutMillis: 30_000,
    allowExitOnIdle: true,
  });
  // An idle connection dropped by the server (restart, failover) must not crash the process:
  // the pool discards it and the next query opens a fresh one.
  pool.on('error', onIdleError);
  return pool;
}

/** The SQLSTATE of an error the server sent, or undefined for a driver or network failure. */
export function sqlState(error: unknown): string | undefined {
  if (error instanceof pg.DatabaseError) return error.code;
  return undefined;
}

const uniqueViolation = '23505';

/**
 * Domain errors and bad arguments pass through; a unique violation is a lost race with a
 * concurrent write of the same id (409); anything else means the store cannot serve now (503).
 */
export function identityError(cause: unknown, what = 'identity store'): unknown {
  if (isPixelfleetError(cause) || cause instanceof RangeError) return cause;
  if (sqlState(cause) === uniqueViolation) {
    return new PixelfleetError(
      'PF_ERR_CONFLICT',
      `${what}: a concurrent write created the same record (${(cause as Error).message})`,
      { cause },
    );
  }
  return new PixelfleetError(
    'PF_ERR_MANAGEMENT_UNAVAILABLE',
    `${what}: PostgreSQL is unavailable: ${(cause as Error)?.message ?? cause}`,
    { cause, extensions: { retryAfterSeconds: 1 } },
  );
}

/**
 * Runs `work` in one transaction on one pooled connection. A connection that failed below SQL
 * (timeout, reset) is destroyed rather than reused; the server rolls its transaction back when
 * the connection goes.
 */
export async function inTransaction<T>(
  pool: pg.Pool,
  work: (client: pg.PoolClient) => Promise<T>,
  what?: string,
): Promise<T> {
  let client: pg.PoolClient;
  try {
    client = await pool.connect();
  } catch (cause) {
    throw identityError(cause, what);
  }
  let broken: Error | undefined;
  try {
    await client.query('BEGIN');
    const result = await work(client);
    await client.query('COMMIT');
    return result;
  } catch (cause) {
    if (isPixelfleetError(cause) || cause instanceof RangeError || sqlState(cause) !== undefined) {
      try {
        await client.query('ROLLBACK');
      } catch (rollbackFailure) {
        broken = rollbackFailure as Error;
      }
    } else {
      broken = cause as Error;
    }
    throw identityError(cause, what);
  } finally {
    client.release(broken ?? false);
  }
}

/** A double-quoted identifier (validated by `assertIdentifier` beforehand). */
export function quoteIdentifier(name: string): string {
  return `"${name}"`;
}
