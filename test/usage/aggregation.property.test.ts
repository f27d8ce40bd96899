/**
 * Aggregation against brute force: random records (with duplicate ids carrying different numbers,
 * times clustered on minute, hour, day and month boundaries), recorded in concurrent chunks with
 * flushes in between, must give the same buckets and totals per minute, hour, day and month as
 * summing the first submission of each id by hand, whether the usage is still in memory, already
 * in the store, or split between the two, and after the meter is reopened.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import fc from 'fast-check';
import {
  minuteStart,
  monthStart,
  nextMonthStart,
  openUsageMeter,
  type UsageGranularity,
  type UsageMeter,
  type UsageRecord,
  usageGranularities,
} from '../../src/usage/index.ts';
import { type TempDir, tempDir } from '../support/index.ts';
import { bruteForceBuckets, sumAll } from './records.ts';

const accounts = ['acct-a', 'acct-b', 'acct-c'];
const earliest = Date.UTC(2025, 11, 30);
const latest = Date.UTC(2026, 2, 2);
/** Instants where minute, hour, day and month buckets change: off-by-one territory. */
const boundaries = [
  Date.UTC(2025, 11, 31, 23, 59),
  Date.UTC(2026, 0, 1),
  Date.UTC(2026, 0, 31, 12),
  Date.UTC(2026, 1, 1),
  Date.UTC(2026, 2, 1),
];

const instant = fc.oneof(
  fc.integer({ min: earliest, max: latest }),
  fc
    .constantFrom(...boundaries)
    .chain((boundary) => fc.integer({ min: boundary - 150_000, max: boundary + 150_000 })),
);
const count = fc.integer({ min: 0, max: 5_000_000 });

const usageRecordArbitrary = fc.record({
  recordId: fc.integer({ min: 0, max: 40 }).map((n) => `job-${n}`),
  accountId: fc.constantFrom(...accounts),
  keyId: fc.constantFrom('key-1', 'key-2'),
  tier: fc.constantFrom('free', 'pro'),
  bytesIn: count,
  bytesOut: count,
  pixelsIn: count,
  pixelsOut: count,
  cpuMicros: count,
  inputFormat: fc.constantFrom('jpeg', 'png'),
  outputFormat: fc.constantFrom('webp', 'avif'),
  startedAt: fc.constant(earliest - 1_000),
  finishedAt: instant,
});

/** Minute starts near the boundaries, where a range end lands exactly on a bucket with usage. */
const boundaryMinute = fc
  .constantFrom(...boundaries)
  .chain((boundary) =>
    fc.integer({ min: -3, max: 3 }).map((minutes) => minuteStart(boundary) + minutes * 60_000),
  );
const rangeEnd = fc.oneof(fc.constant(earliest - 86_400_000), instant, boundaryMinute);

const queryArbitrary = fc
  .record({
    accountId: fc.constantFrom(...accounts),
    granularity: fc.constantFrom<UsageGranularity>(...usageGranularities),
    first: rangeEnd,
    second: rangeEnd,
  })
  .map(({ accountId, granularity, first, second }) => {
    const fromMs = Math.min(first, second);
    let toMs = Math.max(first, second);
    if (toMs - fromMs < 60_000) toMs = fromMs + 60_000;
    // Minute buckets are bounded by maxQueryBuckets; keep those ranges within two days.
    if (granularity === 'minute') toMs = Math.min(toMs, fromMs + 2 * 86_400_000);
    return { accountId, granularity, fromMs, toMs };
  });

interface QueryCase {
  accountId: string;
  granularity: UsageGranularity;
  fromMs: number;
  toMs: number;
}

let root: TempDir;
let run = 0;
before(async () => {
  root = await tempDir(undefined, 'pixelfleet-usage-aggregation-');
});
after(() => root.remove());

async function assertMatchesBruteForce(
  meter: UsageMeter,
  records: UsageRecord[],
  queries: readonly QueryCase[],
): Promise<void> {
  for (const query of queries) {
    const report = await meter.usageFor(query.accountId, query);
    const expected = bruteForceBuckets(records, query.accountId, query.fromMs, query.toMs, query.granularity);
    const expectedRows = [...expected.entries()]
      .sort(([left], [right]) => left - right)
      .map(([start, totals]) => ({ start: new Date(start).toISOString(), ...totals }));
    assert.deepEqual(report.buckets, expectedRows, `buckets of ${JSON.stringify(query)}`);
    assert.deepEqual(report.totals, sumAll(expected), `totals of ${JSON.stringify(query)}`);
  }
}

test('usage - buckets and totals per minute/hour/day/month equal a brute-force sum', {
  timeout: 120_000,
}, async () => {
  await fc.assert(
    fc.asyncProperty(
      fc.array(usageRecordArbitrary, { maxLength: 80 }),
      fc.array(fc.integer({ min: 0, max: 80 }), { maxLength: 3 }),
      fc.array(queryArbitrary, { minLength: 1, maxLength: 8 }),
      fc.integer({ min: earliest, max: latest }),
      async (records, flushPoints, queries, nowMs) => {
        const dataDir = join(root.path, `run-${++run}`);
        const meter = await openUsageMeter({ dataDir, flushIntervalMs: 3_600_000 });
        try {
          const cuts = [
            ...new Set([0, ...flushPoints.map((point) => Math.min(point, records.length)), records.length]),
          ].sort((left, right) => left - right);
          for (let index = 0; index + 1 < cuts.length; index++) {
            // Concurrent within a chunk: the first call for an id wins, as in submission order.
            await Promise.all(
              records.slice(cuts[index], cuts[index + 1]).map((record) => meter.record(record)),
            );
            if (index + 2 < cuts.length) await meter.flush();
          }
          await assertMatchesBruteForce(meter, records, queries);
          for (const accountId of accounts) {
            const month = bruteForceBuckets(
              records,
              accountId,
              monthStart(nowMs),
              nextMonthStart(nowMs),
              'month',
            );
            assert.deepEqual(
              await meter.monthToDate(accountId, nowMs),
              sumAll(month),
              `month to date of ${accountId}`,
            );
          }
        } finally {
          await meter.close();
        }
        const reopened = await openUsageMeter({ dataDir });
        try {
          await assertMatchesBruteForce(reopened, records, queries);
        } finally {
          await reopened.close();
        }
      },
    ),
    { numRuns: 50 },
  );
});
