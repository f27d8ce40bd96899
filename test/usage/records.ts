/** Usage records for tests, and the brute-force sums the meter's answers are checked against. */
import {
  addRecord,
  bucketStart,
  emptyTotals,
  minuteStart,
  type UsageGranularity,
  type UsageRecord,
  type UsageTotals,
} from '../../src/usage/index.ts';

/** Sat 21 Nov 2026 16:05 UTC. */
export const baseTime = Date.UTC(2026, 10, 21, 16, 5);

export function usageRecord(overrides: Partial<UsageRecord> & { recordId: string }): UsageRecord {
  return {
    accountId: 'acct-acme',
    keyId: 'key-1',
    tier: 'pro',
    bytesIn: 262_144,
    bytesOut: 8_192,
    pixelsIn: 12_000_000,
    pixelsOut: 40_000,
    cpuMicros: 35_000,
    inputFormat: 'jpeg',
    outputFormat: 'webp',
    startedAt: baseTime - 40,
    finishedAt: baseTime,
    ...overrides,
  };
}

/** Sums of `records` (each id once) for one account, by bucket start, over minutes in [fromMs, toMs). */
export function bruteForceBuckets(
  records: readonly UsageRecord[],
  accountId: string,
  fromMs: number,
  toMs: number,
  granularity: UsageGranularity,
): Map<number, UsageTotals> {
  const seen = new Set<string>();
  const buckets = new Map<number, UsageTotals>();
  const from = minuteStart(fromMs);
  for (const record of records) {
    if (seen.has(record.recordId)) continue;
    seen.add(record.recordId);
    if (record.accountId !== accountId) continue;
    const minute = minuteStart(record.finishedAt);
    if (minute < from || minute >= toMs) continue;
    const start = bucketStart(record.finishedAt, granularity);
    let totals = buckets.get(start);
    if (totals === undefined) {
      totals = emptyTotals();
      buckets.set(start, totals);
    }
    addRecord(totals, record);
  }
  return buckets;
}

export function sumAll(buckets: Map<number, UsageTotals>): UsageTotals {
  const totals = emptyTotals();
  for (const bucket of buckets.values()) {
    for (const field of Object.keys(totals) as (keyof UsageTotals)[]) totals[field] += bucket[field];
  }
  return totals;
}
