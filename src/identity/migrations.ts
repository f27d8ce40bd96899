/**
 * Versioned schema migrations of the SQLite identity store, applied in order by the shared runner
 * (storage/sqlite.ts: one transaction, history in `schema_migrations`, a newer file refused). A
 * migration is history: once released it is never edited, only followed by a new one.
 */
import type { SqliteMigration } from '../storage/index.ts';
import { seedTiersSql } from './seed-tiers.ts';

export type Migration = SqliteMigration;

export const migrations: readonly Migration[] = [
  {
    version: 1,
    name: 'accounts, keys, tiers and the append-only audit log',
    sql: `
      CREATE TABLE tiers (
        name TEXT PRIMARY KEY,
        enabled INTEGER NOT NULL,
        rate_per_second REAL NOT NULL,
        burst INTEGER NOT NULL,
        concurrent_jobs INTEGER NOT NULL,
        max_input_bytes INTEGER NOT NULL,
        max_input_pixels INTEGER NOT NULL,
        monthly_conversions INTEGER,
        price_micro_usd_per_cpu_second INTEGER NOT NULL,
        price_micro_usd_per_gigabyte_in INTEGER NOT NULL,
        price_micro_usd_per_gigabyte_out INTEGER NOT NULL,
        built_in INTEGER NOT NULL DEFAULT 0,
        updated_at INTEGER NOT NULL
      ) STRICT;

      CREATE TABLE accounts (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        email TEXT,
        tier TEXT NOT NULL REFERENCES tiers (name),
        status TEXT NOT NULL CHECK (status IN ('active', 'closed')),
        created_at INTEGER NOT NULL,
        closed_at INTEGER
      ) STRICT;
      CREATE INDEX accounts_by_tier ON accounts (tier);

      CREATE TABLE api_keys (
        id TEXT PRIMARY KEY,
        account_id TEXT NOT NULL REFERENCES accounts (id),
        name TEXT,
        secret_hash BLOB NOT NULL CHECK (length(secret_hash) = 32),
        scopes TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        expires_at INTEGER,
        revoked_at INTEGER,
        revoked_reason TEXT
      ) STRICT;
      CREATE INDEX api_keys_by_account ON api_keys (account_id);

      CREATE TABLE audit_log (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        at INTEGER NOT NULL,
        actor TEXT NOT NULL,
        action TEXT NOT NULL,
        target TEXT NOT NULL,
        source_ip TEXT,
        details TEXT NOT NULL
      ) STRICT;
      CREATE INDEX audit_log_by_target ON audit_log (target);
      CREATE INDEX audit_log_by_at ON audit_log (at);

      -- The audit log is evidence: the database itself refuses to rewrite or erase it.
      CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
      BEGIN SELECT RAISE(ABORT, 'audit_log is append-only: UPDATE is not allowed'); END;
      CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
      BEGIN SELECT RAISE(ABORT, 'audit_log is append-only: DELETE is not allowed'); END;
    `,
  },
  {
    version: 2,
    name: 'built-in tiers: anonymous (disabled), free, pro, enterprise',
    sql: seedTiersSql('sqlite'),
  },
];
