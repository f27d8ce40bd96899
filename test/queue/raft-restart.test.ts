/**
 * Restarts: all three node processes killed with SIGKILL and restarted from their disks keep
 * every acknowledged enqueue, ack and nack; a node restarts from its snapshot plus the log.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { openRaftQueueNode, RaftQueueClient } from '../../src/queue/raft/index.ts';
import { freePort, tempDir, testClusterSecret, waitFor } from '../support/index.ts';
import { createLedger, drainAndCheck, runEnqueueLoad } from './fixtures/raft-load.ts';
import { startProcessCluster } from './fixtures/raft-process-cluster.ts';

test('raft queue - every acknowledged job survives kill -9 of all nodes', { timeout: 120_000 }, async (t) => {
  const cluster = await startProcessCluster();
  t.after(() => cluster.close());
  await cluster.leader();
  const client = new RaftQueueClient({ nodes: cluster.clientAddresses });
  t.after(() => client.close());

  const ledger = createLedger();
  let stop = false;
  const load = runEnqueueLoad(client, ledger, { inFlight: 32, prefix: 'restart', shouldStop: () => stop });
  while (ledger.acknowledged.size < 1500) await new Promise((resolve) => setTimeout(resolve, 20));
  stop = true;
  await load;
  const acked = new Map<string, number>();
  for (let index = 0; index < 100; index++) {
    const job = (await client.claim({ consumer: 'w', leaseMs: 60_000 }))!;
    await client.ack(job.id, job.leaseId, { index });
    acked.set(job.id, index);
  }
  const dead = (await client.claim({ consumer: 'w', leaseMs: 60_000 }))!;
  await client.nack(dead.id, dead.leaseId, { reason: 'poison', retry: false });
  const before = await client.stats();

  // Crash everything at once (a power cut), then boot from disk.
  await Promise.all(cluster.ids.map((id) => cluster.kill(id)));
  await Promise.all(cluster.ids.map((id) => cluster.start(id)));
  await cluster.leader();

  const after = await client.stats();
  assert.equal(after.enqueuedTotal, before.enqueuedTotal);
  assert.equal(after.ackedTotal, 100);
  assert.equal(after.deadLetters, 1);
  for (const [id, index] of acked) {
    const record = await client.get(id);
    assert.equal(record?.state, 'succeeded');
    assert.deepEqual(record?.outcome, { index });
  }
  assert.equal((await client.get(dead.id))?.lastError, 'poison');
  // Every job still queued is delivered exactly once (the settled ones count as delivered).
  const deliveries = new Map<string, number>();
  for (const id of acked.keys()) deliveries.set(id, 1);
  deliveries.set(dead.id, 1);
  const result = await drainAndCheck(client, ledger, { deliveries });
  assert.equal(result.lost, 0);
  assert.equal(result.duplicated, 0);
  assert.equal(result.consumed, ledger.acknowledged.size);
});

test('raft queue - a node restarts from its snapshot plus the log after it', {
  timeout: 60_000,
}, async (t) => {
  const directory = await tempDir(t, 'pixelfleet-raft-');
  const listen = { host: '127.0.0.1', port: await freePort() };
  const open = () =>
    openRaftQueueNode({
      id: 'n1',
      listen,
      peers: {},
      dataDir: directory.path,
      clusterSecret: testClusterSecret,
      snapshotEveryBytes: 32 * 1024,
    });
  const first = await open();
  for (let index = 0; index < 600; index++) {
    await first.queue.enqueue({
      id: `j${index}`,
      account: `a${index % 3}`,
      payload: { index, pad: 'x'.repeat(100) },
    });
    if (index % 3 === 0) {
      const job = (await first.queue.claim({ consumer: 'w', leaseMs: 60_000 }))!;
      await first.queue.ack(job.id, job.leaseId, { index });
    }
  }
  await waitFor(() => first.status().snapshotIndex > 0, { message: 'a snapshot' });
  const before = JSON.stringify(first.application.machine.snapshot());
  const snapshotIndex = first.status().snapshotIndex;
  assert.ok(snapshotIndex < first.status().lastIndex, 'entries after the snapshot exist');
  await first.close();

  const second = await open();
  t.after(() => second.close());
  await waitFor(() => second.host.leaderCaughtUp);
  assert.equal(second.status().snapshotIndex, snapshotIndex);
  assert.equal(JSON.stringify(second.application.machine.snapshot()), before);
  const stats = await second.queue.stats();
  assert.equal(stats.enqueuedTotal, 600);
  assert.equal(stats.ackedTotal, 200);
});

test('raft queue - a one-node group in embedded use redelivers the leases of the previous process on start', {
  timeout: 30_000,
}, async (t) => {
  const directory = await tempDir(t, 'pixelfleet-raft-');
  const listen = { host: '127.0.0.1', port: await freePort() };
  const open = () =>
    openRaftQueueNode({
      id: 'n1',
      listen,
      peers: {},
      dataDir: directory.path,
      clusterSecret: testClusterSecret,
      releaseLeasesOnStart: true,
    });
  const first = await open();
  await first.queue.enqueue({ id: 'held', account: 'a', payload: {} });
  const claimed = (await first.queue.claim({ consumer: 'w', leaseMs: 600_000 }))!;
  await first.close();

  const second = await open();
  t.after(() => second.close());
  const again = await second.queue.claim({ consumer: 'w', leaseMs: 60_000, waitMs: 5_000 });
  assert.equal(again?.id, claimed.id);
  assert.equal(again?.attempt, 2);
});
