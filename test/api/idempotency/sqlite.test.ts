import assert from 'node:assert/strict';
import { statSync } from 'node:fs';
import { join } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { after, describe, test } from 'node:test';
import { Worker } from 'node:worker_threads';
import {
  openIdempotencyStore,
  SqliteIdempotencyStore,
  type StoredResponse,
} from '../../../src/api/idempotency/index.ts';
import { isPixelfleetError } from '../../../src/errors/index.ts';
import { tempDir, waitFor } from '../../support/index.ts';
import { runIdempotencyContract } from './contract.ts';

const root = await tempDir(undefined, 'pixelfleet-idempotency-');
after(() => root.remove());
let counter = 0;
const freshDir = () => join(root.path, `store-${++counter}`);

runIdempotencyContract('sqlite', async (location, options) =>
  openIdempotencyStore(join(root.path, location), { ...options, sweepIntervalMs: 0 }),
);

const t0 = 1_750_000_000_000;

function imageResponse(bytes: number, seed = 1): StoredResponse {
  const body = Buffer.alloc(bytes);
  for (let index = 0; index < bytes; index += 4096) body[index] = (index / 4096 + seed) & 0xff;
  return { status: 200, headers: { 'content-type': 'image/jpeg' }, body };
}

function sizeOnDisk(dataDir: string): number {
  let total = 0;
  for (const suffix of ['', '-wal']) {
    try {
      total += statSync(join(dataDir, `idempotency.db${suffix}`)).size;
    } catch {}
  }
  return total;
}

describe('sqlite idempotency store', () => {
  test('idempotency - keeps its data in <dataDir>/idempotency.db in WAL mode with incremental vacuum', async () => {
    const dataDir = freshDir();
    const store = openIdempotencyStore(dataDir, { sweepIntervalMs: 0 });
    assert.equal(store.path, join(dataDir, 'idempotency.db'));
    await store.close();
    const database = new DatabaseSync(store.path, { readOnly: true });
    try {
      assert.equal(database.prepare('PRAGMA journal_mode').get()!.journal_mode, 'wal');
      assert.equal(database.prepare('PRAGMA auto_vacuum').get()!.auto_vacuum, 2);
      assert.equal(database.prepare('PRAGMA user_version').get()!.user_version, 1);
    } finally {
      database.close();
    }
  });

  test('idempotency - multi-megabyte bodies round-trip and the file shrinks once they are swept', async () => {
    const dataDir = freshDir();
    const store = openIdempotencyStore(dataDir, { sweepIntervalMs: 0, retentionMs: 60_000 });
    const big = imageResponse(4 * 1024 * 1024);
    for (let index = 0; index < 8; index++) {
      const begun = await store.begin('acct_1', `big-${index}`, 'fp', t0);
      assert.equal(begun.kind, 'started');
      if (begun.kind === 'started') await store.complete('acct_1', `big-${index}`, begun.token, big);
    }
    const replay = await store.begin('acct_1', 'big-3', 'fp', t0 + 1);
    assert.equal(replay.kind, 'replay');
    if (replay.kind === 'replay') assert.ok(replay.response.body.equals(big.body));
    assert.ok(store.storedBytes() > 32 * 1024 * 1024);
    assert.deepEqual(store.entryCount(), { completed: 8, inProgress: 0 });
    await store.close();
    const before = sizeOnDisk(dataDir);
    assert.ok(before > 32 * 1024 * 1024, `on disk before sweep: ${before}`);

    const reopened = openIdempotencyStore(dataDir, { sweepIntervalMs: 0, retentionMs: 60_000 });
    assert.deepEqual(await reopened.sweep(t0 + 60_000), { expired: 8, evicted: 0 });
    assert.equal(reopened.storedBytes(), 0);
    await reopened.close();
    const afterSweep = sizeOnDisk(dataDir);
    assert.ok(afterSweep < 1024 * 1024, `on disk after sweep: ${afterSweep} (before: ${before})`);
  });

  test('idempotency - the periodic sweep runs on its own clock and stops at close', async () => {
    const dataDir = freshDir();
    let now = t0;
    const store = openIdempotencyStore(dataDir, {
      sweepIntervalMs: 20,
      retentionMs: 1_000,
      clock: () => now,
    });
    const begun = await store.begin('acct_1', 'key', 'fp', t0);
    assert.equal(begun.kind, 'started');
    if (begun.kind === 'started') await store.complete('acct_1', 'key', begun.token, imageResponse(10));
    await new Promise((resolve) => setTimeout(resolve, 100));
    assert.deepEqual(store.entryCount(), { completed: 1, inProgress: 0 });
    now = t0 + 1_000;
    await waitFor(() => store.entryCount().completed === 0, { timeoutMs: 10_000 });
    await store.close();
  });

  test('idempotency - the byte budget is exact: the counted total never exceeds it', async () => {
    const maxStoredBytes = 200_000;
    const store = openIdempotencyStore(freshDir(), { sweepIntervalMs: 0, maxStoredBytes });
    for (let index = 0; index < 50; index++) {
      const begun = await store.begin('acct_1', `key-${index}`, 'fp', t0 + index);
      assert.equal(begun.kind, 'started');
      if (begun.kind === 'started') {
        await store.complete(
          'acct_1',
          `key-${index}`,
          begun.token,
          imageResponse(10_000 + index * 500, index),
        );
      }
      assert.ok(store.storedBytes() <= maxStoredBytes, `stored ${store.storedBytes()} after ${index}`);
    }
    const { completed } = store.entryCount();
    // The newest bodies are ~34 KB each, so about five of them fill 200 KB.
    assert.ok(completed >= 5 && completed < 20, `kept ${completed}`);
    await store.close();
  });

  test('idempotency - threads racing on one file start each key exactly once', async () => {
    const path = join(freshDir(), 'idempotency.db');
    // Create the schema up front, so the race is about the keys, not the first open.
    await new SqliteIdempotencyStore({ path, sweepIntervalMs: 0 }).close();
    const threads = 4;
    const keys = 150;
    const start = new SharedArrayBuffer(8);
    const signal = new Int32Array(start);
    const workers = Array.from(
      { length: threads },
      (_, index) =>
        new Worker(new URL('./fixtures/begin-worker.ts', import.meta.url), {
          workerData: { path, keys, offset: index * 37, start },
        }),
    );
    const reports = workers.map(
      (worker) =>
        new Promise<{ startedKeys: string[]; other: Record<string, number> }>((resolve, reject) => {
          worker.once('message', resolve);
          worker.once('error', reject);
        }),
    );
    try {
      await waitFor(() => Atomics.load(signal, 1) === threads, { timeoutMs: 30_000 });
      Atomics.store(signal, 0, 1);
      Atomics.notify(signal, 0);
      const results = await Promise.all(reports);
      const all = results.flatMap((result) => result.startedKeys);
      assert.equal(all.length, keys, `started ${all.length} of ${keys}`);
      assert.equal(new Set(all).size, keys);
      for (const result of results)
        assert.deepEqual(
          Object.keys(result.other).filter((kind) => kind !== 'in-progress'),
          [],
        );
    } finally {
      await Promise.all(workers.map((worker) => worker.terminate()));
    }
  });

  test('idempotency - a closed store rejects calls with PF_ERR_STORAGE_UNAVAILABLE', async () => {
    const store = openIdempotencyStore(freshDir(), { sweepIntervalMs: 0 });
    await store.close();
    await assert.rejects(store.begin('acct_1', 'key', 'fp', t0), (error) =>
      isPixelfleetError(error, 'PF_ERR_STORAGE_UNAVAILABLE'),
    );
    await assert.rejects(store.sweep(t0), (error) => isPixelfleetError(error, 'PF_ERR_STORAGE_UNAVAILABLE'));
  });

  test('idempotency - refuses a database written by a newer schema', async () => {
    const dataDir = freshDir();
    await openIdempotencyStore(dataDir, { sweepIntervalMs: 0 }).close();
    const database = new DatabaseSync(join(dataDir, 'idempotency.db'));
    database.exec('PRAGMA user_version = 99');
    database.close();
    assert.throws(
      () => openIdempotencyStore(dataDir, { sweepIntervalMs: 0 }),
      (error) => isPixelfleetError(error, 'PF_ERR_STORAGE_CORRUPT'),
    );
  });

  test('idempotency - constructor and arguments reject bad values with RangeError', async () => {
    const path = join(freshDir(), 'idempotency.db');
    for (const options of [
      { retentionMs: 0 },
      { retentionMs: 1.5 },
      { defaultLeaseMs: -1 },
      { maxStoredBytes: Number.NaN },
      { sweepIntervalMs: -5 },
      { busyTimeoutMs: 0.5 },
    ]) {
      assert.throws(
        () => new SqliteIdempotencyStore({ path, ...options }),
        RangeError,
        JSON.stringify(options),
      );
    }
    assert.throws(() => new SqliteIdempotencyStore({ path: '' }), RangeError);
    const store = new SqliteIdempotencyStore({ path, sweepIntervalMs: 0 });
    try {
      await assert.rejects(store.begin('', 'key', 'fp', t0), RangeError);
      await assert.rejects(store.begin('acct_1', 'key', '', t0), RangeError);
      await assert.rejects(store.begin('acct_1', 'key', 'fp', Number.NaN), RangeError);
      await assert.rejects(store.begin('acct_1', 'key', 'fp', t0, 0), RangeError);
      const begun = await store.begin('acct_1', 'key', 'fp', t0);
      assert.equal(begun.kind, 'started');
      if (begun.kind !== 'started') return;
      await assert.rejects(
        store.complete('acct_1', 'key', begun.token, { status: 42, headers: {}, body: Buffer.alloc(0) }),
        RangeError,
      );
      await assert.rejects(
        store.complete('acct_1', 'key', begun.token, {
          status: 200,
          headers: { 'content-length': 5 as unknown as string },
          body: Buffer.alloc(0),
        }),
        RangeError,
      );
      // The rejected attempts changed nothing: the claim still holds.
      assert.equal((await store.begin('acct_1', 'key', 'fp', t0)).kind, 'in-progress');
    } finally {
      await store.close();
    }
  });
});
