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
