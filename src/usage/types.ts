/**
 * The shapes usage metering deals in: the usage record of one finished conversion, the sums kept
 * per account and minute, the query answers, and `UsageStore`, the durable aggregate store behind
 * the meter (SQLite today, the Dynamo-style replicated store later).
 */

/** One completed conversion, as the billing job and the aggregates see it. Times are epoch ms. */
export interface UsageRecord {
  /** The job id: a redelivered or replayed job carries the same id, which is what deduplicates it. */
  recordId: string;
  accountId: string;
  keyId: string;
  tier: string;
  bytesIn: number;
  bytesOut: number;
  pixelsIn: number;
  pixelsOut: number;
  cpuMicros: number;
  inputFormat: string;
  outputFormat: string;
  startedAt: number;
  /** Usage is counted in the minute (UTC) this falls in. */
  finishedAt: number;
}

/** Sums over a set of usage records. */
export interface UsageTotals {
  conversions: number;
  cpuMicros: number;
  bytesIn: number;
  bytesOut: number;
  pixelsIn: number;
  pixelsOut: number;
}

export const usageGranularities = ['minute', 'hour', 'day', 'month'] as const;
export type UsageGranularity = (typeof usageGranularities)[number];

export interface UsageQuery {
  /** Inclusive, epoch ms; rounded down to its minute (the resolution of the aggregates). */
  fromMs: number;
  /** Exclusive, epoch ms: a minute counts when it starts before `toMs`. */
  toMs: number;
  granularity: UsageGranularity;
}

/** One calendar-aligned (UTC) bucket of a usage report. */
export interface UsageBucket extends UsageTotals {
  /** ISO 8601 start of the bucket (UTC). */
  start: string;
}

export interface UsageReport {
  accountId: string;
  /** ISO 8601, the query's `fromMs` rounded down to its minute. */
  from: string;
  /** ISO 8601, the query's `toMs`. */
  to: string;
  granularity: UsageGranularity;
  /** Buckets with usage, oldest first; buckets without usage are omitted. */
  buckets: UsageBucket[];
  totals: UsageTotals;
}

/** A bucket as a store returns it: its start in epoch ms and its sums. */
export interface StoredBucket {
  startMs: number;
  totals: UsageTotals;
}

export interface ApplyOutcome {
  /** Records counted by this call. */
  inserted: number;
  /** Records whose id the store had already counted: ignored. */
  duplicates: number;
}

/**
 * The durable aggregate store. Contract:
 * - `applyBatch` is idempotent per record id: a record whose id was applied before (in this batch,
 *   an earlier batch, or before a restart) is never counted again, so a retried or replayed batch
 *   is harmless. When it resolves, the counted records survive a crash.
 * - Reads see every batch whose `applyBatch` resolved.
 * - Ranges are `[fromMs, toMs)` over minute starts; buckets are calendar-aligned in UTC.
 */
export interface UsageStore {
  applyBatch(records: readonly UsageRecord[]): Promise<ApplyOutcome>;
  hasRecord(recordId: string): Promise<boolean>;
  /** Non-empty buckets of one account whose minutes start in `[fromMs, toMs)`, oldest first. */
  buckets(
    accountId: string,
    fromMs: number,
    toMs: number,
    granularity: UsageGranularity,
  ): Promise<StoredBucket[]>;
  /** Sums of one account over the minutes starting in `[fromMs, toMs)`. */
  totals(accountId: string, fromMs: number, toMs: number): Promise<UsageTotals>;
  close(): Promise<void>;
}

/** What `record` tells its caller. */
export interface RecordOutcome {
  /** True when a record with this id was already recorded (this submission counted nothing). */
  duplicate: boolean;
}
