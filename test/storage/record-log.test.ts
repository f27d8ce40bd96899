import assert from 'node:assert/strict';
import { appendFile, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { isPixelfleetError } from '../../src/errors/index.ts';
import { openRecordLog } from '../../src/storage/index.ts';

let root: string;
before(async () => {
  root = await mkdtemp(join(tmpdir(), 'pixelfleet-record-log-'));
});
after(async () => {
  await rm(root, { recursive: true, force: true });
});

let counter = 0;
const freshDirectory = () => join(root, `log-${++counter}`);
const text = (record: Uint8Array) => Buffer.from(record).toString('utf8');
const bytes = (value: string) => Buffer.from(value, 'utf8');

async function segmentPath(directory: string): Promise<string> {
  const names = (await readdir(directory)).filter((name) => name.startsWith('segment-'));
  assert.equal(names.length, 1, `expected one segment, found ${names.join(', ')}`);
  return join(directory, names[0]!);
}

test('storage - replays appended records in order after reopening', async () => {
  const directory = freshDirectory();
  const first = await openRecordLog({ directory });
  assert.equal(first.recovery.records.length, 0);
  assert.equal(first.recovery.snapshot, undefined);
  for (let index = 0; index < 20; index++) await first.log.append(bytes(`record ${index}`));
  await first.log.append(new Uint8Array(0));
  await first.log.close();

  const second = await openRecordLog({ directory });
  assert.deepEqual(second.recovery.records.map(text), [
    ...Array.from({ length: 20 }, (_, index) => `record ${index}`),
    '',
  ]);
  assert.equal(second.recovery.truncatedBytes, 0);
  await second.log.append(bytes('after reopen'));
  await second.log.close();
  const third = await openRecordLog({ directory });
  assert.equal(text(third.recovery.records.at(-1)!), 'after reopen');
  await third.log.close();
});

test('storage - group commit shares one fsync among concurrent appends', async () => {
  const { log } = await openRecordLog({ directory: freshDirectory() });
  await Promise.all(Array.from({ length: 500 }, (_, index) => log.append(bytes(`concurrent ${index}`))));
  const stats = log.stats();
  assert.equal(stats.appendedRecords, 500);
  assert.ok(stats.syncedBatches <= 3, `500 concurrent appends took ${stats.syncedBatches} fsyncs`);
  await log.close();
});

test('storage - records appended while a batch syncs form the next batch', async () => {
  const { log } = await openRecordLog({ directory: freshDirectory() });
  const firstBatch = log.append(bytes('a'));
  await Promise.resolve();
  const secondBatch = [log.append(bytes('b')), log.append(bytes('c'))];
  await firstBatch;
  await Promise.all(secondBatch);
  assert.ok(log.stats().syncedBatches <= 2);
  await log.sync();
  await log.close();
});

test('storage - truncates a partial frame at the tail and keeps appending', async () => {
  const directory = freshDirectory();
  const first = await openRecordLog({ directory });
  for (let index = 0; index < 5; index++) await first.log.append(bytes(`kept ${index}`));
  await first.log.close();
  const path = await segmentPath(directory);
  const cleanSize = (await stat(path)).size;
  // A frame header announcing 100 bytes of which only 3 made it to disk.
  const torn = Buffer.alloc(11);
  torn.writeUInt32LE(100, 0);
  torn.write('abc', 8);
  await appendFile(path, torn);

  const second = await openRecordLog({ directory });
  assert.deepEqual(second.recovery.records.map(text), ['kept 0', 'kept 1', 'kept 2', 'kept 3', 'kept 4']);
  assert.equal(second.recovery.truncatedBytes, 11);
  assert.equal(second.recovery.truncation?.offset, cleanSize);
  assert.equal((await stat(path)).size, cleanSize);
  await second.log.append(bytes('after repair'));
  await second.log.close();

  const third = await openRecordLog({ directory });
  assert.equal(third.recovery.records.length, 6);
  assert.equal(third.recovery.truncatedBytes, 0);
  await third.log.close();
});

test('storage - truncates a bad-checksum or garbage tail', async () => {
  const directory = freshDirectory();
  const first = await openRecordLog({ directory });
  await first.log.append(bytes('one'));
  await first.log.append(bytes('two'));
  await first.log.close();
  const path = await segmentPath(directory);
  const content = await readFile(path);
  // Flip one payload byte of the last frame: a torn write of the final record.
  content[content.byteLength - 1] = content[content.byteLength - 1]! ^ 0xff;
  await writeFile(path, Buffer.concat([content, Buffer.from('garbage that is no frame at all')]));

  const second = await openRecordLog({ directory });
  assert.deepEqual(second.recovery.records.map(text), ['one']);
  assert.equal(second.recovery.truncation?.reason, 'checksum mismatch');
  await second.log.close();
});

test('storage - corruption followed by valid records fails the open with file and offset', async () => {
  const directory = freshDirectory();
  const first = await openRecordLog({ directory });
  for (const value of ['alpha', 'bravo', 'charlie']) await first.log.append(bytes(value));
  await first.log.close();
  const path = await segmentPath(directory);
  const content = await readFile(path);
  const secondFramePayload = 8 + (8 + 5) + 8; // magic, frame "alpha", header of "bravo"
  content[secondFramePayload] = content[secondFramePayload]! ^ 0x01;
  await writeFile(path, content);

  await assert.rejects(openRecordLog({ directory }), (error: unknown) => {
    assert.ok(isPixelfleetError(error, 'PF_ERR_STORAGE_CORRUPT'));
    assert.match(error.message, /corrupt at byte 21 \(checksum mismatch\), yet a valid record follows/);
    assert.ok(error.message.includes(path));
    return true;
  });
  // The failed open released the directory lock.
  await writeFile(path, Buffer.concat([content.subarray(0, 21)]));
  const reopened = await openRecordLog({ directory });
  assert.deepEqual(reopened.recovery.records.map(text), ['alpha']);
  await reopened.log.close();
});

test('storage - compaction writes a snapshot, starts a new segment and deletes the old one', async () => {
  const directory = freshDirectory();
  const first = await openRecordLog({ directory });
  await first.log.append(bytes('before 1'));
  const unsynced = first.log.append(bytes('before 2'));
  const compaction = first.log.compact(bytes('state after before 2'));
  const later = first.log.append(bytes('after 1'));
  await Promise.all([unsynced, compaction, later]);
  assert.equal(first.log.stats().compactions, 1);
  assert.equal(first.log.stats().segment, 2);
  const files = (await readdir(directory)).sort();
  assert.deepEqual(files, ['LOCK', 'segment-00000000000000000002.log', 'snapshot.bin']);
  await first.log.append(bytes('after 2'));
  await first.log.close();

  const second = await openRecordLog({ directory });
  assert.equal(text(second.recovery.snapshot!), 'state after before 2');
  assert.deepEqual(second.recovery.records.map(text), ['after 1', 'after 2']);
  await second.log.compact(bytes('second snapshot'));
  await second.log.close();

  const third = await openRecordLog({ directory });
  assert.equal(text(third.recovery.snapshot!), 'second snapshot');
  assert.deepEqual(third.recovery.records, []);
  await third.log.close();
});

test('storage - leftovers of an interrupted compaction are ignored on open', async () => {
  const directory = freshDirectory();
  const first = await openRecordLog({ directory });
  await first.log.append(bytes('covered by the snapshot'));
  await first.log.compact(bytes('snapshot'));
  await first.log.append(bytes('in segment 2'));
  await first.log.close();
  // A crash after the snapshot rename but before segment 1 was deleted, mid-way through
  // writing the next snapshot's temp file.
  const staleSegment = join(directory, 'segment-00000000000000000001.log');
  await writeFile(staleSegment, Buffer.from('PFRLOG1\nstale bytes'));
  await writeFile(join(directory, 'snapshot.bin.tmp'), 'half a snapshot');

  const second = await openRecordLog({ directory });
  assert.equal(text(second.recovery.snapshot!), 'snapshot');
  assert.deepEqual(second.recovery.records.map(text), ['in segment 2']);
  assert.deepEqual((await readdir(directory)).sort(), [
    'LOCK',
    'segment-00000000000000000002.log',
    'snapshot.bin',
  ]);
  await second.log.close();
});

test('storage - a damaged snapshot fails the open', async () => {
  const directory = freshDirectory();
  const first = await openRecordLog({ directory });
  await first.log.compact(bytes('precious state'));
  await first.log.close();
  const path = join(directory, 'snapshot.bin');
  const content = await readFile(path);
  content[content.byteLength - 2] = content[content.byteLength - 2]! ^ 0x10;
  await writeFile(path, content);
  await assert.rejects(openRecordLog({ directory }), (error: unknown) =>
    isPixelfleetError(error, 'PF_ERR_STORAGE_CORRUPT'),
  );
});

test('storage - a second opener of the same directory is refused', async () => {
  const directory = freshDirectory();
  const { log } = await openRecordLog({ directory });
  await assert.rejects(openRecordLog({ directory }), (error: unknown) =>
    isPixelfleetError(error, 'PF_ERR_STORAGE_LOCKED'),
  );
  await log.close();
  const again = await openRecordLog({ directory });
  await again.log.close();
});

test('storage - a lock left by a dead process is taken over', async () => {
  const directory = freshDirectory();
  const { log } = await openRecordLog({ directory });
  await log.close();
  // No process has pid 2^22 + 1 on Linux (pid_max is at most 2^22).
  await writeFile(join(directory, 'LOCK'), `${2 ** 22 + 1}\n`);
  const again = await openRecordLog({ directory });
  await again.log.close();
});

test('storage - refuses appends after close and oversized records', async () => {
  const { log } = await openRecordLog({ directory: freshDirectory(), maxRecordBytes: 16 });
  await assert.rejects(log.append(new Uint8Array(17)), RangeError);
  await log.close();
  assert.equal(log.writable, false);
  await assert.rejects(log.append(bytes('late')), (error: unknown) =>
    isPixelfleetError(error, 'PF_ERR_STORAGE_UNAVAILABLE'),
  );
  await assert.rejects(openRecordLog({ directory: '' }), RangeError);
  await assert.rejects(openRecordLog({ directory: freshDirectory(), maxRecordBytes: 0 }), RangeError);
});
