/**
 * The on-disk layout of the embedded idempotency store (`<dataDir>/idempotency.db`), as
 * migrations for the shared SQLite runner (storage/sqlite.ts).
 *
 * One row per (scope, key). `expires_at` is the lease end of an in-progress marker and the
 * retention end of a completed entry, so one index serves both kinds of expiry. The running
 * total of stored bytes is kept by triggers in the same transaction as each change, so the byte
 * budget is checked without summing the table and stays exact across crashes and processes.
 */
import type { SqliteMigration } from '../../storage/index.ts';

const schema = `
CREATE TABLE entries (
  id          INTEGER PRIMARY KEY,
  scope       TEXT    NOT NULL,
  key         TEXT    NOT NULL,
  fingerprint TEXT    NOT NULL,
  token       TEXT    NOT NULL,
  state       TEXT    NOT NULL CHECK (state IN ('in-progress', 'completed')),
  created_at  INTEGER NOT NULL,
  expires_at  INTEGER NOT NULL,
  status      INTEGER,
  headers     TEXT,
  body        BLOB,
  size        INTEGER NOT NULL,
  UNIQUE (scope, key)
);
CREATE INDEX entries_by_expiry ON entries (expires_at);
CREATE INDEX entries_completed_by_age ON entries (created_at, id) WHERE state = 'completed';
CREATE TABLE totals (
  id           INTEGER PRIMARY KEY CHECK (id = 1),
  stored_bytes INTEGER NOT NULL
);
INSERT INTO totals (id, stored_bytes) VALUES (1, 0);
CREATE TRIGGER entries_count_insert AFTER INSERT ON entries BEGIN
  UPDATE totals SET stored_bytes = stored_bytes + NEW.size WHERE id = 1;
END;
CREATE TRIGGER entries_count_delete AFTER DELETE ON entries BEGIN
  UPDATE totals SET stored_bytes = stored_bytes - OLD.size WHERE id = 1;
END;
CREATE TRIGGER entries_count_update AFTER UPDATE OF size ON entries BEGIN
  UPDATE totals SET stored_bytes = stored_bytes - OLD.size + NEW.size WHERE id = 1;
END;
`;

export const idempotencyMigrations: readonly SqliteMigration[] = [
  { version: 1, name: 'entries with leases and retention, stored-bytes total', sql: schema },
];
