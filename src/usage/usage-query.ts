/**
 * Validation of usage queries and the shape of their answers. Bad parameters are the caller's to
 * fix, so they are PF_ERR_INVALID_QUERY (400) naming the parameter; a range that would produce
 * more buckets than `maxBuckets` is refused rather than answered slowly.
 */
import { PixelfleetError } from '../errors/index.ts';
import { minuteStart, shortestBucketMs } from './time-buckets.ts';
import { addTotals, emptyTotals } from './totals.ts';
import {
  type UsageGranularity,
  type UsageQuery,
  type UsageReport,
  type UsageTotals,
  usageGranularities,
} from './types.ts';

/** Latest instant a query may name: year 9999, what ISO 8601 strings in the answer can express. */
const latestMs = Date.UTC(9999, 11, 31, 23, 59, 59, 999);

function invalidQuery(parameter: string, detail: string): PixelfleetError {
  return new PixelfleetError('PF_ERR_INVALID_QUERY', detail, { extensions: { parameter } });
}

export function validateAccountId(accountId: unknown): string {
  if (typeof accountId !== 'string' || accountId === '' || accountId.length > 256) {
    throw invalidQuery('accountId', 'accountId must be a non-empty string of at most 256 characters');
  }
  return accountId;
}

function validateInstant(parameter: string, value: unknown): number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0 || value > latestMs) {
    throw invalidQuery(
      parameter,
      `${parameter} must be an epoch-millisecond integer between 0 and year 9999, got ${String(value)}`,
    );
  }
  return value;
}

/** Checks a query; returns it with `fromMs` rounded down to its minute. */
export function validateUsageQuery(query: unknown, maxBuckets: number): UsageQuery {
  if (typeof query !== 'object' || query === null)
    throw invalidQuery('query', 'the usage query must be an object');
  const { fromMs, toMs, granularity } = query as Record<string, unknown>;
  const from = minuteStart(validateInstant('fromMs', fromMs));
  const to = validateInstant('toMs', toMs);
  if (to <= from) throw invalidQuery('toMs', `toMs (${to}) must be after fromMs (${from})`);
  if (typeof granularity !== 'string' || !(usageGranularities as readonly string[]).includes(granularity)) {
    throw invalidQuery(
      'granularity',
      `granularity must be one of ${usageGranularities.join(', ')}, got ${String(granularity)}`,
    );
  }
  const grain = granularity as UsageGranularity;
  // +1: an unaligned range straddles one more bucket than its length suggests.
  const bucketsAtMost = Math.ceil((to - from) / shortestBucketMs[grain]) + 1;
  if (bucketsAtMost > maxBuckets) {
    throw invalidQuery(
      'granularity',
      `the range spans up to ${bucketsAtMost} ${grain} buckets, more than the limit of ${maxBuckets}; use a coarser granularity or a shorter range`,
    );
  }
  return { fromMs: from, toMs: to, granularity: grain };
}

/** Builds the report from bucket sums keyed by start (epoch ms). */
export function usageReport(
  accountId: string,
  query: UsageQuery,
  buckets: Map<number, UsageTotals>,
): UsageReport {
  const totals = emptyTotals();
  const starts = [...buckets.keys()].sort((left, right) => left - right);
  const rows = [];
  for (const start of starts) {
    const sums = buckets.get(start)!;
    if (sums.conversions === 0) continue;
    addTotals(totals, sums);
    rows.push({ start: new Date(start).toISOString(), ...sums });
  }
  return {
    accountId,
    from: new Date(query.fromMs).toISOString(),
    to: new Date(query.toMs).toISOString(),
    granularity: query.granularity,
    buckets: rows,
    totals,
  };
}
