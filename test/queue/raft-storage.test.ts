import assert from 'node:assert/strict';
import { readdir, stat, truncate, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import type { Entry, HardState, Ready, Snapshot } from '../../src/consensus/index.ts';
import { isPixelfleetError } from '../../src/errors/index.ts';
import { openRaftStorage } from '../../src/queue/raft/index.ts';
import { tempDir } from '../support/index.ts';

const entry = (index: number, term: number, text = `e${index}`): Entry => ({
  index,
  term,
  kind: 'normal',
  data: Buffer.from(text),
});

function ready(parts: {
  entries?: Entry[];
  hardState?: HardState;
  snapshot?: Snapshot;
  mustSync?: boolean;
}): Ready {
  const result: Ready = {
    entries: parts.entries ?? [],
    messages: [],
    committedEntries: [],
    readStates: [],
    mustSync: parts.mustSync ?? ((parts.entries?.length ?? 0) > 0 || parts.snapshot !== undefined),
  };
  if (parts.hardState) result.hardState = parts.hardState;
  if (parts.snapshot) result.snapshot = parts.snapshot;
  return result;
}

const summary = (entries: Entry[]) =>
  entries.map((item) => `${item.index}@${item.term}:${Buffer.from(item.data)}`);

test('raft storage - replays entries and hard state after a reopen', async (t) => {
  const directory = await tempDir(t);
  const { storage } = await openRaftStorage({ directory: directory.path });
  await storage.save(
    ready({ entries: [entry(1, 1), entry(2, 1)], hardState: { term: 1, vote: 'n1', commit: 0 } }),
  );
  await storage.save(ready({ entries: [entry(3, 1)], hardState: { term: 1, vote: 'n1', commit: 2 } }));
  await storage.close();
  const reopened = await openRaftStorage({ directory: directory.path });
  const state = reopened.storage.persistedState();
  assert.deepEqual(state.hardState, { term: 1, vote: 'n1', commit: 2 });
  assert.deepEqual(summary(state.entries), ['1@1:e1', '2@1:e2', '3@1:e3']);
  assert.equal(state.snapshot, undefined);
  await reopened.storage.close();
});

test('raft storage - entries replace a conflicting suffix on replay', async (t) => {
  const directory = await tempDir(t);
  const { storage } = await openRaftStorage({ directory: directory.path });
  await storage.save(ready({ entries: [1, 2, 3, 4, 5].map((index) => entry(index, 1)) }));
  await storage.save(ready({ entries: [entry(4, 2, 'x4'), entry(5, 2, 'x5'), entry(6, 2, 'x6')] }));
  await storage.save(ready({ entries: [entry(6, 3, 'y6')] }));
  assert.deepEqual(summary(storage.persistedState().entries).slice(3), ['4@2:x4', '5@2:x5', '6@3:y6']);
  await storage.close();
  const reopened = await openRaftStorage({ directory: directory.path });
  assert.deepEqual(summary(reopened.storage.persistedState().entries), [
    '1@1:e1',
    '2@1:e2',
    '3@1:e3',
    '4@2:x4',
    '5@2:x5',
    '6@3:y6',
  ]);
  await reopened.storage.close();
});

test('raft storage - a commit-only Ready costs no write; the commit index rides along or is flushed on close', async (t) => {
  const directory = await tempDir(t);
  const { storage } = await openRaftStorage({ directory: directory.path });
  await storage.save(
    ready({ entries: [entry(1, 1), entry(2, 1)], hardState: { term: 1, vote: null, commit: 0 } }),
  );
  const before = storage.stats().appendedRecords;
  assert.equal(storage.save(ready({ hardState: { term: 1, vote: null, commit: 2 } })), undefined);
  assert.equal(storage.stats().appendedRecords, before);
  await storage.close();
  const reopened = await openRaftStorage({ directory: directory.path });
  assert.equal(reopened.storage.persistedState().hardState.commit, 2);
  await reopened.storage.close();
});

test('raft storage - a torn last record is dropped on open, earlier Readies survive', async (t) => {
  const directory = await tempDir(t);
  const { storage } = await openRaftStorage({ directory: directory.path });
  await storage.save(ready({ entries: [entry(1, 1)], hardState: { term: 1, vote: 'n2', commit: 0 } }));
  await storage.save(
    ready({ entries: [entry(2, 1, 'x'.repeat(1000))], hardState: { term: 1, vote: 'n2', commit: 1 } }),
  );
  await storage.close();
  const segment = (await readdir(directory.path)).find((name) => name.startsWith('segment-'))!;
  const path = join(directory.path, segment);
  // A crash in the middle of the second Ready's write.
  await truncate(path, (await stat(path)).size - 500);
  const reopened = await openRaftStorage({ directory: directory.path });
  assert.ok(reopened.recovery.truncatedBytes > 0);
  const state = reopened.storage.persistedState();
  assert.deepEqual(summary(state.entries), ['1@1:e1']);
  // The hard state that came with the lost entry is lost with it: never a commit beyond the log.
  assert.deepEqual(state.hardState, { term: 1, vote: 'n2', commit: 0 });
  await reopened.storage.close();
});

test('raft storage - compaction keeps the snapshot and the entries after it', async (t) => {
  const directory = await tempDir(t);
  const { storage } = await openRaftStorage({ directory: directory.path });
  await storage.save(
    ready({
      entries: [1, 2, 3, 4, 5].map((index) => entry(index, 2)),
      hardState: { term: 2, vote: 'n1', commit: 4 },
    }),
  );
  await storage.compact({
    meta: { index: 3, term: 2, voters: ['n1', 'n2', 'n3'] },
    data: Buffer.from('state@3'),
  });
  await storage.save(ready({ entries: [entry(6, 2)], hardState: { term: 2, vote: 'n1', commit: 6 } }));
  await storage.close();
  const reopened = await openRaftStorage({ directory: directory.path });
  const state = reopened.storage.persistedState();
  assert.deepEqual(state.snapshot?.meta, { index: 3, term: 2, voters: ['n1', 'n2', 'n3'] });
  assert.equal(Buffer.from(state.snapshot!.data).toString(), 'state@3');
  assert.deepEqual(summary(state.entries), ['4@2:e4', '5@2:e5', '6@2:e6']);
  assert.deepEqual(state.hardState, { term: 2, vote: 'n1', commit: 6 });
  await reopened.storage.close();
});

test('raft storage - a snapshot from the leader replaces the whole log atomically', async (t) => {
  const directory = await tempDir(t);
  const { storage } = await openRaftStorage({ directory: directory.path });
  await storage.save(
    ready({ entries: [entry(1, 1), entry(2, 1)], hardState: { term: 1, vote: null, commit: 1 } }),
  );
  await storage.save(
    ready({
      snapshot: { meta: { index: 10, term: 3, voters: ['n1', 'n2'] }, data: Buffer.from('leader state') },
      entries: [entry(11, 3)],
      hardState: { term: 3, vote: null, commit: 10 },
    }),
  );
  await storage.close();
  const reopened = await openRaftStorage({ directory: directory.path });
  const state = reopened.storage.persistedState();
  assert.equal(state.snapshot?.meta.index, 10);
  assert.deepEqual(summary(state.entries), ['11@3:e11']);
  assert.deepEqual(state.hardState, { term: 3, vote: null, commit: 10 });
  await reopened.storage.close();
});

test('raft storage - snapshots live in one file named by the log; strays from a crash are removed', async (t) => {
  const directory = await tempDir(t);
  const { storage } = await openRaftStorage({ directory: directory.path });
  await storage.save(ready({ entries: [1, 2, 3, 4].map((index) => entry(index, 1)) }));
  await storage.compact({ meta: { index: 2, term: 1, voters: ['n1'] }, data: Buffer.from('state@2') });
  await storage.compact({ meta: { index: 3, term: 1, voters: ['n1'] }, data: Buffer.from('state@3') });
  const files = async () =>
    (await readdir(directory.path)).filter((name) => name.startsWith('raft-snapshot-')).sort();
  assert.deepEqual(await files(), ['raft-snapshot-00000000000000000003-1.bin']);
  await storage.close();
  // A crash after writing a newer snapshot file, before the log named it.
  await writeFile(join(directory.path, 'raft-snapshot-00000000000000000004-1.bin'), 'state@4');
  await writeFile(join(directory.path, 'raft-snapshot-00000000000000000004-1.bin.tmp'), 'state@4, half');
  const reopened = await openRaftStorage({ directory: directory.path });
  const state = reopened.storage.persistedState();
  assert.equal(Buffer.from(state.snapshot!.data).toString(), 'state@3');
  assert.deepEqual(summary(state.entries), ['4@1:e4']);
  assert.deepEqual(await files(), ['raft-snapshot-00000000000000000003-1.bin']);
  await reopened.storage.close();
});

test('raft storage - a damaged snapshot file fails the open instead of losing state', async (t) => {
  const directory = await tempDir(t);
  const { storage } = await openRaftStorage({ directory: directory.path });
  await storage.save(ready({ entries: [entry(1, 1), entry(2, 1)] }));
  await storage.compact({ meta: { index: 2, term: 1, voters: ['n1'] }, data: Buffer.from('state@2') });
  await storage.close();
  await writeFile(join(directory.path, 'raft-snapshot-00000000000000000002-1.bin'), 'state@X');
  await assert.rejects(openRaftStorage({ directory: directory.path }), (error: unknown) =>
    isPixelfleetError(error, 'PF_ERR_STORAGE_CORRUPT'),
  );
});
