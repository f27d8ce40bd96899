/**
 * Usage queries: read-your-writes over unflushed usage, month-to-date totals kept current as
 * records arrive and reset at the month boundary, query and record validation with error codes,
 * and answers that never double count while flushes run concurrently.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import { isPixelfleetError } from '../../src/errors/index.ts';
import type { AccountUsageSource } from '../../src/identity/index.ts';
import { openUsageMeter, SqliteUsageStore, type UsageMeter, type UsageStore } from '../../src/usage/index.ts';
import { tempDir } from '../support/index.ts';
import { baseTime, usageRecord } from './records.ts';

async function openMeter(
  t: { after(fn: () => unknown): void },
  options: { clock?: () => number } = {},
): Promise<UsageMeter> {
  const directory = await tempDir();
  // No timed flushes: whatever the store holds got there through an explicit flush.
  const meter = await openUsageMeter({ dataDir: directory.path, flushIntervalMs: 3_600_000, ...options });
  // Close (which seals the segments) before the directory goes.
  t.after(() => meter.close().finally(() => directory.remove()));
  return meter;
}

test('usage - unflushed records are visible in queries at once (read-your-writes)', async (t) => {
  const meter = await openMeter(t);
  await meter.record(usageRecord({ recordId: 'job-1', bytesIn: 100, finishedAt: baseTime }));
  assert.equal(meter.stats.pendingRecords, 1);
  const hour = { fromMs: baseTime - 3_600_000, toMs: baseTime + 3_600_000, granularity: 'minute' } as const;
  const before = await meter.usageFor('acct-acme', hour);
  assert.deepEqual(before.buckets, [
    {
      start: new Date(baseTime).toISOString(),
      conversions: 1,
      cpuMicros: 35_000,
      bytesIn: 100,
      bytesOut: 8_192,
      pixelsIn: 12_000_000,
      pixelsOut: 40_000,
    },
  ]);
  await meter.flush();
  assert.equal(meter.stats.pendingRecords, 0);
  // Half flushed, half pending, same minute: one bucket with both.
  await meter.record(usageRecord({ recordId: 'job-2', bytesIn: 5, finishedAt: baseTime + 59_999 }));
  const after = await meter.usageFor('acct-acme', hour);
  assert.equal(after.buckets.length, 1);
  assert.equal(after.buckets[0]!.conversions, 2);
  assert.equal(after.totals.bytesIn, 105);
  assert.equal(after.from, new Date(baseTime - 3_600_000).toISOString());
  assert.equal(after.granularity, 'minute');
  // Other accounts see nothing of it.
  assert.deepEqual((await meter.usageFor('acct-other', hour)).buckets, []);
});

test('usage - month to date is cached, follows new records and starts over with the month', async (t) => {
  let now = Date.UTC(2026, 10, 30, 23, 58);
  const meter = await openMeter(t, { clock: () => now });
  await meter.record(usageRecord({ recordId: 'october', finishedAt: Date.UTC(2026, 9, 31, 23, 59) }));
  await meter.record(usageRecord({ recordId: 'november-1', finishedAt: Date.UTC(2026, 10, 1) }));
  await meter.flush();
  await meter.record(usageRecord({ recordId: 'november-2', finishedAt: now }));
  assert.equal((await meter.monthToDate('acct-acme')).conversions, 2);
  assert.equal(meter.stats.monthToDateCacheEntries, 1);
  // Served from the cache and kept current: a new record, a duplicate, a late record of last month.
  await meter.record(usageRecord({ recordId: 'november-3', finishedAt: now }));
  await meter.record(usageRecord({ recordId: 'november-3', finishedAt: now }));
  await meter.record(usageRecord({ recordId: 'october-late', finishedAt: Date.UTC(2026, 9, 15) }));
  const november = await meter.monthToDate('acct-acme');
  assert.equal(november.conversions, 3);
  assert.equal(november.cpuMicros, 3 * 35_000);
  // The returned totals are a copy: the caller cannot corrupt the cache.
  november.conversions = 1_000;
  assert.equal((await meter.monthToDate('acct-acme')).conversions, 3);
  now = Date.UTC(2026, 11, 1, 0, 0, 1);
  assert.equal((await meter.monthToDate('acct-acme')).conversions, 0);
  await meter.record(usageRecord({ recordId: 'december-1', finishedAt: now }));
  assert.equal((await meter.monthToDate('acct-acme')).conversions, 1);
  // An explicit now reads another month.
  assert.equal((await meter.monthToDate('acct-acme', Date.UTC(2026, 9, 2))).conversions, 2);
});

test('usage - query parameters are validated with PF_ERR_INVALID_QUERY', async (t) => {
  const meter = await openMeter(t);
  const invalid = (parameter: string) => (error: unknown) => {
    assert.ok(isPixelfleetError(error, 'PF_ERR_INVALID_QUERY'), String(error));
    assert.equal(error.status, 400);
    assert.equal(error.extensions.parameter, parameter);
    return true;
  };
  const day = { fromMs: baseTime, toMs: baseTime + 86_400_000, granularity: 'hour' } as const;
  await assert.rejects(meter.usageFor('', day), invalid('accountId'));
  await assert.rejects(meter.usageFor('acct-acme', { ...day, fromMs: -1 }), invalid('fromMs'));
  await assert.rejects(meter.usageFor('acct-acme', { ...day, fromMs: 1.5 }), invalid('fromMs'));
  await assert.rejects(meter.usageFor('acct-acme', { ...day, toMs: Number.NaN }), invalid('toMs'));
  await assert.rejects(meter.usageFor('acct-acme', { ...day, toMs: day.fromMs }), invalid('toMs'));
  await assert.rejects(
    meter.usageFor('acct-acme', { ...day, granularity: 'week' as 'day' }),
    invalid('granularity'),
  );
  // A year of minutes is more buckets than the limit; a year of hours is not.
  await assert.rejects(
    meter.usageFor('acct-acme', {
      fromMs: baseTime,
      toMs: baseTime + 366 * 86_400_000,
      granularity: 'minute',
    }),
    invalid('granularity'),
  );
  await meter.usageFor('acct-acme', {
    fromMs: baseTime,
    toMs: baseTime + 366 * 86_400_000,
    granularity: 'hour',
  });
  await assert.rejects(meter.monthToDate('acct-acme', -5), invalid('nowMs'));
});

test('usage - malformed records are refused with PF_ERR_INVALID_USAGE_RECORD and not counted', async (t) => {
  const meter = await openMeter(t);
  const malformed = [
    { ...usageRecord({ recordId: 'job-1' }), recordId: '' },
    { ...usageRecord({ recordId: 'job-1' }), cpuMicros: -1 },
    { ...usageRecord({ recordId: 'job-1' }), bytesIn: 1.5 },
    { ...usageRecord({ recordId: 'job-1' }), finishedAt: '2026-11-21T16:05:00Z' },
    { ...usageRecord({ recordId: 'job-1' }), accountId: undefined },
  ];
  for (const record of malformed) {
    await assert.rejects(meter.record(record as never), (error) =>
      isPixelfleetError(error, 'PF_ERR_INVALID_USAGE_RECORD'),
    );
  }
  // Extra fields are dropped, not stored.
  await meter.record({ ...usageRecord({ recordId: 'job-1' }), secret: 'x' } as never);
  assert.equal(meter.stats.recorded, 1);
});

test('usage - the meter is the admin API usage source', async (t) => {
  const meter = await openMeter(t);
  const source: AccountUsageSource = meter;
  await meter.record(usageRecord({ recordId: 'job-1' }));
  const answer = (await source.accountUsage(
    'acct-acme',
    Date.UTC(2026, 10, 1),
    Date.UTC(2026, 11, 1),
    'day',
  )) as {
    buckets: { start: string; conversions: number }[];
  };
  assert.deepEqual(
    answer.buckets.map((bucket) => [bucket.start, bucket.conversions]),
    [['2026-11-21T00:00:00.000Z', 1]],
  );
});

/**
 * The embedded store answers synchronously; a networked store (the replicated one to come) takes
 * time, which opens windows between a query's store read and its pending read. This wrapper adds
 * those delays to a real SQLite store.
 */
function withLatency(store: UsageStore): UsageStore {
  const pause = () => new Promise((resolve) => setTimeout(resolve, Math.floor(Math.random() * 3)));
  return {
    applyBatch: async (records) => {
      await pause();
      const outcome = await store.applyBatch(records);
      await pause();
      return outcome;
    },
    hasRecord: async (recordId) => {
      await pause();
      return store.hasRecord(recordId);
    },
    buckets: async (...args) => {
      await pause();
      const buckets = await store.buckets(...args);
      await pause();
      return buckets;
    },
    totals: async (...args) => {
      await pause();
      const totals = await store.totals(...args);
      await pause();
      return totals;
    },
    close: () => store.close(),
  };
}

for (const latency of [false, true]) {
  test(`usage - queries during concurrent flushes never double count or miss acknowledged records${latency ? ' (slow store)' : ''}`, {
    timeout: 30_000,
  }, async (t) => {
    const directory = await tempDir();
    const sqlite = new SqliteUsageStore({ path: join(directory.path, 'usage.db') });
    const meter = await openUsageMeter({
      dataDir: directory.path,
      flushIntervalMs: 3_600_000,
      store: latency ? withLatency(sqlite) : sqlite,
    });
    t.after(async () => {
      await meter.close();
      await sqlite.close();
      await directory.remove();
    });
    const wholeDay = {
      fromMs: baseTime - 86_400_000,
      toMs: baseTime + 86_400_000,
      granularity: 'day',
    } as const;
    let acknowledged = 0;
    let submitted = 0;
    const check = async (low: number, high: () => number) => {
      const [report, monthToDate] = await Promise.all([
        meter.usageFor('acct-acme', wholeDay),
        meter.monthToDate('acct-acme', baseTime),
      ]);
      for (const conversions of [report.totals.conversions, monthToDate.conversions]) {
        assert.ok(conversions >= low && conversions <= high(), `${conversions} outside [${low}, ${high()}]`);
      }
    };
    for (let wave = 0; wave < 40; wave++) {
      // While a wave is being recorded the answer lies between what was acknowledged and what was
      // submitted; once it is acknowledged, queries racing a flush must give exactly that number.
      const batch = Array.from({ length: 25 }, (_, index) =>
        usageRecord({ recordId: `job-${wave}-${index}` }),
      );
      submitted += batch.length;
      const recording = Promise.all(batch.map((record) => meter.record(record).then(() => acknowledged++)));
      const during = Promise.all(Array.from({ length: 5 }, () => check(acknowledged, () => submitted)));
      await Promise.all([recording, during]);
      const settled = acknowledged;
      await Promise.all([meter.flush(), ...Array.from({ length: 5 }, () => check(settled, () => settled))]);
    }
    assert.equal((await meter.usageFor('acct-acme', wholeDay)).totals.conversions, 1_000);
    assert.equal((await meter.monthToDate('acct-acme', baseTime)).conversions, 1_000);
  });
}

test('usage - bad options are RangeErrors and a closed meter refuses work', async (t) => {
  const directory = await tempDir(t);
  await assert.rejects(openUsageMeter({ dataDir: '' }), RangeError);
  await assert.rejects(openUsageMeter({ dataDir: directory.path, flushIntervalMs: 0 }), RangeError);
  await assert.rejects(openUsageMeter({ dataDir: directory.path, maxSegmentBytes: 1.5 }), RangeError);
  await assert.rejects(openUsageMeter({ dataDir: directory.path, monthToDateCacheSize: -1 }), RangeError);
  const meter = await openUsageMeter({ dataDir: directory.path });
  // A second opener of the same data directory is refused while the first holds it.
  await assert.rejects(openUsageMeter({ dataDir: directory.path }), (error) =>
    isPixelfleetError(error, 'PF_ERR_STORAGE_LOCKED'),
  );
  await meter.close();
  await meter.close();
  await assert.rejects(meter.record(usageRecord({ recordId: 'late' })), (error) =>
    isPixelfleetError(error, 'PF_ERR_STORAGE_UNAVAILABLE'),
  );
  await assert.rejects(meter.monthToDate('acct-acme', baseTime), (error) =>
    isPixelfleetError(error, 'PF_ERR_STORAGE_UNAVAILABLE'),
  );
});
