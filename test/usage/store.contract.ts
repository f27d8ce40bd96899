/**
 * The UsageStore contract: every implementation (SQLite today, the Dynamo-style replicated store
 * later) must pass these. A file per engine calls `usageStoreContract` with a factory for a
 * fresh, empty store.
 */
import assert from 'node:assert/strict';
import { afterEach, beforeEach, describe, test } from 'node:test';
import type { UsageStore } from '../../src/usage/index.ts';
import { baseTime, usageRecord } from './records.ts';

export function usageStoreContract(engine: string, factory: () => Promise<UsageStore>): void {
  describe(`usage store contract (${engine})`, () => {
    let store: UsageStore;
    beforeEach(async () => {
      store = await factory();
    });
    afterEach(async () => {
      await store.close();
    });

    test('usage store - counts a record id once across batches and within one batch', async () => {
      const first = usageRecord({ recordId: 'job-1', cpuMicros: 10 });
      assert.deepEqual(await store.applyBatch([first, usageRecord({ recordId: 'job-2', cpuMicros: 20 })]), {
        inserted: 2,
        duplicates: 0,
      });
      // The same id again, even with different numbers (a redone job), is ignored.
      const again = usageRecord({ recordId: 'job-1', cpuMicros: 999 });
      assert.deepEqual(
        await store.applyBatch([again, again, usageRecord({ recordId: 'job-3', cpuMicros: 30 })]),
        {
          inserted: 1,
          duplicates: 2,
        },
      );
      const totals = await store.totals('acct-acme', baseTime - 60_000, baseTime + 60_000);
      assert.equal(totals.conversions, 3);
      assert.equal(totals.cpuMicros, 60);
      assert.equal(await store.hasRecord('job-1'), true);
      assert.equal(await store.hasRecord('job-4'), false);
    });

    test('usage store - an empty batch is a no-op', async () => {
      assert.deepEqual(await store.applyBatch([]), { inserted: 0, duplicates: 0 });
    });

    test('usage store - buckets are calendar aligned in UTC and ranges are [from, to) over minutes', async () => {
      const times = [
        Date.UTC(2026, 0, 31, 23, 59, 30), // minute 23:59 of 31 Jan
        Date.UTC(2026, 1, 1, 0, 0, 0),
        Date.UTC(2026, 1, 1, 0, 59, 59),
        Date.UTC(2026, 1, 1, 1, 0, 0),
        Date.UTC(2026, 1, 28, 12, 0, 0),
        Date.UTC(2026, 2, 1, 0, 0, 0),
      ];
      await store.applyBatch(
        times.map((finishedAt, index) =>
          usageRecord({ recordId: `job-${index}`, finishedAt, bytesIn: index + 1 }),
        ),
      );
      const from = Date.UTC(2026, 0, 31, 23, 59);
      const to = Date.UTC(2026, 2, 1);
      const months = await store.buckets('acct-acme', from, to, 'month');
      assert.deepEqual(
        months.map((bucket) => [
          new Date(bucket.startMs).toISOString(),
          bucket.totals.conversions,
          bucket.totals.bytesIn,
        ]),
        [
          ['2026-01-01T00:00:00.000Z', 1, 1],
          ['2026-02-01T00:00:00.000Z', 4, 2 + 3 + 4 + 5],
        ],
      );
      const hours = await store.buckets('acct-acme', Date.UTC(2026, 1, 1), Date.UTC(2026, 1, 2), 'hour');
      assert.deepEqual(
        hours.map((bucket) => [new Date(bucket.startMs).toISOString(), bucket.totals.conversions]),
        [
          ['2026-02-01T00:00:00.000Z', 2],
          ['2026-02-01T01:00:00.000Z', 1],
        ],
      );
      const days = await store.buckets('acct-acme', 0, Date.UTC(2027, 0, 1), 'day');
      assert.deepEqual(
        days.map((bucket) => bucket.totals.conversions),
        [1, 3, 1, 1],
      );
      const minutes = await store.buckets('acct-acme', from, from + 60_000, 'minute');
      assert.deepEqual(minutes, [
        {
          startMs: from,
          totals: {
            conversions: 1,
            cpuMicros: 35_000,
            bytesIn: 1,
            bytesOut: 8_192,
            pixelsIn: 12_000_000,
            pixelsOut: 40_000,
          },
        },
      ]);
      assert.deepEqual(await store.buckets('acct-other', 0, to, 'day'), []);
      assert.equal((await store.totals('acct-other', 0, to)).conversions, 0);
    });

    test('usage store - keeps accounts apart', async () => {
      await store.applyBatch([
        usageRecord({ recordId: 'a-1', accountId: 'acct-a', cpuMicros: 1 }),
        usageRecord({ recordId: 'b-1', accountId: 'acct-b', cpuMicros: 2 }),
        usageRecord({ recordId: 'b-2', accountId: 'acct-b', cpuMicros: 3 }),
      ]);
      assert.equal((await store.totals('acct-a', 0, baseTime + 60_000)).cpuMicros, 1);
      assert.equal((await store.totals('acct-b', 0, baseTime + 60_000)).cpuMicros, 5);
    });
  });
}
