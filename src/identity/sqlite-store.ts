/**
 * The embedded `IdentityStore`: one SQLite file (`<dataDir>/identity.db`) through Node's
 * `node:sqlite`, in WAL mode so data-plane reads never wait behind a management write.
 *
 * Each mutating method is one `BEGIN IMMEDIATE` transaction that takes the write lock up front,
 * re-reads what it checks (live-key count, account status), applies the change and appends its
 * audit entry, then commits with `synchronous=FULL`: an acknowledged management write survives a
 * power cut. The methods are async to match the interface a networked engine needs; the work
 * inside them is synchronous, which also means no two transactions of this process interleave.
 */
import { join } from 'node:path';
import type { DatabaseSync, SQLInputValue } from 'node:sqlite';
import { isPixelfleetError, PixelfleetError } from '../errors/index.ts';
import {
  applyMigrations,
  appliedMigrations as migrationHistory,
  openSqliteDatabase,
} from '../storage/index.ts';
import { keyStatus } from './keys.ts';
import { migrations as identityMigrations, type Migration } from './migrations.ts';
import {
  accountFromRow,
  auditFromRow,
  clampLimit,
  keyFromRow,
  notFound,
  tierColumns,
  tierFromRow,
} from './rows.ts';
import { assertTierName, mergeTierLimits } from './tiers.ts';
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
} from './types.ts';

export interface SqliteIdentityStoreOptions {
  /** Path of the database file, or `:memory:`. */
  path: string;
  /** Epoch-ms clock for created/revoked/audit timestamps and expiry checks. */
  clock?: () => number;
  /** How long a write waits for another process's write lock before failing (ms). */
  busyTimeoutMs?: number;
  /** Override the migration list (tests of the migration runner only). */
  migrations?: readonly Migration[];
}

export class SqliteIdentityStore implements IdentityStore {
  readonly path: string;
  readonly #database: DatabaseSync;
  readonly #clock: () => number;

  constructor(options: SqliteIdentityStoreOptions) {
    this.path = options.path;
    this.#clock = options.clock ?? Date.now;
    try {
      this.#database = openSqliteDatabase({
        path: options.path,
        busyTimeoutMs: options.busyTimeoutMs,
        synchronous: 'FULL',
      });
    } catch (cause) {
      throw unavailableAtStart(cause);
    }
    try {
      applyMigrations(this.#database, options.migrations ?? identityMigrations, {
        component: 'identity store',
        clock: this.#clock,
      });
    } catch (cause) {
      this.#database.close();
      throw unavailableAtStart(cause);
    }
  }

  /** Versions recorded in `schema_migrations`, ascending. */
  appliedMigrations(): number[] {
    return migrationHistory(this.#database);
  }

  async createAccount(account: NewAccount, context: AuditContext): Promise<Account> {
    return this.#write(() => {
      const tier = this.#tierRow(account.tier);
      if (tier === undefined) {
        throw new PixelfleetError('PF_ERR_INVALID_OPTION', `no tier named ${account.tier}`, {
          extensions: { option: 'tier' },
        });
      }
      if (account.tier === 'anonymous') {
        throw new PixelfleetError(
          'PF_ERR_INVALID_OPTION',
          'the anonymous tier serves key-less requests; it has no accounts',
          {
            extensions: { option: 'tier' },
          },
        );
      }
      if (!tier.enabled) {
        throw new PixelfleetError(
          'PF_ERR_CONFLICT',
          `tier ${account.tier} is disabled and accepts no new accounts`,
        );
      }
      if (this.#database.prepare('SELECT 1 FROM accounts WHERE id = ?').get(account.id) !== undefined) {
        throw new PixelfleetError('PF_ERR_CONFLICT', `an account with id ${account.id} already exists`);
      }
      const now = this.#clock();
      this.#database
        .prepare(
          `INSERT INTO accounts (id, name, email, tier, status, created_at, closed_at)
           VALUES (?, ?, ?, ?, 'active', ?, NULL)`,
        )
        .run(account.id, account.name, account.email, account.tier, now);
      this.#audit(context, now, 'account.create', `account:${account.id}`, {
        name: account.name,
        email: account.email,
        tier: account.tier,
      });
      return this.#accountRow(account.id)!;
    });
  }

  async getAccount(accountId: string): Promise<Account | undefined> {
    return this.#read(() => this.#accountRow(accountId));
  }

  async listAccounts(query: AccountQuery = {}): Promise<Account[]> {
    const limit = clampLimit(query.limit);
    return this.#read(() => {
      const conditions: string[] = [];
      const parameters: SQLInputValue[] = [];
      if (query.status !== undefined) {
        conditions.push('status = ?');
        parameters.push(query.status);
      }
      if (query.tier !== undefined) {
        conditions.push('tier = ?');
        parameters.push(query.tier);
      }
      if (query.after !== undefined) {
        conditions.push('id > ?');
        parameters.push(query.after);
      }
      const where = conditions.length > 0 ? `WHERE ${conditions.join(' AND ')}` : '';
      return this.#database
        .prepare(`SELECT * FROM accounts ${where} ORDER BY id LIMIT ?`)
        .all(...parameters, limit)
        .map(accountFromRow);
    });
  }

  async closeAccount(
    accountId: string,
    reason: string | null,
    context: AuditContext,
  ): Promise<{ account: Account; revokedKeyIds: string[] }> {
    return this.#write(() => {
      const account = this.#accountRow(accountId);
      if (account === undefined) throw notFound(`no account ${accountId}`);
      if (account.status === 'closed')
        throw new PixelfleetError('PF_ERR_CONFLICT', `account ${accountId} is already closed`);
      const now = this.#clock();
      const revokedKeyIds = this.#database
        .prepare('SELECT id FROM api_keys WHERE account_id = ? AND revoked_at IS NULL ORDER BY id')
        .all(accountId)
        .map((row) => row.id as string);
      this.#database
        .prepare(
          `UPDATE api_keys SET revoked_at = ?, revoked_reason = 'account closed' WHERE account_id = ? AND revoked_at IS NULL`,
        )
        .run(now, accountId);
      this.#database
        .prepare(`UPDATE accounts SET status = 'closed', closed_at = ? WHERE id = ?`)
        .run(now, accountId);
      this.#audit(context, now, 'account.close', `account:${accountId}`, { reason, revokedKeyIds });
      return { account: this.#accountRow(accountId)!, revokedKeyIds };
    });
  }

  async changeAccountTier(accountId: string, tier: string, context: AuditContext): Promise<Account> {
    return this.#write(() => {
      const account = this.#accountRow(accountId);
      if (account === undefined) throw notFound(`no account ${accountId}`);
      if (account.status === 'closed')
        throw new PixelfleetError('PF_ERR_CONFLICT', `account ${accountId} is closed`);
      if (this.#tierRow(tier) === undefined || tier === 'anonymous') {
        throw new PixelfleetError('PF_ERR_INVALID_OPTION', `no tier named ${tier} for accounts`, {
          extensions: { option: 'tier' },
        });
      }
      const now = this.#clock();
      this.#database.prepare('UPDATE accounts SET tier = ? WHERE id = ?').run(tier, accountId);
      this.#audit(context, now, 'account.change-tier', `account:${accountId}`, {
        from: account.tier,
        to: tier,
      });
      return this.#accountRow(accountId)!;
    });
  }

  async insertKey(key: NewApiKey, limits: { maxLiveKeys: number }, context: AuditContext): Promise<ApiKey> {
    if (key.secretHash.length !== 32) throw new RangeError('secretHash must be a 32-byte SHA-256 digest');
    return this.#write(() => {
      const account = this.#accountRow(key.accountId);
      if (account === undefined) throw notFound(`no account ${key.accountId}`);
      if (account.status === 'closed') {
        throw new PixelfleetError(
          'PF_ERR_CONFLICT',
          `account ${key.accountId} is closed; it cannot get new keys`,
        );
      }
      const now = this.#clock();
      const liveKeys = this.#keysOf(key.accountId).filter((existing) => keyStatus(existing, now) === 'live');
      if (liveKeys.length >= limits.maxLiveKeys) {
        throw new PixelfleetError(
          'PF_ERR_KEY_LIMIT_REACHED',
          `account ${key.accountId} already has ${liveKeys.length} live keys (${liveKeys
            .map((live) => live.id)
            .join(', ')}); rotation allows at most ${limits.maxLiveKeys}: revoke one before issuing another`,
          { extensions: { liveKeyIds: liveKeys.map((live) => live.id), maxLiveKeys: limits.maxLiveKeys } },
        );
      }
      if (this.#database.prepare('SELECT 1 FROM api_keys WHERE id = ?').get(key.id) !== undefined) {
        throw new PixelfleetError('PF_ERR_CONFLICT', `a key with id ${key.id} already exists`);
      }
      this.#database
        .prepare(
          `INSERT INTO api_keys (id, account_id, name, secret_hash, scopes, created_at, expires_at, revoked_at, revoked_reason)
           VALUES (?, ?, ?, ?, ?, ?, ?, NULL, NULL)`,
        )
        .run(key.id, key.accountId, key.name, key.secretHash, JSON.stringify(key.scopes), now, key.expiresAt);
      this.#audit(context, now, 'key.issue', `key:${key.id}`, {
        accountId: key.accountId,
        name: key.name,
        scopes: key.scopes,
        expiresAt: key.expiresAt,
        rotatingWith: liveKeys.map((live) => live.id),
      });
      return this.#keyRow(key.id)!;
    });
  }

  async revokeKey(keyId: string, reason: string | null, context: AuditContext): Promise<ApiKey> {
    return this.#write(() => {
      const key = this.#keyRow(keyId);
      if (key === undefined) throw notFound(`no key ${keyId}`);
      if (key.revokedAt !== null)
        throw new PixelfleetError('PF_ERR_CONFLICT', `key ${keyId} is already revoked`);
      const now = this.#clock();
      this.#database
        .prepare('UPDATE api_keys SET revoked_at = ?, revoked_reason = ? WHERE id = ?')
        .run(now, reason, keyId);
      this.#audit(context, now, 'key.revoke', `key:${keyId}`, { accountId: key.accountId, reason });
      return this.#keyRow(keyId)!;
    });
  }

  async getKey(keyId: string): Promise<ApiKey | undefined> {
    return this.#read(() => this.#keyRow(keyId));
  }

  async listKeys(accountId: string): Promise<ApiKey[]> {
    return this.#read(() => this.#keysOf(accountId));
  }

  async findCredential(keyId: string): Promise<Credential | undefined> {
    return this.#read(() => {
      const keyRow = this.#database.prepare('SELECT * FROM api_keys WHERE id = ?').get(keyId);
      if (keyRow === undefined) return undefined;
      const account = this.#accountRow(keyRow.account_id as string)!;
      const tier = this.#tierRow(account.tier)!;
      return { key: keyFromRow(keyRow), secretHash: keyRow.secret_hash as Uint8Array, account, tier };
    });
  }

  async getTier(name: string): Promise<Tier | undefined> {
    return this.#read(() => this.#tierRow(name));
  }

  async listTiers(): Promise<Tier[]> {
    return this.#read(() =>
      this.#database.prepare('SELECT * FROM tiers ORDER BY rate_per_second, name').all().map(tierFromRow),
    );
  }

  async setTier(name: string, changes: Partial<TierLimits>, context: AuditContext): Promise<Tier> {
    assertTierName(name);
    return this.#write(() => {
      const current = this.#tierRow(name);
      const merged = mergeTierLimits(name, current, changes);
      const now = this.#clock();
      const values = tierColumns.map(([field]) => {
        const value = merged[field];
        return typeof value === 'boolean' ? (value ? 1 : 0) : value;
      });
      if (current === undefined) {
        this.#database
          .prepare(
            `INSERT INTO tiers (name, ${tierColumns.map(([, column]) => column).join(', ')}, built_in, updated_at)
             VALUES (?, ${tierColumns.map(() => '?').join(', ')}, 0, ?)`,
          )
          .run(name, ...values, now);
      } else {
        this.#database
          .prepare(
            `UPDATE tiers SET ${tierColumns.map(([, column]) => `${column} = ?`).join(', ')}, updated_at = ? WHERE name = ?`,
          )
          .run(...values, now, name);
      }
      const changed: Record<string, { from: unknown; to: unknown }> = {};
      for (const [field] of tierColumns) {
        const before = current?.[field];
        if (before !== merged[field]) changed[field] = { from: before ?? null, to: merged[field] };
      }
      this.#audit(context, now, current === undefined ? 'tier.create' : 'tier.update', `tier:${name}`, {
        changed,
      });
      return this.#tierRow(name)!;
    });
  }

  async queryAudit(query: AuditQuery = {}): Promise<AuditEntry[]> {
    const limit = clampLimit(query.limit);
    return this.#read(() => {
      const conditions: string[] = [];
      const parameters: SQLInputValue[] = [];
      if (query.actor !== undefined) {
        conditions.push('actor = ?');
        parameters.push(query.actor);
      }
      if (query.action !== undefined) {
        conditions.push('action = ?');
        parameters.push(query.action);
      }
      if (query.target !== undefined) {
        if (query.target.endsWith('*')) {
          conditions.push(`target LIKE ? ESCAPE '\\'`);
          parameters.push(`${query.target.slice(0, -1).replace(/[\\%_]/g, (c) => `\\${c}`)}%`);
        } else {
          conditions.push('target = ?');
          parameters.push(query.target);
        }
      }
      if (query.since !== undefined) {
        conditions.push('at >= ?');
        parameters.push(query.since);
      }
      if (query.until !== undefined) {
        conditions.push('at < ?');
        parameters.push(query.until);
      }
      if (query.before !== undefined) {
        conditions.push('id < ?');
        parameters.push(query.before);
      }
      const where = conditions.length > 0 ? `WHERE ${conditions.join(' AND ')}` : '';
      return this.#database
        .prepare(`SELECT * FROM audit_log ${where} ORDER BY id DESC LIMIT ?`)
        .all(...parameters, limit)
        .map(auditFromRow);
    });
  }

  async close(): Promise<void> {
    if (this.#database.isOpen) this.#database.close();
  }

  #accountRow(accountId: string): Account | undefined {
    const row = this.#database.prepare('SELECT * FROM accounts WHERE id = ?').get(accountId);
    return row === undefined ? undefined : accountFromRow(row);
  }

  #keyRow(keyId: string): ApiKey | undefined {
    const row = this.#database.prepare('SELECT * FROM api_keys WHERE id = ?').get(keyId);
    return row === undefined ? undefined : keyFromRow(row);
  }

  #keysOf(accountId: string): ApiKey[] {
    return this.#database
      .prepare('SELECT * FROM api_keys WHERE account_id = ? ORDER BY created_at, id')
      .all(accountId)
      .map(keyFromRow);
  }

  #tierRow(name: string): Tier | undefined {
    const row = this.#database.prepare('SELECT * FROM tiers WHERE name = ?').get(name);
    return row === undefined ? undefined : tierFromRow(row);
  }

  #audit(
    context: AuditContext,
    at: number,
    action: string,
    target: string,
    details: Record<string, unknown>,
  ): void {
    this.#database
      .prepare(
        'INSERT INTO audit_log (at, actor, action, target, source_ip, details) VALUES (?, ?, ?, ?, ?, ?)',
      )
      .run(at, context.actor, action, target, context.sourceIp, JSON.stringify(details));
  }

  #read<T>(work: () => T): T {
    try {
      return work();
    } catch (cause) {
      throw unavailable(cause);
    }
  }

  #write<T>(work: () => T): T {
    try {
      this.#database.exec('BEGIN IMMEDIATE');
    } catch (cause) {
      throw unavailable(cause);
    }
    try {
      const result = work();
      this.#database.exec('COMMIT');
      return result;
    } catch (cause) {
      if (this.#database.isTransaction) this.#database.exec('ROLLBACK');
      throw unavailable(cause);
    }
  }
}

/** Domain errors pass through; anything SQLite throws means the store cannot serve right now. */
function unavailable(cause: unknown): unknown {
  if (isPixelfleetError(cause) || cause instanceof RangeError) return cause;
  return new PixelfleetError(
    'PF_ERR_MANAGEMENT_UNAVAILABLE',
    `identity store: ${(cause as Error)?.message ?? cause}`,
    {
      cause,
    },
  );
}

/**
 * Callers of the identity store handle one code for "cannot serve now"; bad options (RangeError)
 * and a database newer than this build (PF_ERR_STORAGE_CORRUPT) keep theirs, as they need an
 * operator rather than a retry.
 */
function unavailableAtStart(cause: unknown): unknown {
  if (!isPixelfleetError(cause, 'PF_ERR_STORAGE_UNAVAILABLE')) return cause;
  return new PixelfleetError('PF_ERR_MANAGEMENT_UNAVAILABLE', cause.message, { cause });
}

/** Opens (creating and migrating if needed) `<dataDir>/identity.db`. */
export function openIdentityStore(dataDir: string, options: Omit<SqliteIdentityStoreOptions, 'path'> = {}) {
  return new SqliteIdentityStore({ ...options, path: join(dataDir, 'identity.db') });
}
