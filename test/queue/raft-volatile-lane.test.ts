/**
 * Non-durable jobs on a real 3-process Raft queue: they live in the leader's volatile lane (no
 * log entry for enqueue, claim or ack), and when the leader is killed the api's client enqueues
 * the ones it still waits for again on the new leader, so a synchronous request is not left
 * hanging until its timeout.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { isPixelfleetError } from '../../src/errors/index.ts';
import { openRaftQueueNode, RaftQueueClient } from '../../src/queue/raft/index.ts';
import type { ClaimedJob } from '../../src/queue/types.ts';
import { freePort, tempDir, testClusterSecret, waitFor } from '../support/index.ts';
import { startProcessCluster } from './fixtures/raft-process-cluster.ts';

const syncJob = (id: string) => ({
  id,
  account: 'acct',
  payload: { kind: 'test', id },
  deadline: Date.now() + 60_000,
  retentionMs: 60_000,
  durable: false,
});

test('raft queue - non-durable jobs skip the log and are re-sent after kill -9 of the leader', {
  timeout: 90_000,
}, async (t) => {
  const cluster = await startProcessCluster();
  t.after(() => cluster.close());
  const leader = await cluster.leader();
  const api = new RaftQueueClient({ nodes: cluster.clientAddresses, attemptTimeoutMs: 1_000 });
  const worker = new RaftQueueClient({ nodes: cluster.clientAddresses, attemptTimeoutMs: 1_000 });
  t.after(() => api.close());
  t.after(() => worker.close());

  // A durable job first, so the leader has caught up and its log is quiet.
  await api.enqueue({ id: 'durable-1', account: 'acct', payload: {} });
  const before = await cluster.status(leader);
  for (let index = 0; index < 20; index++) {
    const result = await api.enqueue(syncJob(`quick-${index}`));
    assert.deepEqual(result, { id: `quick-${index}`, duplicate: false, state: 'queued' });
  }
  assert.equal((await api.enqueue(syncJob('quick-0'))).duplicate, true, 'deduplicated within the lane');
  const claimed: ClaimedJob[] = [];
  for (let index = 0; index < 21; index++) {
    const job = await worker.claim({ consumer: 'w', leaseMs: 30_000 });
    assert.ok(job);
    claimed.push(job);
  }
  assert.deepEqual(
    claimed.map((job) => job.id).sort(),
    ['durable-1', ...Array.from({ length: 20 }, (_, index) => `quick-${index}`)].sort(),
  );
  for (const job of claimed) {
    if (job.id === 'durable-1') continue;
    await worker.ack(job.id, job.leaseId);
    api.settled(job.id); // as the api role does once the result arrived
  }
  const after = await cluster.status(leader);
  // Only the durable job's claim reached the log (plus perhaps a tick), never 60 volatile commands.
  assert.ok(after.lastIndex - before.lastIndex <= 3, `log grew by ${after.lastIndex - before.lastIndex}`);
  const durableJob = claimed.find((job) => job.id === 'durable-1')!;
  await worker.ack(durableJob.id, durableJob.leaseId);

  // Now jobs the leader holds when it dies: 10 queued, 1 claimed (its worker keeps it).
  for (let index = 0; index < 11; index++) await api.enqueue(syncJob(`lost-${index}`));
  const inHand = await worker.claim({ consumer: 'w', leaseMs: 30_000 });
  assert.ok(inHand);
  api.settled('lost-10'); // the api was told this one is finished: not re-sent
  await cluster.kill(leader);

  const delivered = new Set<string>();
  // Including the claimed one: the api cannot know a worker holds it.
  const expected = Array.from({ length: 10 }, (_, index) => `lost-${index}`);
  await waitFor(
    async () => {
      const job = await worker.claim({ consumer: 'w2', leaseMs: 30_000, waitMs: 500 });
      if (job !== undefined) {
        delivered.add(job.id);
        await worker.ack(job.id, job.leaseId);
      }
      return expected.every((id) => delivered.has(id));
    },
    { timeoutMs: 30_000, message: 'the lost jobs to be re-sent to the new leader' },
  );
  assert.ok(!delivered.has('lost-10'), 'a settled job is not re-sent');
  assert.ok(![...delivered].some((id) => id.startsWith('quick-')), 'settled jobs are not re-sent');
  assert.ok(api.clientStats().volatileResent >= expected.length);

  // The old lease fences nothing on the new leader.
  await assert.rejects(worker.ack(inHand.id, inHand.leaseId), (error) =>
    isPixelfleetError(error, 'PF_ERR_LEASE_LOST'),
  );
  t.diagnostic(`re-sent ${api.clientStats().volatileResent} non-durable jobs after the leader's death`);
});

test('raft queue - the volatile lane alternates with the durable one, merges stats and fences its leases', {
  timeout: 30_000,
}, async (t) => {
  const directory = await tempDir(undefined, 'pixelfleet-raft-');
  t.after(() => directory.remove());
  const node = await openRaftQueueNode({
    id: 'n1',
    listen: { host: '127.0.0.1', port: await freePort() },
    peers: {},
    dataDir: directory.path,
    clusterSecret: testClusterSecret,
  });
  t.after(() => node.close());
  const queue = node.queue;
  await waitFor(() => queue.writable(), { timeoutMs: 10_000, message: 'the node to lead' });
  for (let index = 0; index < 3; index++) {
    await queue.enqueue({ id: `durable-${index}`, account: 'a', payload: {} });
    await queue.enqueue(syncJob(`sync-${index}`));
  }
  const stats = await queue.stats();
  assert.equal(stats.depth, 6, 'both lanes count');
  assert.equal(stats.perAccount.a?.queued, 3, 'volatile jobs are in account acct');
  const order: string[] = [];
  const jobs: ClaimedJob[] = [];
  for (let index = 0; index < 6; index++) {
    const job = await queue.claim({ consumer: 'w', leaseMs: 30_000 });
    assert.ok(job);
    order.push(job.id.split('-')[0]!);
    jobs.push(job);
  }
  assert.deepEqual(order, ['sync', 'durable', 'sync', 'durable', 'sync', 'durable']);
  const sync = jobs.find((job) => job.id === 'sync-0')!;
  await assert.rejects(queue.ack(sync.id, 'lease-1'), (error) =>
    isPixelfleetError(error, 'PF_ERR_LEASE_LOST'),
  );
  await assert.rejects(queue.ack('sync-unknown', 'AAAAAAAAAAAA.lease-1'), (error) =>
    isPixelfleetError(error, 'PF_ERR_LEASE_LOST'),
  );
  const extended = await queue.extend(sync.id, sync.leaseId, 60_000);
  assert.ok(extended.leaseExpiresAt > sync.leaseExpiresAt);
  await queue.ack(sync.id, sync.leaseId, { done: true });
  assert.equal((await queue.get(sync.id))?.state, 'succeeded');
  // A waiting claim is answered by the next volatile enqueue at once.
  const waiting = queue.claim({ consumer: 'w', leaseMs: 30_000, waitMs: 10_000 });
  await queue.enqueue(syncJob('sync-late'));
  assert.equal((await waiting)?.id, 'sync-late');
  const lane = queue.laneToken();
  assert.equal(await queue.watchLane('another-lane', 1_000), lane, 'a stale token is answered at once');
  assert.equal(await queue.watchLane(lane, 50), lane, 'the same lane after the wait');
});
