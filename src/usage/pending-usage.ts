/**
 * The local aggregator: usage recorded (durable in a segment) but not yet applied to the store.
 * One `PendingUsage` is a generation: new records go to the newest one, and a flush takes whole
 * generations, so records arriving during a flush never mix with the batch being applied. It
 * sums per account per minute for queries and keeps the records themselves for the store, which
 * deduplicates by id.
 */
import { bucketStart, minuteStart } from './time-buckets.ts';
import { addRecord, addTotals, emptyTotals } from './totals.ts';
import type { UsageGranularity, UsageRecord, UsageTotals } from './types.ts';

export class PendingUsage {
  readonly records: UsageRecord[] = [];
  readonly #ids = new Set<string>();
  /** accountId → minute start → sums. */
  readonly #minutes = new Map<string, Map<number, UsageTotals>>();

  get size(): number {
    return this.records.length;
  }

  has(recordId: string): boolean {
    return this.#ids.has(recordId);
  }

  add(record: UsageRecord): void {
    this.records.push(record);
    this.#ids.add(record.recordId);
    let minutes = this.#minutes.get(record.accountId);
    if (minutes === undefined) {
      minutes = new Map();
      this.#minutes.set(record.accountId, minutes);
    }
    const minute = minuteStart(record.finishedAt);
    let totals = minutes.get(minute);
    if (totals === undefined) {
      totals = emptyTotals();
      minutes.set(minute, totals);
    }
    addRecord(totals, record);
  }

  /** Adds this generation's sums for minutes starting in `[fromMs, toMs)` into `buckets` by bucket start. */
  addBucketsInto(
    buckets: Map<number, UsageTotals>,
    accountId: string,
    fromMs: number,
    toMs: number,
    granularity: UsageGranularity,
  ): void {
    const minutes = this.#minutes.get(accountId);
    if (minutes === undefined) return;
    for (const [minute, totals] of minutes) {
      if (minute < fromMs || minute >= toMs) continue;
      const start = bucketStart(minute, granularity);
      let bucket = buckets.get(start);
      if (bucket === undefined) {
        bucket = emptyTotals();
        buckets.set(start, bucket);
      }
      addTotals(bucket, totals);
    }
  }

  /** Adds this generation's sums for minutes starting in `[fromMs, toMs)` into `into`. */
  addTotalsInto(into: UsageTotals, accountId: string, fromMs: number, toMs: number): void {
    const minutes = this.#minutes.get(accountId);
    if (minutes === undefined) return;
    for (const [minute, totals] of minutes) {
      if (minute >= fromMs && minute < toMs) addTotals(into, totals);
    }
  }
}
