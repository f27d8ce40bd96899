/**
 * Membership changes, one voter at a time: a fourth node joins a running cluster (its address
 * travels through the log so every member can reach it) and catches up; then a founding member
 * is removed and the remaining three keep committing. The same through `pixelfleet queue members`
 * against a cluster of processes.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { runQueueCommand } from '../../src/cli/queue.ts';
import { openRaftQueueNode, RaftQueueClient } from '../../src/queue/raft/index.ts';
import { freePort, testClusterSecret, waitFor } from '../support/index.ts';
import { startInProcessCluster } from './fixtures/raft-in-process-cluster.ts';
import { startProcessCluster } from './fixtures/raft-process-cluster.ts';

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

test('raft queue - pixelfleet queue members add/remove/transfer administer a running process cluster', {
  timeout: 90_000,
}, async (t) => {
  const cluster = await startProcessCluster({ spares: 1 });
  t.after(() => cluster.close());
  await cluster.leader();
  const admin = (argv: string[], env: NodeJS.ProcessEnv = { PIXELFLEET_CLUSTER_SECRET: testClusterSecret }) =>
    quietly(() => runQueueCommand([...argv, '--cluster', cluster.clientAddresses.join(',')], env));

  // Without the secret, or with a wrong one, nothing changes.
  const addN4 = ['members', 'add', '--id', 'n4', '--address', `127.0.0.1:${cluster.raftPorts.n4}`];
  assert.equal((await admin(addN4, {})).code, 2);
  const forged = await admin(addN4, { PIXELFLEET_CLUSTER_SECRET: 'not-the-cluster-secret-at-all' });
  assert.equal(forged.code, 2);
  assert.match(forged.output, /proof of the cluster secret/);

  await cluster.start('n4'); // --join: passive until added
  const added = await admin(addN4);
  assert.equal(added.code, 0, added.output);
  assert.deepEqual(JSON.parse(added.output).voters.sort(), ['n1', 'n2', 'n3', 'n4']);
  await waitFor(
    async () => (await cluster.status('n4')).applied >= (await cluster.status(await cluster.leader())).commit,
  );

  const status = await admin(['status']);
  assert.equal(status.code, 0);
  const document = JSON.parse(status.output);
  assert.equal(document.role, 'leader');
  assert.deepEqual(
    Object.keys(document.followers).sort(),
    ['n1', 'n2', 'n3', 'n4'].filter((id) => id !== document.id),
  );

  const transferred = await admin(['members', 'transfer', '--to', 'n4']);
  assert.equal(transferred.code, 0, transferred.output);
  assert.equal(await cluster.leader({ timeoutMs: 10_000 }), 'n4');

  const removed = await admin(['members', 'remove', '--id', 'n1']);
  assert.equal(removed.code, 0, removed.output);
  assert.deepEqual(JSON.parse(removed.output).voters.sort(), ['n2', 'n3', 'n4']);
  await cluster.kill('n1');
  const client = new RaftQueueClient({
    nodes: cluster.allIds.map((id) => `127.0.0.1:${cluster.clientPorts[id]}`),
  });
  t.after(() => client.close());
  await client.enqueue({ id: 'after-removal', account: 'a', payload: {} });
  assert.equal((await client.get('after-removal'))?.state, 'queued');
});

async function quietly(run: () => Promise<number>): Promise<{ code: number; output: string }> {
  const lines: string[] = [];
  const { log, error } = console;
  console.log = (...args: unknown[]) => lines.push(args.join(' '));
  console.error = (...args: unknown[]) => lines.push(args.join(' '));
  try {
    return { code: await run(), output: lines.join('\n') };
  } finally {
    console.log = log;
    console.error = error;
  }
}
