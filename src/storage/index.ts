/** Local-disk building blocks: an fsynced, checksummed record log with snapshots, and its helpers. */

export { acquireDirectoryLock, type DirectoryLock } from './directory-lock.ts';
export { fsyncDirectory, writeFileAtomic } from './durable-file.ts';
export {
  openRecordLog,
  RecordLog,
  type RecordLogOptions,
  type RecordLogRecovery,
  type RecordLogStats,
} from './record-log.ts';
