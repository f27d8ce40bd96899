import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { isPixelfleetError } from '../../src/errors/index.ts';
import { openEmbeddedQueue } from '../../src/queue/index.ts';
import { runQueueContract } from './contract.ts';

async function temporaryDataDir(): Promise<string> {
  return mkdtemp(join(tmpdir(), 'pixelfleet-queue-'));
}

runQueueContract('embedded', async () => {
  const dataDir = await temporaryDataDir();
  const queue = await openEmbeddedQueue({ dataDir });
  return {
    queue,
    close: async () => {
      await queue.close();
      await rm(dataDir, { recursive: true, force: true });
    },
  };
});

test('queue - embedded state survives a clean reopen', async () => {
  const dataDir = await temporaryDataDir();
  try {
    const first = await openEmbeddedQueue({ dataDir });
    for (let index = 0; index < 5; index++)
      await first.enqueue({ id: `j${index}`, account: 'a', payload: { index } });
    const claimed = (await first.claim({ consumer: 'w', leaseMs: 60_000 }))!;
    await first.ack(claimed.id, claimed.leaseId, { ok: true });
    await first.close();

    const second = await openEmbeddedQueue({ dataDir });
    assert.equal((await second.get('j0'))?.state, 'succeeded');
    assert.deepEqual((await second.get('j0'))?.outcome, { ok: true });
    const stats = await second.stats();
    assert.equal(stats.depth, 4);
    assert.equal(stats.ackedTotal, 1);
    assert.equal((await second.claim({ consumer: 'w', leaseMs: 1000 }))?.id, 'j1');
    await second.close();
  } finally {
    await rm(dataDir, { recursive: true, force: true });
  }
});

test('queue - embedded compacts its log into snapshots and replays them', async () => {
  const dataDir = await temporaryDataDir();
  try {
    const first = await openEmbeddedQueue({ dataDir, snapshotEvery: 50 });
    for (let index = 0; index < 300; index++) {
      await first.enqueue({ id: `j${index}`, account: `a${index % 3}`, payload: { index } });
      if (index % 2 === 0) {
        const claimed = (await first.claim({ consumer: 'w', leaseMs: 60_000 }))!;
        await first.ack(claimed.id, claimed.leaseId);
      }
    }
    const storage = first.storageStats();
    assert.ok(storage.compactions >= 2, `only ${storage.compactions} compactions`);
    const before = await first.stats();
    await first.close();

    const second = await openEmbeddedQueue({ dataDir, snapshotEvery: 50 });
    assert.deepEqual(await second.stats(), before);
    await second.close();
  } finally {
    await rm(dataDir, { recursive: true, force: true });
  }
});

test('queue - embedded writes nothing while idle, even after its leases end', async () => {
  const dataDir = await temporaryDataDir();
  try {
    const queue = await openEmbeddedQueue({ dataDir });
    await queue.enqueue({ id: 'a', account: 'x', payload: {} });
    const claimed = (await queue.claim({ consumer: 'w', leaseMs: 150 }))!;
    await queue.extend(claimed.id, claimed.leaseId, 200);
    await queue.ack(claimed.id, claimed.leaseId);
    const records = queue.storageStats().appendedRecords;
    // The timer still fires for the stale lease entries; the ticks change nothing, so no record.
    await sleep(500);
    assert.equal(queue.storageStats().appendedRecords, records);
    await queue.close();
  } finally {
    await rm(dataDir, { recursive: true, force: true });
  }
});

test('queue - embedded stops accepting writes after a disk failure', async () => {
  const dataDir = await temporaryDataDir();
  try {
    const queue = await openEmbeddedQueue({ dataDir });
    const waiting = queue.claim({ consumer: 'w', leaseMs: 1000, waitMs: 10_000 });
    queue.diskFailed(new Error('EIO: simulated'));
    assert.equal(queue.writable(), false);
    await assert.rejects(waiting, (error: unknown) => isPixelfleetError(error, 'PF_ERR_QUEUE_UNAVAILABLE'));
    await assert.rejects(queue.enqueue({ id: 'a', account: 'x', payload: {} }), (error: unknown) =>
      isPixelfleetError(error, 'PF_ERR_QUEUE_UNAVAILABLE'),
    );
    assert.deepEqual((await queue.stats()).depth, 0);
    await queue.close();
  } finally {
    await rm(dataDir, { recursive: true, force: true });
  }
});

test('queue - embedded refuses a second opener of the same data directory', async () => {
  const dataDir = await temporaryDataDir();
  try {
    const queue = await openEmbeddedQueue({ dataDir });
    await assert.rejects(openEmbeddedQueue({ dataDir }), (error: unknown) =>
      isPixelfleetError(error, 'PF_ERR_STORAGE_LOCKED'),
    );
    await queue.close();
    await assert.rejects(openEmbeddedQueue({ dataDir: '' }), RangeError);
    await assert.rejects(openEmbeddedQueue({ dataDir, snapshotEvery: 0 }), RangeError);
    await assert.rejects(openEmbeddedQueue({ dataDir, maxAttempts: 0 }), RangeError);
    const reopened = await openEmbeddedQueue({ dataDir });
    const huge = { bytes: 'x'.repeat(2 * 1024 * 1024) };
    await assert.rejects(reopened.enqueue({ id: 'huge', account: 'a', payload: huge }), RangeError);
    assert.equal(await reopened.get('huge'), undefined, 'a refused command changed the state');
    await reopened.close();
  } finally {
    await rm(dataDir, { recursive: true, force: true });
  }
});

test('queue - a non-durable enqueue is claimable at once and rejects a non-boolean flag', async () => {
  const directory = await mkdtemp(join(tmpdir(), 'pixelfleet-queue-'));
  const queue = await openEmbeddedQueue({ dataDir: directory });
  try {
    const result = await queue.enqueue({ id: 'volatile', account: 'a', payload: {}, durable: false });
    assert.equal(result.duplicate, false);
    const claimed = await queue.claim({ consumer: 'w', leaseMs: 1000 });
    assert.equal(claimed?.id, 'volatile');
    await assert.rejects(
      queue.enqueue({ id: 'bad', account: 'a', payload: {}, durable: 'no' as never }),
      TypeError,
    );
  } finally {
    await queue.close();
    await rm(directory, { recursive: true, force: true });
  }
});

test('queue - non-durable jobs live in a volatile lane: never logged, settled like the others', async () => {
  const dataDir = await temporaryDataDir();
  try {
    const queue = await openEmbeddedQueue({ dataDir, maxAttempts: 2 });
    const before = queue.storageStats();
    for (let index = 0; index < 4; index++) {
      await queue.enqueue({ id: `sync-${index}`, account: 'a', payload: { index }, durable: false });
    }
    const settled = [];
    for (let index = 0; index < 4; index++) {
      const job = (await queue.claim({ consumer: 'w', leaseMs: 60_000 }))!;
      await queue.extend(job.id, job.leaseId, 30_000);
      if (index === 0) await queue.nack(job.id, job.leaseId, { reason: 'corrupt', retry: false });
      else await queue.ack(job.id, job.leaseId, { ok: index });
      settled.push(job.id);
    }
    assert.deepEqual(settled, ['sync-0', 'sync-1', 'sync-2', 'sync-3']);
    assert.equal((await queue.get('sync-1'))?.state, 'succeeded');
    assert.equal((await queue.deadLetters())[0]?.id, 'sync-0');
    const stats = await queue.stats();
    assert.equal(stats.enqueuedTotal, 4);
    assert.equal(stats.ackedTotal, 3);
    assert.equal(stats.deadLetters, 1);
    // Not one record written for them: the log holds only the queue's own bookkeeping.
    assert.equal(queue.storageStats().appendedRecords, before.appendedRecords);
    await queue.enqueue({ id: 'async-0', account: 'a', payload: {} });
    assert.equal(queue.storageStats().appendedRecords, before.appendedRecords + 1, 'a durable job is');
    // A wrong lease is still fenced off.
    await queue.enqueue({ id: 'sync-x', account: 'a', payload: {}, durable: false });
    const job = (await queue.claim({ consumer: 'w', leaseMs: 60_000 }))!;
    await assert.rejects(queue.ack(job.id, `${job.leaseId}-stale`), (error) => isPixelfleetError(error));
    await queue.close();

    const reopened = await openEmbeddedQueue({ dataDir });
    assert.equal(await reopened.get('sync-1'), undefined, 'a volatile job does not survive a restart');
    // The leased volatile job is not redelivered; the durable one is still there.
    assert.equal((await reopened.stats()).depth, 1);
    assert.equal((await reopened.claim({ consumer: 'w', leaseMs: 1000 }))?.id, 'async-0');
    await reopened.close();
  } finally {
    await rm(dataDir, { recursive: true, force: true });
  }
});

test('queue - claims alternate between the durable and volatile lanes when both have work', async () => {
  const dataDir = await temporaryDataDir();
  const queue = await openEmbeddedQueue({ dataDir });
  try {
    for (let index = 0; index < 3; index++) {
      await queue.enqueue({ id: `async-${index}`, account: 'a', payload: {} });
      await queue.enqueue({ id: `sync-${index}`, account: 'a', payload: {}, durable: false });
    }
    await queue.enqueue({ id: 'sync-3', account: 'a', payload: {}, durable: false });
    const order: string[] = [];
    for (let index = 0; index < 7; index++)
      order.push((await queue.claim({ consumer: 'w', leaseMs: 60_000 }))!.id);
    assert.deepEqual(order, ['sync-0', 'async-0', 'sync-1', 'async-1', 'sync-2', 'async-2', 'sync-3']);
    assert.equal((await queue.stats()).inflight, 7);
    // A waiting claim is served from whichever lane gets work first.
    const waiting = queue.claim({ consumer: 'w', leaseMs: 60_000, waitMs: 5_000 });
    await queue.enqueue({ id: 'sync-late', account: 'b', payload: {}, durable: false });
    assert.equal((await waiting)?.id, 'sync-late');
  } finally {
    await queue.close();
    await rm(dataDir, { recursive: true, force: true });
  }
});
