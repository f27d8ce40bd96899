/**
 * The `IdentityStore` on PostgreSQL, for operators who already run one: the same schema,
 * migrations and semantics as the embedded SQLite store, so both pass one contract suite.
 *
 * Each mutating method is one READ COMMITTED transaction that locks the rows it decides on
 * (`SELECT … FOR UPDATE` on the account before counting its live keys, on the key before
 * revoking it, on the tier before editing it), so concurrent writers on any number of api
 * servers queue behind each other exactly where SQLite's single write lock would have made them
 * wait, and no two concurrent issues can both squeeze past the live-key limit. The audit entry is
 * written in the same transaction as the change.
 *
 * With a `changeChannel`, each change is also announced with `pg_notify` inside its transaction:
 * PostgreSQL delivers the notification if and only if the write commits, in commit order, to
 * every `PostgresChangeBus` listening on the channel.
 */

import type pg from 'pg';
import { PixelfleetError } from '../../errors/index.ts';
import type { ChangeEvent } from '../change-bus.ts';
import { keyStatus } from '../keys.ts';
import {
  accountFromRow,
  auditFromRow,
  clampLimit,
  keyFromRow,
  notFound,
  tierColumns,
  tierFromRow,
} from '../rows.ts';
import { assertTierName, mergeTierLimits } from '../tiers.ts';
import type {
  Account,
  AccountQuery,
  ApiKey,
  AuditContext,
  AuditEntry,
  AuditQuery,
  Credential,
  IdentityStore,
  NewAccount,
  NewApiKey,
  Tier,
  TierLimits,
} from '../types.ts';
import {
  assertIdentifier,
  createPool,
  identityError,
  inTransaction,
  type PostgresConnectionOptions,
  type ResolvedConnectionOptions,
  resolveConnectionOptions,
} from './connection.ts';
import { appliedPostgresMigrations, applyPostgresMigrations } from './migrate.ts';
import { type PostgresMigration, postgresMigrations } from './migrations.ts';

export interface PostgresIdentityStoreOptions extends PostgresConnectionOptions {
  /** Epoch-ms clock for created/revoked/audit timestamps and expiry checks. */
  clock?: () => number;
  /** Announce every change on this LISTEN/NOTIFY channel, inside the write's transaction. */
  changeChannel?: string;
  /**
   * Longest the data-plane reads (`findCredential`, `getTier`) wait, connection included, before
   * failing so the edge cache can answer from a stale entry (default 1 s): a request should not
   * wait the full management timeout for a database that is not answering.
   */
  dataPlaneTimeoutMs?: number;
  /** Override the migration list (tests of the migration runner only). */
  migrations?: readonly PostgresMigration[];
  /** An idle pooled connection failed (the pool replaces it); default: ignored. */
  onConnectionError?: (error: Error) => void;
}

type Row = Record<string, unknown>;
type Queryable = Pick<pg.ClientBase, 'query'>;

/** PostgreSQL refuses NOTIFY payloads of 8000 bytes or more. */
const maxNotifyPayload = 7_900;

function unprefixed(row: Row, prefix: string): Row {
  const result: Row = {};
  for (const [column, value] of Object.entries(row)) {
    if (column.startsWith(prefix)) result[column.slice(prefix.length)] = value;
  }
  return result;
}

/** Every column of a table, prefixed, for the credential join. */
function prefixedColumns(table: string, prefix: string, columns: readonly string[]): string {
  return columns.map((column) => `${table}.${column} AS ${prefix}${column}`).join(', ');
}

const keyColumns = [
  'id',
  'account_id',
  'name',
  'secret_hash',
  'scopes',
  'created_at',
  'expires_at',
  'revoked_at',
  'revoked_reason',
];
const accountColumns = ['id', 'name', 'email', 'tier', 'status', 'created_at', 'closed_at'];
const allTierColumns = ['name', ...tierColumns.map(([, column]) => column), 'built_in', 'updated_at'];

const credentialQuery = `
  SELECT ${prefixedColumns('k', 'k_', keyColumns)}, ${prefixedColumns('a', 'a_', accountColumns)},
         ${prefixedColumns('t', 't_', allTierColumns)}
  FROM api_keys k JOIN accounts a ON a.id = k.account_id JOIN tiers t ON t.name = a.tier
  WHERE k.id = $1`;

/** A list query's conditions, joined by AND, with numbered parameters ($1, $2, …) in order. */
function filter() {
  const conditions: string[] = [];
  const parameters: unknown[] = [];
  return {
    conditions,
    parameters,
    /** Adds a parameter; returns its placeholder. */
    parameter(value: unknown): string {
      parameters.push(value);
      return `$${parameters.length}`;
    },
    where: (): string => (conditions.length > 0 ? `WHERE ${conditions.join(' AND ')}` : ''),
  };
}

export class PostgresIdentityStore implements IdentityStore {
  readonly #pool: pg.Pool;
  readonly #clock: () => number;
  readonly #changeChannel: string | undefined;
  readonly #dataPlaneTimeoutMs: number;
  #closed: Promise<void> | undefined;

  /** Use `PostgresIdentityStore.open`, which also migrates the schema. */
  private constructor(
    pool: pg.Pool,
    clock: () => number,
    changeChannel: string | undefined,
    dataPlaneTimeoutMs: number,
  ) {
    this.#pool = pool;
    this.#clock = clock;
    this.#changeChannel = changeChannel;
    this.#dataPlaneTimeoutMs = dataPlaneTimeoutMs;
  }

  /**
   * Connects, creates the schema if asked and applies pending migrations (once, even when many
   * servers start together). Rejects with PF_ERR_MANAGEMENT_UNAVAILABLE when PostgreSQL cannot
   * be reached within the connect timeout, PF_ERR_STORAGE_CORRUPT for a newer schema, and
   * RangeError for bad options.
   */
  static async open(options: PostgresIdentityStoreOptions): Promise<PostgresIdentityStore> {
    const resolved: ResolvedConnectionOptions = resolveConnectionOptions(options);
    if (options.changeChannel !== undefined) assertIdentifier('changeChannel', options.changeChannel);
    const dataPlaneTimeoutMs = options.dataPlaneTimeoutMs ?? 1_000;
    if (!Number.isInteger(dataPlaneTimeoutMs) || dataPlaneTimeoutMs < 1) {
      throw new RangeError(`dataPlaneTimeoutMs must be a positive integer, got ${dataPlaneTimeoutMs}`);
    }
    const clock = options.clock ?? Date.now;
    const pool = createPool(resolved, options.onConnectionError ?? (() => {}));
    try {
      await applyPostgresMigrations(pool, options.migrations ?? postgresMigrations, {
        schema: resolved.schema,
        clock,
      });
    } catch (error) {
      await pool.end().catch(() => {});
      throw error;
    }
    return new PostgresIdentityStore(pool, clock, options.changeChannel, dataPlaneTimeoutMs);
  }

  /** Versions recorded in `schema_migrations`, ascending. */
  async appliedMigrations(): Promise<number[]> {
    return this.#read(() => appliedPostgresMigrations(this.#pool));
  }

  /** Connections open and waiting, for metrics and tests. */
  poolStats(): { total: number; idle: number; waiting: number } {
    return { total: this.#pool.totalCount, idle: this.#pool.idleCount, waiting: this.#pool.waitingCount };
  }

  async createAccount(account: NewAccount, context: AuditContext): Promise<Account> {
    return this.#write(async (client) => {
      // FOR SHARE: the tier cannot be disabled between this check and the commit.
      const tier = await this.#tierRow(client, account.tier, 'FOR SHARE');
      if (tier === undefined) {
        throw new PixelfleetError('PF_ERR_INVALID_OPTION', `no tier named ${account.tier}`, {
          extensions: { option: 'tier' },
        });
      }
      if (account.tier === 'anonymous') {
        throw new PixelfleetError(
          'PF_ERR_INVALID_OPTION',
          'the anonymous tier serves key-less requests; it has no accounts',
          { extensions: { option: 'tier' } },
        );
      }
      if (!tier.enabled) {
        throw new PixelfleetError(
          'PF_ERR_CONFLICT',
          `tier ${account.tier} is disabled and accepts no new accounts`,
        );
      }
      const now = this.#clock();
      const inserted = await client.query(
        `INSERT INTO accounts (id, name, email, tier, status, created_at, closed_at)
         VALUES ($1, $2, $3, $4, 'active', $5, NULL)
         ON CONFLICT (id) DO NOTHING RETURNING *`,
        [account.id, account.name, account.email, account.tier, now],
      );
      if (inserted.rows.length === 0) {
        throw new PixelfleetError('PF_ERR_CONFLICT', `an account with id ${account.id} already exists`);
      }
      await this.#audit(client, context, now, 'account.create', `account:${account.id}`, {
        name: account.name,
        email: account.email,
        tier: account.tier,
      });
      return accountFromRow(inserted.rows[0] as Row);
    });
  }

  async getAccount(accountId: string): Promise<Account | undefined> {
    return this.#read(() => this.#accountRow(this.#pool, accountId));
  }

  async listAccounts(query: AccountQuery = {}): Promise<Account[]> {
    const limit = clampLimit(query.limit);
    return this.#read(async () => {
      const { conditions, parameters, parameter, where } = filter();
      if (query.status !== undefined) conditions.push(`status = ${parameter(query.status)}`);
      if (query.tier !== undefined) conditions.push(`tier = ${parameter(query.tier)}`);
      // Byte order, as SQLite sorts: pagination must not depend on the database's locale.
      if (query.after !== undefined) conditions.push(`id COLLATE "C" > ${parameter(query.after)}`);
      const result = await this.#pool.query(
        `SELECT * FROM accounts ${where()} ORDER BY id COLLATE "C" LIMIT ${parameter(limit)}`,
        parameters,
      );
      return result.rows.map(accountFromRow);
    });
  }

  async closeAccount(
    accountId: string,
    reason: string | null,
    context: AuditContext,
  ): Promise<{ account: Account; revokedKeyIds: string[] }> {
    return this.#write(async (client) => {
      const account = await this.#accountRow(client, accountId, 'FOR UPDATE');
      if (account === undefined) throw notFound(`no account ${accountId}`);
      if (account.status === 'closed')
        throw new PixelfleetError('PF_ERR_CONFLICT', `account ${accountId} is already closed`);
      const now = this.#clock();
      const revoked = await client.query(
        `UPDATE api_keys SET revoked_at = $1, revoked_reason = 'account closed'
         WHERE account_id = $2 AND revoked_at IS NULL RETURNING id`,
        [now, accountId],
      );
      const revokedKeyIds = revoked.rows.map((row) => row.id as string).sort();
      const closed = await client.query(
        `UPDATE accounts SET status = 'closed', closed_at = $1 WHERE id = $2 RETURNING *`,
        [now, accountId],
      );
      await this.#audit(client, context, now, 'account.close', `account:${accountId}`, {
        reason,
        revokedKeyIds,
      });
      await this.#announce(client, { type: 'account.closed', at: now, accountId, revokedKeyIds });
      return { account: accountFromRow(closed.rows[0] as Row), revokedKeyIds };
    });
  }

  async changeAccountTier(accountId: string, tier: string, context: AuditContext): Promise<Account> {
    return this.#write(async (client) => {
      const account = await this.#accountRow(client, accountId, 'FOR UPDATE');
      if (account === undefined) throw notFound(`no account ${accountId}`);
      if (account.status === 'closed')
        throw new PixelfleetError('PF_ERR_CONFLICT', `account ${accountId} is closed`);
      if ((await this.#tierRow(client, tier, 'FOR SHARE')) === undefined || tier === 'anonymous') {
        throw new PixelfleetError('PF_ERR_INVALID_OPTION', `no tier named ${tier} for accounts`, {
          extensions: { option: 'tier' },
        });
      }
      const now = this.#clock();
      const changed = await client.query('UPDATE accounts SET tier = $1 WHERE id = $2 RETURNING *', [
        tier,
        accountId,
      ]);
      await this.#audit(client, context, now, 'account.change-tier', `account:${accountId}`, {
        from: account.tier,
        to: tier,
      });
      await this.#announce(client, { type: 'account.tier-changed', at: now, accountId, tier });
      return accountFromRow(changed.rows[0] as Row);
    });
  }

  async insertKey(key: NewApiKey, limits: { maxLiveKeys: number }, context: AuditContext): Promise<ApiKey> {
    if (key.secretHash.length !== 32) throw new RangeError('secretHash must be a 32-byte SHA-256 digest');
    return this.#write(async (client) => {
      // The account row lock serialises every issue for this account: the count below stays true.
      const account = await this.#accountRow(client, key.accountId, 'FOR UPDATE');
      if (account === undefined) throw notFound(`no account ${key.accountId}`);
      if (account.status === 'closed') {
        throw new PixelfleetError(
          'PF_ERR_CONFLICT',
          `account ${key.accountId} is closed; it cannot get new keys`,
        );
      }
      const now = this.#clock();
      const liveKeys = (await this.#keysOf(client, key.accountId)).filter(
        (existing) => keyStatus(existing, now) === 'live',
      );
      if (liveKeys.length >= limits.maxLiveKeys) {
        throw new PixelfleetError(
          'PF_ERR_KEY_LIMIT_REACHED',
          `account ${key.accountId} already has ${liveKeys.length} live keys (${liveKeys
            .map((live) => live.id)
            .join(', ')}); rotation allows at most ${limits.maxLiveKeys}: revoke one before issuing another`,
          { extensions: { liveKeyIds: liveKeys.map((live) => live.id), maxLiveKeys: limits.maxLiveKeys } },
        );
      }
      const inserted = await client.query(
        `INSERT INTO api_keys (id, account_id, name, secret_hash, scopes, created_at, expires_at, revoked_at, revoked_reason)
         VALUES ($1, $2, $3, $4, $5, $6, $7, NULL, NULL)
         ON CONFLICT (id) DO NOTHING RETURNING *`,
        [
          key.id,
          key.accountId,
          key.name,
          Buffer.from(key.secretHash.buffer, key.secretHash.byteOffset, key.secretHash.byteLength),
          JSON.stringify(key.scopes),
          now,
          key.expiresAt,
        ],
      );
      if (inserted.rows.length === 0) {
        throw new PixelfleetError('PF_ERR_CONFLICT', `a key with id ${key.id} already exists`);
      }
      await this.#audit(client, context, now, 'key.issue', `key:${key.id}`, {
        accountId: key.accountId,
        name: key.name,
        scopes: key.scopes,
        expiresAt: key.expiresAt,
        rotatingWith: liveKeys.map((live) => live.id),
      });
      await this.#announce(client, { type: 'key.issued', at: now, keyId: key.id, accountId: key.accountId });
      return keyFromRow(inserted.rows[0] as Row);
    });
  }

  async revokeKey(keyId: string, reason: string | null, context: AuditContext): Promise<ApiKey> {
    return this.#write(async (client) => {
      const key = await this.#keyRow(client, keyId, 'FOR UPDATE');
      if (key === undefined) throw notFound(`no key ${keyId}`);
      if (key.revokedAt !== null)
        throw new PixelfleetError('PF_ERR_CONFLICT', `key ${keyId} is already revoked`);
      const now = this.#clock();
      const revoked = await client.query(
        'UPDATE api_keys SET revoked_at = $1, revoked_reason = $2 WHERE id = $3 RETURNING *',
        [now, reason, keyId],
      );
      await this.#audit(client, context, now, 'key.revoke', `key:${keyId}`, {
        accountId: key.accountId,
        reason,
      });
      await this.#announce(client, {
        type: 'key.revoked',
        at: now,
        keyId,
        accountId: key.accountId,
        reason,
      });
      return keyFromRow(revoked.rows[0] as Row);
    });
  }

  async getKey(keyId: string): Promise<ApiKey | undefined> {
    return this.#read(() => this.#keyRow(this.#pool, keyId));
  }

  async listKeys(accountId: string): Promise<ApiKey[]> {
    return this.#read(() => this.#keysOf(this.#pool, accountId));
  }

  async findCredential(keyId: string): Promise<Credential | undefined> {
    return this.#dataPlaneRead(async () => {
      const result = await this.#pool.query(credentialQuery, [keyId]);
      const row = result.rows[0] as Row | undefined;
      if (row === undefined) return undefined;
      const keyRow = unprefixed(row, 'k_');
      return {
        key: keyFromRow(keyRow),
        secretHash: new Uint8Array(keyRow.secret_hash as Buffer),
        account: accountFromRow(unprefixed(row, 'a_')),
        tier: tierFromRow(unprefixed(row, 't_')),
      };
    });
  }

  async getTier(name: string): Promise<Tier | undefined> {
    return this.#dataPlaneRead(() => this.#tierRow(this.#pool, name));
  }

  async listTiers(): Promise<Tier[]> {
    return this.#read(async () => {
      const result = await this.#pool.query('SELECT * FROM tiers ORDER BY rate_per_second, name COLLATE "C"');
      return result.rows.map(tierFromRow);
    });
  }

  async setTier(name: string, changes: Partial<TierLimits>, context: AuditContext): Promise<Tier> {
    assertTierName(name);
    return this.#write(async (client) => {
      const current = await this.#tierRow(client, name, 'FOR UPDATE');
      const merged = mergeTierLimits(name, current, changes);
      const now = this.#clock();
      const values = tierColumns.map(([field]) => merged[field]);
      let written: pg.QueryResult;
      if (current === undefined) {
        // Two admins creating the same tier at once: the loser gets a unique violation (409).
        written = await client.query(
          `INSERT INTO tiers (name, ${tierColumns.map(([, column]) => column).join(', ')}, built_in, updated_at)
           VALUES ($1, ${tierColumns.map((_, index) => `$${index + 2}`).join(', ')}, FALSE, $${tierColumns.length + 2})
           RETURNING *`,
          [name, ...values, now],
        );
      } else {
        written = await client.query(
          `UPDATE tiers SET ${tierColumns.map(([, column], index) => `${column} = $${index + 1}`).join(', ')},
             updated_at = $${tierColumns.length + 1}
           WHERE name = $${tierColumns.length + 2} RETURNING *`,
          [...values, now, name],
        );
      }
      const changed: Record<string, { from: unknown; to: unknown }> = {};
      for (const [field] of tierColumns) {
        const before = current?.[field];
        if (before !== merged[field]) changed[field] = { from: before ?? null, to: merged[field] };
      }
      await this.#audit(
        client,
        context,
        now,
        current === undefined ? 'tier.create' : 'tier.update',
        `tier:${name}`,
        { changed },
      );
      await this.#announce(client, { type: 'tier.changed', at: now, tier: name });
      return tierFromRow(written.rows[0] as Row);
    });
  }

  async queryAudit(query: AuditQuery = {}): Promise<AuditEntry[]> {
    const limit = clampLimit(query.limit);
    return this.#read(async () => {
      const { conditions, parameters, parameter, where } = filter();
      if (query.actor !== undefined) conditions.push(`actor = ${parameter(query.actor)}`);
      if (query.action !== undefined) conditions.push(`action = ${parameter(query.action)}`);
      if (query.target !== undefined) {
        if (query.target.endsWith('*')) {
          const prefix = query.target.slice(0, -1).replace(/[\\%_]/g, (character) => `\\${character}`);
          conditions.push(`target LIKE ${parameter(`${prefix}%`)} ESCAPE '\\'`);
        } else {
          conditions.push(`target = ${parameter(query.target)}`);
        }
      }
      if (query.since !== undefined) conditions.push(`at >= ${parameter(query.since)}`);
      if (query.until !== undefined) conditions.push(`at < ${parameter(query.until)}`);
      if (query.before !== undefined) conditions.push(`id < ${parameter(query.before)}`);
      const result = await this.#pool.query(
        `SELECT * FROM audit_log ${where()} ORDER BY id DESC LIMIT ${parameter(limit)}`,
        parameters,
      );
      return result.rows.map(auditFromRow);
    });
  }

  /** Waits for checked-out connections to come back, then closes the pool. Idempotent. */
  close(): Promise<void> {
    this.#closed ??= this.#pool.end().catch(() => {});
    return this.#closed;
  }

  async #accountRow(
    client: Queryable,
    accountId: string,
    lock: '' | 'FOR UPDATE' = '',
  ): Promise<Account | undefined> {
    const result = await client.query(`SELECT * FROM accounts WHERE id = $1 ${lock}`, [accountId]);
    const row = result.rows[0] as Row | undefined;
    return row === undefined ? undefined : accountFromRow(row);
  }

  async #keyRow(client: Queryable, keyId: string, lock: '' | 'FOR UPDATE' = ''): Promise<ApiKey | undefined> {
    const result = await client.query(`SELECT * FROM api_keys WHERE id = $1 ${lock}`, [keyId]);
    const row = result.rows[0] as Row | undefined;
    return row === undefined ? undefined : keyFromRow(row);
  }

  async #keysOf(client: Queryable, accountId: string): Promise<ApiKey[]> {
    const result = await client.query(
      'SELECT * FROM api_keys WHERE account_id = $1 ORDER BY created_at, id COLLATE "C"',
      [accountId],
    );
    return result.rows.map(keyFromRow);
  }

  async #tierRow(
    client: Queryable,
    name: string,
    lock: '' | 'FOR UPDATE' | 'FOR SHARE' = '',
  ): Promise<Tier | undefined> {
    const result = await client.query(`SELECT * FROM tiers WHERE name = $1 ${lock}`, [name]);
    const row = result.rows[0] as Row | undefined;
    return row === undefined ? undefined : tierFromRow(row);
  }

  async #audit(
    client: Queryable,
    context: AuditContext,
    at: number,
    action: string,
    target: string,
    details: Record<string, unknown>,
  ): Promise<void> {
    await client.query(
      'INSERT INTO audit_log (at, actor, action, target, source_ip, details) VALUES ($1, $2, $3, $4, $5, $6)',
      [at, context.actor, action, target, context.sourceIp, JSON.stringify(details)],
    );
  }

  /** Queues the change's notification; PostgreSQL sends it at COMMIT and drops it on ROLLBACK. */
  async #announce(client: Queryable, event: ChangeEvent): Promise<void> {
    if (this.#changeChannel === undefined) return;
    let payload = JSON.stringify(event);
    if (Buffer.byteLength(payload) > maxNotifyPayload && event.type === 'account.closed') {
      // The account's tombstone already refuses every one of its keys; the list is a courtesy.
      payload = JSON.stringify({ ...event, revokedKeyIds: [] });
    }
    await client.query('SELECT pg_notify($1, $2)', [this.#changeChannel, payload]);
  }

  async #read<T>(work: () => Promise<T>): Promise<T> {
    try {
      return await work();
    } catch (cause) {
      throw identityError(cause);
    }
  }

  /**
   * A read on the request path: abandoned after `dataPlaneTimeoutMs` (the query itself still
   * ends within the pool's own timeouts, so abandoned work cannot pile up without bound).
   */
  async #dataPlaneRead<T>(work: () => Promise<T>): Promise<T> {
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () => reject(new Error(`no answer within ${this.#dataPlaneTimeoutMs} ms`)),
        this.#dataPlaneTimeoutMs,
      );
    });
    try {
      return await this.#read(() => Promise.race([work(), deadline]));
    } finally {
      clearTimeout(timer);
    }
  }

  #write<T>(work: (client: pg.PoolClient) => Promise<T>): Promise<T> {
    return inTransaction(this.#pool, work);
  }
}
