/**
 * Segment files: rotation by size and by recording window (also when idle), gzip sealing, and
 * recovery of the unsealed segments a crash leaves behind (torn tails, interrupted seals).
 */
import assert from 'node:assert/strict';
import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { gunzipSync } from 'node:zlib';
import { isPixelfleetError } from '../../src/errors/index.ts';
import {
  encodeUsageRecordLine,
  listSegments,
  openUsageMeter,
  parseSegmentFileName,
  readSegment,
  SqliteUsageStore,
  segmentFileName,
  type UsageRecord,
} from '../../src/usage/index.ts';
import { tempDir, waitFor } from '../support/index.ts';
import { baseTime, usageRecord } from './records.ts';

const wholeYear = { fromMs: Date.UTC(2026, 0, 1), toMs: Date.UTC(2027, 0, 1), granularity: 'month' } as const;

async function allSegmentRecords(dataDir: string): Promise<UsageRecord[]> {
  const records: UsageRecord[] = [];
  for (const segment of await listSegments(join(dataDir, 'usage', 'segments'))) {
    for await (const record of readSegment(segment.path)) records.push(record);
  }
  return records;
}

test('usage - segment names carry the recording window and a sequence, and parse back', () => {
  const name = segmentFileName(Date.UTC(2026, 10, 21, 16), 42);
  assert.equal(name, '2026-11-21T16-00-00Z-00000042.ndjson');
  assert.deepEqual(parseSegmentFileName(`${name}.gz`), {
    name: `${name}.gz`,
    windowStartMs: Date.UTC(2026, 10, 21, 16),
    sequence: 42,
    sealed: true,
  });
  assert.equal(parseSegmentFileName('2026-11-21T16-00-00Z-00000042.ndjson.gz.tmp'), undefined);
  assert.equal(parseSegmentFileName('LOCK'), undefined);
});

test('usage - size rotation seals gzipped NDJSON segments holding every record once', {
  timeout: 60_000,
}, async (t) => {
  const directory = await tempDir(t);
  const meter = await openUsageMeter({ dataDir: directory.path, maxSegmentBytes: 4_096 });
  const recorded: UsageRecord[] = [];
  try {
    for (let wave = 0; wave < 20; wave++) {
      const records = Array.from({ length: 25 }, (_, index) =>
        usageRecord({ recordId: `job-${wave}-${index}`, cpuMicros: wave * 100 + index }),
      );
      await Promise.all(records.map((record) => meter.record(record)));
      recorded.push(...records);
    }
    // Rotated segments are sealed in the background once a flush covered them.
    await waitFor(
      async () =>
        (await listSegments(join(directory.path, 'usage', 'segments'))).filter((s) => s.sealed).length >= 3,
    );
  } finally {
    await meter.close();
  }
  const segments = await listSegments(join(directory.path, 'usage', 'segments'));
  assert.ok(segments.length >= 3, `${segments.length} segments`);
  assert.ok(segments.every((segment) => segment.sealed && segment.name.endsWith('.ndjson.gz')));
  assert.deepEqual(
    segments.map((segment) => segment.sequence),
    segments.map((_, index) => index + 1),
  );
  // Plain gunzip + split on newlines is all a reader needs: the format is NDJSON.
  const lines: string[] = [];
  for (const segment of segments) {
    const text = gunzipSync(await readFile(segment.path)).toString('utf8');
    assert.ok(text.endsWith('\n'));
    lines.push(...text.slice(0, -1).split('\n'));
  }
  const parsed = lines.map((line) => JSON.parse(line) as UsageRecord);
  assert.deepEqual(
    parsed.map((record) => record.recordId).sort(),
    recorded.map((record) => record.recordId).sort(),
  );
  assert.deepEqual(Object.keys(parsed[0]!), [
    'recordId',
    'accountId',
    'keyId',
    'tier',
    'bytesIn',
    'bytesOut',
    'pixelsIn',
    'pixelsOut',
    'cpuMicros',
    'inputFormat',
    'outputFormat',
    'startedAt',
    'finishedAt',
  ]);
  assert.deepEqual((await allSegmentRecords(directory.path)).length, recorded.length);
});

test('usage - segments rotate when the recording window ends, also while idle', {
  timeout: 30_000,
}, async (t) => {
  const directory = await tempDir(t);
  let now = Date.UTC(2026, 10, 21, 16, 59, 30);
  const meter = await openUsageMeter({ dataDir: directory.path, clock: () => now, flushIntervalMs: 20 });
  const segmentDirectory = join(directory.path, 'usage', 'segments');
  try {
    await meter.record(usageRecord({ recordId: 'job-16h' }));
    now = Date.UTC(2026, 10, 21, 17, 0, 5);
    await meter.record(usageRecord({ recordId: 'job-17h' }));
    // The 16:00 window is over: its segment is sealed without waiting for close.
    await waitFor(async () => (await listSegments(segmentDirectory)).some((segment) => segment.sealed));
    now = Date.UTC(2026, 10, 21, 18, 0, 0);
    // Idle: no record arrives, yet the timer rotates and seals the 17:00 segment.
    await waitFor(
      async () => (await listSegments(segmentDirectory)).filter((segment) => segment.sealed).length === 2,
    );
    assert.equal(meter.stats.segments.activeSegment, undefined);
  } finally {
    await meter.close();
  }
  const segments = await listSegments(segmentDirectory);
  assert.deepEqual(
    segments.map((segment) => segment.name),
    ['2026-11-21T16-00-00Z-00000001.ndjson.gz', '2026-11-21T17-00-00Z-00000002.ndjson.gz'],
  );
  const [first, second] = await Promise.all(
    segments.map(async (segment) =>
      (await Array.fromAsync(readSegment(segment.path))).map((record) => record.recordId),
    ),
  );
  assert.deepEqual(first, ['job-16h']);
  assert.deepEqual(second, ['job-17h']);
});

test('usage - open replays an unsealed segment left by a crash, cuts its torn tail and seals it', async (t) => {
  const directory = await tempDir(t);
  const segmentDirectory = join(directory.path, 'usage', 'segments');
  // A previous run counted job-1 (flushed), then recorded job-2 and job-3 (not flushed) and
  // died while writing job-4.
  const store = new SqliteUsageStore({ path: join(directory.path, 'usage.db') });
  await store.applyBatch([usageRecord({ recordId: 'job-1' })]);
  await store.close();
  await mkdir(segmentDirectory, { recursive: true });
  const lines = ['job-1', 'job-2', 'job-3']
    .map((recordId) => encodeUsageRecordLine(usageRecord({ recordId })))
    .join('');
  const torn = encodeUsageRecordLine(usageRecord({ recordId: 'job-4' })).slice(0, 40);
  const name = segmentFileName(Date.UTC(2026, 10, 21, 16), 7);
  await writeFile(join(segmentDirectory, name), lines + torn);
  await writeFile(
    join(segmentDirectory, `${segmentFileName(Date.UTC(2026, 10, 21, 15), 6)}.gz.tmp`),
    'half a seal',
  );

  const meter = await openUsageMeter({ dataDir: directory.path });
  try {
    assert.deepEqual(meter.stats.recovery, {
      unsealedSegments: 1,
      replayedRecords: 3,
      recoveredRecords: 2,
      truncatedBytes: torn.length,
    });
    assert.equal((await meter.usageFor('acct-acme', wholeYear)).totals.conversions, 3);
    assert.deepEqual(await meter.record(usageRecord({ recordId: 'job-3' })), { duplicate: true });
    // The job whose line was torn was never acknowledged: its redelivery counts.
    assert.deepEqual(await meter.record(usageRecord({ recordId: 'job-4' })), { duplicate: false });
  } finally {
    await meter.close();
  }
  const names = await readdir(segmentDirectory);
  assert.ok(names.includes(`${name}.gz`), `sealed on open: ${names}`);
  assert.ok(!names.some((entry) => entry.endsWith('.tmp') || entry === name));
  assert.ok(
    names.some((entry) => entry.startsWith('2026-') && entry.includes('-00000008.ndjson.gz')),
    'numbering continues',
  );
  assert.deepEqual(
    (await allSegmentRecords(directory.path)).map((record) => record.recordId),
    ['job-1', 'job-2', 'job-3', 'job-4'],
  );
});

test('usage - open removes the plain copy of a segment whose seal completed, counting nothing twice', async (t) => {
  const directory = await tempDir(t);
  const first = await openUsageMeter({ dataDir: directory.path });
  await first.record(usageRecord({ recordId: 'job-1' }));
  await first.close();
  const segmentDirectory = join(directory.path, 'usage', 'segments');
  const [sealed] = await listSegments(segmentDirectory);
  // A crash between the rename of the .gz and the removal of the plain file.
  await writeFile(sealed!.path.slice(0, -'.gz'.length), gunzipSync(await readFile(sealed!.path)));
  await writeFile(join(segmentDirectory, segmentFileName(Date.UTC(2026, 10, 21, 16), 2)), '');

  const second = await openUsageMeter({ dataDir: directory.path });
  try {
    assert.equal(second.stats.recovery.unsealedSegments, 2);
    assert.equal(second.stats.recovery.recoveredRecords, 0);
    assert.equal((await second.usageFor('acct-acme', wholeYear)).totals.conversions, 1);
  } finally {
    await second.close();
  }
  assert.deepEqual(await readdir(segmentDirectory), [sealed!.name]);
});

test('usage - open refuses a segment with damage before acknowledged records', async (t) => {
  const directory = await tempDir(t);
  const segmentDirectory = join(directory.path, 'usage', 'segments');
  await mkdir(segmentDirectory, { recursive: true });
  const good = encodeUsageRecordLine(usageRecord({ recordId: 'job-1' }));
  await writeFile(
    join(segmentDirectory, segmentFileName(baseTime, 1)),
    `${good}{"recordId":"job-2","acc\n${good}`,
  );
  await assert.rejects(openUsageMeter({ dataDir: directory.path }), (error) => {
    assert.ok(isPixelfleetError(error, 'PF_ERR_STORAGE_CORRUPT'), String(error));
    assert.equal(error.extensions.offset, good.length);
    return true;
  });
  // The failed open released the directory: a repaired directory opens.
  await writeFile(join(segmentDirectory, segmentFileName(baseTime, 1)), good);
  const meter = await openUsageMeter({ dataDir: directory.path });
  await meter.close();
});

test('usage - a corrupt sealed segment fails reading with its file and line', async (t) => {
  const directory = await tempDir(t);
  const path = join(directory.path, 'broken.ndjson');
  await writeFile(path, `${encodeUsageRecordLine(usageRecord({ recordId: 'job-1' }))}not json\n`);
  await assert.rejects(Array.fromAsync(readSegment(path)), (error) => {
    assert.ok(isPixelfleetError(error, 'PF_ERR_STORAGE_CORRUPT'));
    assert.equal(error.extensions.line, 2);
    return true;
  });
  const gzipPath = join(directory.path, 'broken.ndjson.gz');
  await writeFile(gzipPath, 'not gzip at all');
  await assert.rejects(Array.fromAsync(readSegment(gzipPath)));
  await assert.rejects(Array.fromAsync(readSegment(join(directory.path, 'missing.ndjson.gz'))), {
    code: 'ENOENT',
  });
});
