/**
 * Calendar arithmetic for usage buckets, all in UTC: the minute a record counts in, and the
 * minute, hour, day or month bucket a minute belongs to. Months have no fixed length, so their
 * starts come from `Date.UTC`, never from division.
 */
import type { UsageGranularity } from './types.ts';

export const minuteMs = 60_000;
export const hourMs = 3_600_000;
export const dayMs = 86_400_000;

/** The longest a bucket of each granularity can be, for bounding how many buckets a range holds. */
export const longestBucketMs: Record<UsageGranularity, number> = {
  minute: minuteMs,
  hour: hourMs,
  day: dayMs,
  month: 31 * dayMs,
};

/** The shortest a bucket can be: the range divided by it bounds the bucket count from above. */
export const shortestBucketMs: Record<UsageGranularity, number> = {
  minute: minuteMs,
  hour: hourMs,
  day: dayMs,
  month: 28 * dayMs,
};

export function minuteStart(epochMs: number): number {
  return Math.floor(epochMs / minuteMs) * minuteMs;
}

export function monthStart(epochMs: number): number {
  const date = new Date(epochMs);
  return Date.UTC(date.getUTCFullYear(), date.getUTCMonth(), 1);
}

export function nextMonthStart(epochMs: number): number {
  const date = new Date(epochMs);
  return Date.UTC(date.getUTCFullYear(), date.getUTCMonth() + 1, 1);
}

/** Start (epoch ms) of the bucket of `granularity` that holds `epochMs`. */
export function bucketStart(epochMs: number, granularity: UsageGranularity): number {
  switch (granularity) {
    case 'minute':
      return minuteStart(epochMs);
    case 'hour':
      return Math.floor(epochMs / hourMs) * hourMs;
    case 'day':
      return Math.floor(epochMs / dayMs) * dayMs;
    case 'month':
      return monthStart(epochMs);
  }
}
