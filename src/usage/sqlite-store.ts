/**
 * The embedded `UsageStore`: one SQLite file (`<dataDir>/usage.db`, WAL) through `node:sqlite`.
 *
 * `usage_records` holds the id of every record ever counted; `usage_minutes` the sums per account
 * per minute. `applyBatch` is one transaction that inserts each id with INSERT OR IGNORE and adds
 * to the minute sums only the records whose id row was actually inserted, so a batch replayed
 * after a crash, or a record submitted twice, is counted once. Commits use `synchronous=FULL`:
 * the meter seals a segment only after its records are committed here, so a commit that reached
 * the disk must stay there through a power cut.
 *
 * Coarser buckets are summed from the minute rows by SQL at query time. The schema is versioned
 * by the shared SQLite runner (storage/sqlite.ts), which refuses a file newer than this build.
 */
import type { DatabaseSync, StatementSync } from 'node:sqlite';
import { PixelfleetError } from '../errors/index.ts';
import { applyMigrations, openSqliteDatabase, type SqliteMigration } from '../storage/index.ts';
import { dayMs, hourMs, minuteStart } from './time-buckets.ts';
import { addRecord, emptyTotals } from './totals.ts';
import type {
  ApplyOutcome,
  StoredBucket,
  UsageGranularity,
  UsageRecord,
  UsageStore,
  UsageTotals,
} from './types.ts';

export interface SqliteUsageStoreOptions {
  /** Path of the database file, or `:memory:`. */
  path: string;
  /** How long a write waits for another connection's write lock before failing (ms). */
  busyTimeoutMs?: number;
}

const migrations: readonly SqliteMigration[] = [
  {
    version: 1,
    name: 'record ids and per-minute sums',
    // IF NOT EXISTS: files created before the store was versioned already hold these tables.
    sql: `
      CREATE TABLE IF NOT EXISTS usage_records (
        record_id   TEXT PRIMARY KEY,
        account_id  TEXT NOT NULL,
        finished_at INTEGER NOT NULL
      ) WITHOUT ROWID;
      CREATE TABLE IF NOT EXISTS usage_minutes (
        account_id   TEXT NOT NULL,
        minute_start INTEGER NOT NULL,
        conversions  INTEGER NOT NULL,
        cpu_micros   INTEGER NOT NULL,
        bytes_in     INTEGER NOT NULL,
        bytes_out    INTEGER NOT NULL,
        pixels_in    INTEGER NOT NULL,
        pixels_out   INTEGER NOT NULL,
        PRIMARY KEY (account_id, minute_start)
      ) WITHOUT ROWID;
    `,
  },
];

const sums = `SUM(conversions) AS conversions, SUM(cpu_micros) AS cpu_micros, SUM(bytes_in) AS bytes_in,
  SUM(bytes_out) AS bytes_out, SUM(pixels_in) AS pixels_in, SUM(pixels_out) AS pixels_out`;

/** SQL for the start (epoch ms) of the bucket holding `minute_start`. */
const bucketExpressions: Record<UsageGranularity, string> = {
  minute: 'minute_start',
  hour: `(minute_start / ${hourMs}) * ${hourMs}`,
  day: `(minute_start / ${dayMs}) * ${dayMs}`,
  month: `unixepoch(strftime('%Y-%m-01', minute_start / 1000, 'unixepoch')) * 1000`,
};

function totalsFromRow(row: Record<string, unknown>): UsageTotals {
  return {
    conversions: Number(row.conversions ?? 0),
    cpuMicros: Number(row.cpu_micros ?? 0),
    bytesIn: Number(row.bytes_in ?? 0),
    bytesOut: Number(row.bytes_out ?? 0),
    pixelsIn: Number(row.pixels_in ?? 0),
    pixelsOut: Number(row.pixels_out ?? 0),
  };
}

export class SqliteUsageStore implements UsageStore {
  readonly path: string;
  readonly #database: DatabaseSync;
  readonly #insertRecord: StatementSync;
  readonly #hasRecord: StatementSync;
  readonly #addMinute: StatementSync;
  readonly #totals: StatementSync;
  readonly #buckets: Map<UsageGranularity, StatementSync>;
  #closed = false;

  constructor(options: SqliteUsageStoreOptions) {
    this.path = options.path;
    this.#database = openSqliteDatabase({
      path: options.path,
      busyTimeoutMs: options.busyTimeoutMs,
      synchronous: 'FULL',
    });
    try {
      applyMigrations(this.#database, migrations, { component: 'usage store' });
      this.#insertRecord = this.#database.prepare(
        'INSERT OR IGNORE INTO usage_records (record_id, account_id, finished_at) VALUES (?, ?, ?)',
      );
      this.#hasRecord = this.#database.prepare('SELECT 1 FROM usage_records WHERE record_id = ?');
      this.#addMinute = this.#database.prepare(
        `INSERT INTO usage_minutes (account_id, minute_start, conversions, cpu_micros, bytes_in, bytes_out, pixels_in, pixels_out)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?)
         ON CONFLICT (account_id, minute_start) DO UPDATE SET
           conversions = conversions + excluded.conversions,
           cpu_micros = cpu_micros + excluded.cpu_micros,
           bytes_in = bytes_in + excluded.bytes_in,
           bytes_out = bytes_out + excluded.bytes_out,
           pixels_in = pixels_in + excluded.pixels_in,
           pixels_out = pixels_out + excluded.pixels_out`,
      );
      this.#totals = this.#database.prepare(
        `SELECT ${sums} FROM usage_minutes WHERE account_id = ? AND minute_start >= ? AND minute_start < ?`,
      );
      this.#buckets = new Map(
        (Object.keys(bucketExpressions) as UsageGranularity[]).map((granularity) => [
          granularity,
          this.#database.prepare(
            `SELECT ${bucketExpressions[granularity]} AS bucket_start, ${sums} FROM usage_minutes
             WHERE account_id = ? AND minute_start >= ? AND minute_start < ?
             GROUP BY bucket_start ORDER BY bucket_start`,
          ),
        ]),
      );
    } catch (cause) {
      this.#database.close();
      throw cause;
    }
  }

  async applyBatch(records: readonly UsageRecord[]): Promise<ApplyOutcome> {
    this.#assertOpen();
    if (records.length === 0) return { inserted: 0, duplicates: 0 };
    const minutes = new Map<string, UsageTotals>();
    let inserted = 0;
    this.#database.exec('BEGIN IMMEDIATE');
    try {
      for (const record of records) {
        const { changes } = this.#insertRecord.run(record.recordId, record.accountId, record.finishedAt);
        if (Number(changes) !== 1) continue;
        inserted++;
        // Sum per (account, minute) first: one upsert per minute instead of one per record.
        const key = `${minuteStart(record.finishedAt)}\u0000${record.accountId}`;
        let totals = minutes.get(key);
        if (totals === undefined) {
          totals = emptyTotals();
          minutes.set(key, totals);
        }
        addRecord(totals, record);
      }
      for (const [key, totals] of minutes) {
        const separator = key.indexOf('\u0000');
        this.#addMinute.run(
          key.slice(separator + 1),
          Number(key.slice(0, separator)),
          totals.conversions,
          totals.cpuMicros,
          totals.bytesIn,
          totals.bytesOut,
          totals.pixelsIn,
          totals.pixelsOut,
        );
      }
      this.#database.exec('COMMIT');
    } catch (cause) {
      if (this.#database.isTransaction) this.#database.exec('ROLLBACK');
      throw new PixelfleetError(
        'PF_ERR_STORAGE_UNAVAILABLE',
        `could not apply ${records.length} usage records to ${this.path}`,
        {
          cause,
        },
      );
    }
    return { inserted, duplicates: records.length - inserted };
  }

  async hasRecord(recordId: string): Promise<boolean> {
    this.#assertOpen();
    return this.#hasRecord.get(recordId) !== undefined;
  }

  async buckets(
    accountId: string,
    fromMs: number,
    toMs: number,
    granularity: UsageGranularity,
  ): Promise<StoredBucket[]> {
    this.#assertOpen();
    const statement = this.#buckets.get(granularity);
    if (statement === undefined) throw new RangeError(`unknown granularity ${granularity}`);
    return statement
      .all(accountId, fromMs, toMs)
      .map((row) => ({ startMs: Number(row.bucket_start), totals: totalsFromRow(row) }));
  }

  async totals(accountId: string, fromMs: number, toMs: number): Promise<UsageTotals> {
    this.#assertOpen();
    const row = this.#totals.get(accountId, fromMs, toMs);
    return row === undefined ? emptyTotals() : totalsFromRow(row);
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#database.close();
  }

  #assertOpen(): void {
    if (this.#closed)
      throw new PixelfleetError('PF_ERR_STORAGE_UNAVAILABLE', `the usage store ${this.path} is closed`);
  }
}
