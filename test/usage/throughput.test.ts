/**
 * Throughput of `record` (durable, group-committed) with 1, 16 and 256 concurrent callers, each
 * awaiting its record before submitting the next, as a dispatcher does before acking a job. The
 * figures are reported as diagnostics; the only assertions are that everything was counted.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { openUsageMeter } from '../../src/usage/index.ts';
import { tempDir } from '../support/index.ts';
import { baseTime, usageRecord } from './records.ts';

const cases = [
  { callers: 1, records: 300 },
  { callers: 16, records: 4_000 },
  { callers: 256, records: 30_000 },
];

for (const { callers, records } of cases) {
  test(`usage - record throughput with ${callers} concurrent callers`, { timeout: 60_000 }, async (t) => {
    const directory = await tempDir();
    const meter = await openUsageMeter({ dataDir: directory.path });
    t.after(() => meter.close().finally(() => directory.remove()));
    let next = 0;
    const caller = async () => {
      for (let n = next++; n < records; n = next++) {
        await meter.record(
          usageRecord({ recordId: `job-${n}`, accountId: `acct-${n % 100}`, finishedAt: baseTime + n }),
        );
      }
    };
    const started = performance.now();
    await Promise.all(Array.from({ length: callers }, caller));
    const seconds = (performance.now() - started) / 1_000;
    const { segments } = meter.stats;
    t.diagnostic(
      `${callers} callers: ${Math.round(records / seconds)} records/s (${records} in ${seconds.toFixed(2)} s, ` +
        `${segments.batchesWritten} fsynced batches, ${(records / segments.batchesWritten).toFixed(1)} records per batch)`,
    );
    assert.equal(meter.stats.recorded, records);
    const month = await meter.usageFor('acct-0', {
      fromMs: baseTime,
      toMs: baseTime + 86_400_000,
      granularity: 'month',
    });
    assert.equal(month.totals.conversions, records / 100);
  });
}
