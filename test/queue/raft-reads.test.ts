/**
 * Which reads of the Raft queue pay a ReadIndex round (a heartbeat to every follower and back):
 * `get` everywhere (linearizable), `stats` only on a follower — the leader answers the
 * once-a-second monitoring polls of every api server and worker from its own applied state.
 * The round is observed at its one entry point, the node's `RaftHost.read`.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { RaftQueueNode } from '../../src/queue/raft/index.ts';
import { startInProcessCluster } from './fixtures/raft-in-process-cluster.ts';

/** Counts the ReadIndex rounds a node's queue asks its host for. */
function countReads(node: RaftQueueNode): { readonly count: number } {
  const counter = { count: 0 };
  const read = node.host.read.bind(node.host);
  node.host.read = () => {
    counter.count++;
    return read();
  };
  return counter;
}

test('raft queue - the leader answers stats without a ReadIndex round; get and a follower take one', {
  timeout: 60_000,
}, async (t) => {
  const cluster = await startInProcessCluster({ size: 3, clients: false });
  t.after(() => cluster.close());
  const leader = await cluster.leader();
  const follower = [...cluster.nodes.values()].find((node) => node !== leader)!;
  await leader.queue.enqueue({ id: 'job-1', account: 'acct', payload: { n: 1 } });

  const leaderReads = countReads(leader);
  for (let poll = 0; poll < 20; poll++) {
    const stats = await leader.queue.stats();
    assert.equal(stats.depth, 1);
  }
  assert.equal(leaderReads.count, 0, 'stats on the leader went through ReadIndex');

  assert.equal((await leader.queue.get('job-1'))?.state, 'queued');
  assert.equal(leaderReads.count, 1, 'get on the leader is linearizable');

  const followerReads = countReads(follower);
  // The follower has applied the enqueue once its ReadIndex round confirms the commit index.
  assert.equal((await follower.queue.stats()).depth, 1);
  assert.equal(followerReads.count, 1, 'stats on a follower is linearizable');
});
