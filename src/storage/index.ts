/**
 * Local-disk building blocks: an fsynced, checksummed record log with snapshots, its helpers, and
 * the shared way to open and migrate an embedded SQLite database.
 */

export { acquireDirectoryLock, type DirectoryLock, isProcessAlive } from './directory-lock.ts';
export { fsyncDirectory, writeFileAtomic } from './durable-file.ts';
export {
  openRecordLog,
  RecordLog,
  type RecordLogOptions,
  type RecordLogRecovery,
  type RecordLogStats,
} from './record-log.ts';
export {
  type ApplyMigrationsOptions,
  appliedMigrations,
  applyMigrations,
  openSqliteDatabase,
  type SqliteDatabaseOptions,
  type SqliteMigration,
} from './sqlite.ts';
