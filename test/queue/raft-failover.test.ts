/**
 * A real 3-process Raft queue on loopback: under continuous enqueue load the leader is killed
 * with SIGKILL; a new leader is elected, enqueues resume, the killed node comes back and catches
 * up, and every acknowledged job is then delivered exactly once.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { RaftQueueClient } from '../../src/queue/raft/index.ts';
import { waitFor } from '../support/index.ts';
import { createLedger, drainAndCheck, runEnqueueLoad } from './fixtures/raft-load.ts';
import { startProcessCluster } from './fixtures/raft-process-cluster.ts';

test('raft queue - survives kill -9 of the leader under load with no acknowledged job lost or duplicated', {
  timeout: 120_000,
}, async (t) => {
  const cluster = await startProcessCluster();
  t.after(() => cluster.close());
  const leader = await cluster.leader();
  const client = new RaftQueueClient({ nodes: cluster.clientAddresses, attemptTimeoutMs: 1_000 });
  t.after(() => client.close());

  const ledger = createLedger();
  let stop = false;
  let killedAt = Number.POSITIVE_INFINITY;
  let resumedAt: number | undefined;
  const load = runEnqueueLoad(client, ledger, {
    inFlight: 16,
    prefix: 'failover',
    shouldStop: () => stop,
    observe(startedAt, finishedAt, ok) {
      if (ok && startedAt >= killedAt && resumedAt === undefined) resumedAt = finishedAt;
    },
  });
  await waitFor(() => ledger.acknowledged.size >= 200, { timeoutMs: 20_000, message: 'steady enqueues' });

  killedAt = performance.now();
  await cluster.kill(leader);
  await waitFor(() => resumedAt !== undefined, { timeoutMs: 20_000, message: 'enqueues to resume' });
  const gapMs = resumedAt! - killedAt;
  await sleep(300);
  stop = true;
  await load;
  t.diagnostic(`failover: enqueues resumed ${gapMs.toFixed(0)} ms after kill -9 of ${leader}`);

  const successor = await cluster.leader({ exclude: leader });
  assert.notEqual(successor, leader);
  assert.ok(gapMs < 10_000, `enqueues resumed only after ${gapMs} ms`);
  assert.equal(ledger.unacknowledged.size, 0, 'every enqueue was eventually acknowledged');

  // The killed node restarts from its disk and catches up.
  await cluster.start(leader);
  const leaderStatus = await cluster.status(successor);
  await waitFor(async () => (await cluster.status(leader)).applied >= leaderStatus.commit, {
    timeoutMs: 20_000,
    message: 'the restarted node to catch up',
  });

  const result = await drainAndCheck(client, ledger);
  t.diagnostic(
    `acknowledged ${ledger.acknowledged.size}, delivered ${result.consumed}, lost ${result.lost}, duplicated ${result.duplicated}`,
  );
  assert.equal(result.lost, 0, 'acknowledged jobs lost');
  assert.equal(result.duplicated, 0, 'jobs delivered twice');
  assert.equal(result.unknown, 0);
  const stats = await client.stats();
  assert.equal(stats.enqueuedTotal, result.consumed, 'one job per id');
});

test('raft queue - a graceful stop (SIGTERM) of the leader hands over leadership and exits 0', {
  timeout: 60_000,
}, async (t) => {
  const cluster = await startProcessCluster();
  t.after(() => cluster.close());
  const leader = await cluster.leader();
  const client = new RaftQueueClient({ nodes: cluster.clientAddresses });
  t.after(() => client.close());
  await client.enqueue({ id: 'before', account: 'a', payload: {} });
  const stoppedAt = performance.now();
  assert.equal(await cluster.stop(leader), 0);
  const successor = await cluster.leader({ exclude: leader, timeoutMs: 10_000 });
  t.diagnostic(
    `leadership moved ${leader} → ${successor} in ${(performance.now() - stoppedAt).toFixed(0)} ms`,
  );
  await client.enqueue({ id: 'after', account: 'a', payload: {} });
  assert.equal((await client.get('before'))?.state, 'queued');
  assert.equal((await client.stats()).depth, 2);
});
