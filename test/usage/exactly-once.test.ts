/**
 * Exactly-once recording: a record id submitted twice (in sequence, concurrently, before and
 * after a flush, and after the meter is reopened on the same data directory) counts once and is
 * written to the segments once.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { listSegments, openUsageMeter, readSegment, type UsageRecord } from '../../src/usage/index.ts';
import { tempDir } from '../support/index.ts';
import { baseTime, usageRecord } from './records.ts';

async function segmentRecords(dataDir: string): Promise<UsageRecord[]> {
  const records: UsageRecord[] = [];
  for (const segment of await listSegments(`${dataDir}/usage/segments`)) {
    assert.ok(segment.sealed, `${segment.name} is sealed after close`);
    for await (const record of readSegment(segment.path)) records.push(record);
  }
  return records;
}

const wholeDay = { fromMs: baseTime - 86_400_000, toMs: baseTime + 86_400_000, granularity: 'day' } as const;

test('usage - the same record id twice in sequence counts once', async (t) => {
  const directory = await tempDir(t);
  const meter = await openUsageMeter({ dataDir: directory.path });
  try {
    assert.deepEqual(await meter.record(usageRecord({ recordId: 'job-1' })), { duplicate: false });
    assert.deepEqual(await meter.record(usageRecord({ recordId: 'job-1', cpuMicros: 1 })), {
      duplicate: true,
    });
    await meter.flush();
    assert.deepEqual(await meter.record(usageRecord({ recordId: 'job-1' })), { duplicate: true });
    const report = await meter.usageFor('acct-acme', wholeDay);
    assert.equal(report.totals.conversions, 1);
    assert.equal(report.totals.cpuMicros, 35_000, 'the first submission is the one counted');
    assert.equal(meter.stats.recorded, 1);
    assert.equal(meter.stats.duplicates, 2);
  } finally {
    await meter.close();
  }
  assert.deepEqual(
    (await segmentRecords(directory.path)).map((record) => record.recordId),
    ['job-1'],
  );
});

test('usage - concurrent submissions of one record id count once', async (t) => {
  const directory = await tempDir(t);
  const meter = await openUsageMeter({ dataDir: directory.path });
  try {
    const submissions = [];
    for (let copy = 0; copy < 20; copy++) {
      for (let job = 0; job < 50; job++)
        submissions.push(meter.record(usageRecord({ recordId: `job-${job}` })));
    }
    const outcomes = await Promise.all(submissions);
    assert.equal(outcomes.filter((outcome) => !outcome.duplicate).length, 50);
    assert.equal((await meter.usageFor('acct-acme', wholeDay)).totals.conversions, 50);
    // Duplicates racing a flush: half before it resolves, half after.
    const racing = [meter.flush()];
    for (let job = 0; job < 50; job++)
      racing.push(meter.record(usageRecord({ recordId: `job-${job}` })).then(() => {}));
    await Promise.all(racing);
    assert.equal((await meter.usageFor('acct-acme', wholeDay)).totals.conversions, 50);
    assert.equal((await meter.monthToDate('acct-acme', baseTime)).conversions, 50);
  } finally {
    await meter.close();
  }
  const written = (await segmentRecords(directory.path)).map((record) => record.recordId);
  assert.equal(written.length, 50);
  assert.equal(new Set(written).size, 50);
});

test('usage - a record id seen before a restart is a duplicate after it', async (t) => {
  const directory = await tempDir(t);
  const first = await openUsageMeter({ dataDir: directory.path });
  await first.record(usageRecord({ recordId: 'job-flushed' }));
  await first.flush();
  await first.record(usageRecord({ recordId: 'job-pending' }));
  await first.close();

  const second = await openUsageMeter({ dataDir: directory.path });
  try {
    assert.deepEqual(await second.record(usageRecord({ recordId: 'job-flushed' })), { duplicate: true });
    assert.deepEqual(await second.record(usageRecord({ recordId: 'job-pending' })), { duplicate: true });
    assert.deepEqual(await second.record(usageRecord({ recordId: 'job-new' })), { duplicate: false });
    assert.equal((await second.usageFor('acct-acme', wholeDay)).totals.conversions, 3);
    assert.equal((await second.monthToDate('acct-acme', baseTime)).conversions, 3);
  } finally {
    await second.close();
  }
  const written = (await segmentRecords(directory.path)).map((record) => record.recordId).sort();
  assert.deepEqual(written, ['job-flushed', 'job-new', 'job-pending']);
});
