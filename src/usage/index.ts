/**
 * Usage metering: every finished conversion becomes one usage record, counted exactly once
 * (deduplicated by record id = job id, across redeliveries, replays and restarts), summed per
 * account per minute, flushed in batches to a durable aggregate store, and queryable per
 * minute/hour/day/month including not-yet-flushed usage. See usage-meter.ts for the guarantees.
 *
 * On disk, under the data directory:
 *
 *   usage.db                      SQLite (WAL): `usage_records` (every counted record id) and
 *                                 `usage_minutes` (sums per account per UTC minute)
 *   usage/LOCK                    pid of the process that has the meter open
 *   usage/segments/<window>-<seq>.ndjson      the active segment, appended to
 *   usage/segments/<window>-<seq>.ndjson.gz   sealed segments: the billing job's input
 *
 * Segment format (for billing). Each line is one UTF-8 JSON object terminated by `\n`, the fields
 * always in this order:
 *
 *   {"recordId":"job-…","accountId":"…","keyId":"…","tier":"…","bytesIn":0,"bytesOut":0,
 *    "pixelsIn":0,"pixelsOut":0,"cpuMicros":0,"inputFormat":"jpeg","outputFormat":"webp",
 *    "startedAt":<epoch ms>,"finishedAt":<epoch ms>}
 *
 * All counts are non-negative integers; times are integer epoch milliseconds; usage belongs to
 * the UTC minute of `finishedAt`. Across all segments of a data directory each recordId appears
 * at most once. `<window>` (`YYYY-MM-DDTHH-mm-ssZ`) is the start of the recording window
 * (`rotateEveryMs`, default one UTC hour) in which the lines were *written*, and `<seq>` (8+
 * digits) orders segments across restarts; a window may have several segments (size rotation,
 * restarts). Only `.ndjson.gz` files are complete and immutable: billing reads those, and never
 * the plain `.ndjson` being written. A record finished in period P is written at or after its
 * `finishedAt`, so billing for P reads the windows from P's start until P's end plus the
 * largest expected delay between finishing and recording, and filters on `finishedAt`. Segments
 * from several api servers may be combined: each server has its own data directory and record
 * ids are global, so billing must still deduplicate by recordId across servers if a job could be
 * finished on two of them.
 */

export { MonthToDateCache } from './month-to-date-cache.ts';
export {
  listSegments,
  parseSegmentFileName,
  readSegment,
  readUnsealedSegment,
  type SegmentFile,
  sealSegment,
  segmentFileName,
  type UnsealedSegmentContents,
} from './segment-files.ts';
export type { SegmentWriterStats } from './segment-writer.ts';
export { SqliteUsageStore, type SqliteUsageStoreOptions } from './sqlite-store.ts';
export { bucketStart, minuteStart, monthStart, nextMonthStart } from './time-buckets.ts';
export { addRecord, addTotals, emptyTotals, totalsFields } from './totals.ts';
export {
  type ApplyOutcome,
  type RecordOutcome,
  type StoredBucket,
  type UsageBucket,
  type UsageGranularity,
  type UsageQuery,
  type UsageRecord,
  type UsageReport,
  type UsageStore,
  type UsageTotals,
  usageGranularities,
} from './types.ts';
export {
  openUsageMeter,
  UsageMeter,
  type UsageMeterOptions,
  type UsageMeterRecovery,
  type UsageMeterStats,
} from './usage-meter.ts';
export { usageReport, validateUsageQuery } from './usage-query.ts';
export {
  decodeUsageRecordLine,
  encodeUsageRecordLine,
  usageRecordProblem,
  validateUsageRecord,
} from './usage-record.ts';
