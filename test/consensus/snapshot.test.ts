import assert from 'node:assert/strict';
import { test } from 'node:test';
import { decode, TestCluster, text } from './harness.ts';

const three = ['n1', 'n2', 'n3'];

test('consensus - a follower too far behind is sent the snapshot and catches up', () => {
  const cluster = new TestCluster(three);
  cluster.elect('n1');
  cluster.isolate('n3');
  for (let count = 0; count < 20; count++) cluster.propose('n1', `v${count}`);
  const leader = cluster.node('n1');
  const applied = leader.status().applied;
  const snapshot = leader.compact(applied, text(JSON.stringify(cluster.appliedValues('n1'))));
  assert.equal(snapshot.meta.index, applied);
  assert.deepEqual(snapshot.meta.voters, three);
  assert.equal(leader.status().firstIndex, applied + 1);
  cluster.heal();
  cluster.tickAll(3);
  assert.ok(cluster.sent.some((message) => message.type === 'snapshot' && message.to === 'n3'));
  const stored = cluster.storage.get('n3')!;
  assert.equal(stored.snapshot?.meta.index, applied);
  assert.equal(JSON.parse(decode(stored.snapshot!.data)).length, 20);
  cluster.propose('n1', 'after');
  assert.deepEqual(cluster.appliedValues('n3'), ['after'], 'entries after the snapshot are applied normally');
  assert.equal(cluster.node('n3').status().commit, leader.status().commit);
});

test('consensus - compaction rejects indexes outside (snapshot, applied]', () => {
  const cluster = new TestCluster(three);
  cluster.elect('n1');
  cluster.propose('n1', 'a');
  const node = cluster.node('n1');
  const applied = node.status().applied;
  assert.throws(() => node.compact(applied + 1, new Uint8Array()), RangeError);
  node.compact(applied, new Uint8Array());
  assert.throws(() => node.compact(applied, new Uint8Array()), RangeError);
});

test('consensus - a node restarts from its snapshot plus the entries after it', () => {
  const cluster = new TestCluster(three);
  cluster.elect('n1');
  for (const value of ['a', 'b', 'c']) cluster.propose('n1', value);
  const follower = cluster.node('n2');
  const applied = follower.status().applied;
  const snapshot = follower.compact(applied - 1, text('state'));
  const stored = cluster.storage.get('n2')!;
  stored.snapshot = snapshot;
  stored.entries = stored.entries.filter((entry) => entry.index > snapshot.meta.index);
  const restarted = cluster.restart('n2', three);
  const status = restarted.status();
  assert.equal(status.snapshotIndex, applied - 1);
  assert.equal(status.lastIndex, applied);
  assert.equal(status.applied, applied, 'the entry after the snapshot was re-applied');
  assert.deepEqual(cluster.appliedValues('n2').at(-1), 'c');
});
