/**
 * Month-to-date totals per account, kept in memory because the quota check reads them on every
 * request. An entry is computed once from the store plus pending usage, then kept exact by adding
 * each record as it is recorded; it is dropped when the calendar month (UTC) it covers is over.
 * Only this process writes the data directory (it holds the lock), so nothing else can make an
 * entry stale. Least recently used entries are evicted beyond `capacity`.
 */

import { monthStart, nextMonthStart } from './time-buckets.ts';
import { addRecord } from './totals.ts';
import type { UsageRecord, UsageTotals } from './types.ts';

interface Entry {
  monthStartMs: number;
  monthEndMs: number;
  totals: UsageTotals;
}

export class MonthToDateCache {
  readonly #capacity: number;
  readonly #entries = new Map<string, Entry>();

  constructor(capacity: number) {
    if (!Number.isInteger(capacity) || capacity < 1) {
      throw new RangeError(`monthToDateCacheSize must be a positive integer, got ${capacity}`);
    }
    this.#capacity = capacity;
  }

  get size(): number {
    return this.#entries.size;
  }

  /** The cached totals of `accountId` for the month holding `nowMs` (a copy), if cached. */
  get(accountId: string, nowMs: number): UsageTotals | undefined {
    const entry = this.#entries.get(accountId);
    if (entry === undefined) return undefined;
    if (nowMs < entry.monthStartMs || nowMs >= entry.monthEndMs) {
      this.#entries.delete(accountId);
      return undefined;
    }
    // Re-insert to mark it most recently used.
    this.#entries.delete(accountId);
    this.#entries.set(accountId, entry);
    return { ...entry.totals };
  }

  set(accountId: string, nowMs: number, totals: UsageTotals): void {
    this.#entries.delete(accountId);
    this.#entries.set(accountId, {
      monthStartMs: monthStart(nowMs),
      monthEndMs: nextMonthStart(nowMs),
      totals: { ...totals },
    });
    if (this.#entries.size > this.#capacity) {
      const oldest = this.#entries.keys().next().value;
      if (oldest !== undefined) this.#entries.delete(oldest);
    }
  }

  /** Counts a newly recorded record in its account's entry when it falls in the cached month. */
  add(record: UsageRecord): void {
    const entry = this.#entries.get(record.accountId);
    if (entry === undefined) return;
    if (record.finishedAt >= entry.monthStartMs && record.finishedAt < entry.monthEndMs) {
      addRecord(entry.totals, record);
    }
  }
}
