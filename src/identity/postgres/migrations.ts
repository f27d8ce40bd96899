/**
 * The PostgreSQL identity schema, version by version, beside the SQLite list in ../migrations.ts:
 * the same versions, names, tables and columns, each written in PostgreSQL's dialect (BIGINT epoch
 * milliseconds, BOOLEAN, BYTEA, an identity column for the audit id). A test compares the two
 * schemas as the engines report them, so they cannot drift. Like the SQLite list, a released
 * migration is history: it is never edited, only followed by a new one (in both lists).
 */
import { seedTiersSql } from '../seed-tiers.ts';

export interface PostgresMigration {
  version: number;
  name: string;
  sql: string;
}

export const postgresMigrations: readonly PostgresMigration[] = [
  {
    version: 1,
    name: 'accounts, keys, tiers and the append-only audit log',
    sql: `
      CREATE TABLE tiers (
        name TEXT PRIMARY KEY,
        enabled BOOLEAN NOT NULL,
        rate_per_second DOUBLE PRECISION NOT NULL,
        burst BIGINT NOT NULL,
        concurrent_jobs BIGINT NOT NULL,
        max_input_bytes BIGINT NOT NULL,
        max_input_pixels BIGINT NOT NULL,
        monthly_conversions BIGINT,
        price_micro_usd_per_cpu_second BIGINT NOT NULL,
        price_micro_usd_per_gigabyte_in BIGINT NOT NULL,
        price_micro_usd_per_gigabyte_out BIGINT NOT NULL,
        built_in BOOLEAN NOT NULL DEFAULT FALSE,
        updated_at BIGINT NOT NULL
      );

      CREATE TABLE accounts (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        email TEXT,
        tier TEXT NOT NULL REFERENCES tiers (name),
        status TEXT NOT NULL CHECK (status IN ('active', 'closed')),
        created_at BIGINT NOT NULL,
        closed_at BIGINT
      );
      CREATE INDEX accounts_by_tier ON accounts (tier);

      CREATE TABLE api_keys (
        id TEXT PRIMARY KEY,
        account_id TEXT NOT NULL REFERENCES accounts (id),
        name TEXT,
        secret_hash BYTEA NOT NULL CHECK (octet_length(secret_hash) = 32),
        scopes TEXT NOT NULL,
        created_at BIGINT NOT NULL,
        expires_at BIGINT,
        revoked_at BIGINT,
        revoked_reason TEXT
      );
      CREATE INDEX api_keys_by_account ON api_keys (account_id);

      CREATE TABLE audit_log (
        id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        at BIGINT NOT NULL,
        actor TEXT NOT NULL,
        action TEXT NOT NULL,
        target TEXT NOT NULL,
        source_ip TEXT,
        details TEXT NOT NULL
      );
      CREATE INDEX audit_log_by_target ON audit_log (target text_pattern_ops);
      CREATE INDEX audit_log_by_at ON audit_log (at);

      -- The audit log is evidence: the database itself refuses to rewrite or erase it.
      CREATE FUNCTION audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN
        RAISE EXCEPTION 'audit_log is append-only: % is not allowed', TG_OP
          USING ERRCODE = 'insufficient_privilege';
      END;
      $$;
      CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
        FOR EACH ROW EXECUTE FUNCTION audit_log_append_only();
      CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
        FOR EACH ROW EXECUTE FUNCTION audit_log_append_only();
      -- PostgreSQL can also empty a table without touching rows; refuse that too.
      CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log
        FOR EACH STATEMENT EXECUTE FUNCTION audit_log_append_only();
    `,
  },
  {
    version: 2,
    name: 'built-in tiers: anonymous (disabled), free, pro, enterprise',
    sql: seedTiersSql('postgres'),
  },
];
