/**
 * Whole-cluster crash: all three node processes are killed with SIGKILL and restarted from their
 * disks; every acknowledged enqueue, ack and nack is still there.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { RaftQueueClient } from '../../src/queue/raft/index.ts';
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
