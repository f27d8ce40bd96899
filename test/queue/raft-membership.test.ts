/**
 * Membership changes, one voter at a time: a fourth node joins a running cluster (its address
 * travels through the log so every member can reach it) and catches up; then a founding member
 * is removed and the remaining three keep committing.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { openRaftQueueNode, RaftQueueClient } from '../../src/queue/raft/index.ts';
import { freePort, testClusterSecret, waitFor } from '../support/index.ts';
import { startInProcessCluster } from './fixtures/raft-in-process-cluster.ts';

test('raft queue - adds a voter to a running cluster, then removes one', { timeout: 60_000 }, async (t) => {
  const cluster = await startInProcessCluster({ size: 3 });
  t.after(() => cluster.close());
  const leader = await cluster.leader();
  const client = new RaftQueueClient({ nodes: cluster.clientAddresses() });
  t.after(() => client.close());
  for (let index = 0; index < 50; index++)
    await client.enqueue({ id: `before-${index}`, account: 'a', payload: {} });

  const port = await freePort();
  const peers: Record<string, { host: string; port: number }> = {};
  for (const id of cluster.ids) peers[id] = { host: '127.0.0.1', port: cluster.raftPorts[id]! };
  const joiner = await openRaftQueueNode({
    id: 'n4',
    listen: { host: '127.0.0.1', port },
    peers,
    voters: [],
    dataDir: `${cluster.directory.path}/n4`,
    clusterSecret: testClusterSecret,
    clientListen: { host: '127.0.0.1', port: 0 },
  });
  cluster.nodes.set('n4', joiner);

  await leader.addMember('n4', { host: '127.0.0.1', port });
  await waitFor(() => joiner.host.applied === leader.host.applied && joiner.status().voters.includes('n4'), {
    message: 'the new member to catch up',
  });
  assert.deepEqual(leader.status().voters.sort(), ['n1', 'n2', 'n3', 'n4']);
  assert.equal(
    (await joiner.queue.get('before-49'))?.state,
    'queued',
    'the new member serves linearizable reads',
  );

  const removed = cluster.ids.find((id) => id !== leader.id)!;
  await leader.removeMember(removed);
  await cluster.stop(removed);
  assert.equal(leader.status().voters.includes(removed), false);
  for (let index = 0; index < 20; index++)
    await client.enqueue({ id: `after-${index}`, account: 'a', payload: {} });
  await waitFor(() => joiner.host.applied === leader.host.applied);
  assert.equal((await client.stats()).depth, 70);
  // Every remaining member agrees on the membership.
  for (const node of cluster.nodes.values()) {
    assert.deepEqual(
      node.status().voters.sort(),
      ['n1', 'n2', 'n3', 'n4'].filter((id) => id !== removed),
    );
  }
});
