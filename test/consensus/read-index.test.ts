import assert from 'node:assert/strict';
import { test } from 'node:test';
import { TestCluster } from './harness.ts';

const three = ['n1', 'n2', 'n3'];

test('consensus - ReadIndex on the leader answers after a quorum heartbeat round', () => {
  const cluster = new TestCluster(three);
  cluster.elect('n1');
  cluster.propose('n1', 'a');
  const commit = cluster.node('n1').status().commit;
  cluster.node('n1').readIndex('read-1');
  cluster.drain('n1');
  assert.deepEqual(cluster.reads.get('n1'), [], 'not before leadership is confirmed');
  assert.ok(cluster.inFlight.some((message) => message.type === 'heartbeat' && message.context === 'read-1'));
  cluster.flush();
  assert.deepEqual(cluster.reads.get('n1'), [{ index: commit, context: 'read-1' }]);
});

test('consensus - ReadIndex on a follower is forwarded to the leader', () => {
  const cluster = new TestCluster(three);
  cluster.elect('n1');
  cluster.propose('n1', 'a');
  cluster.node('n2').readIndex('read-2');
  cluster.flush();
  const [readState] = cluster.reads.get('n2')!;
  assert.equal(readState?.context, 'read-2');
  assert.equal(readState?.index, cluster.node('n1').status().commit);
});

test('consensus - a leader cut off from the quorum never confirms a read', () => {
  const cluster = new TestCluster(three);
  cluster.elect('n1');
  cluster.isolate('n1');
  cluster.node('n1').readIndex('stale-read');
  cluster.flush();
  cluster.tick('n1', 5);
  cluster.flush();
  assert.deepEqual(cluster.reads.get('n1'), []);
});

test('consensus - a new leader defers reads until it commits an entry of its term', () => {
  const cluster = new TestCluster(three);
  cluster.elect('n1');
  cluster.propose('n1', 'a');
  cluster.restart('n1', three);
  // Appends are lost, so n2 wins but cannot commit its no-op yet.
  cluster.filter = (message) => message.type !== 'append';
  cluster.tickAll(40);
  const leader = cluster.leaders()[0]!;
  cluster.node(leader).readIndex('early-read');
  cluster.flush();
  assert.deepEqual(cluster.reads.get(leader), []);
  cluster.heal();
  cluster.tickAll(2);
  const [readState] = cluster.reads.get(leader)!;
  assert.equal(readState?.context, 'early-read');
  assert.ok(readState!.index >= cluster.node(leader).status().lastIndex - 1);
});

test('consensus - lease reads answer at once from the leader', () => {
  const cluster = new TestCluster(three, { readOnly: 'lease' });
  cluster.elect('n1');
  cluster.node('n1').readIndex('lease-read');
  cluster.drain('n1');
  assert.deepEqual(cluster.reads.get('n1'), [
    { index: cluster.node('n1').status().commit, context: 'lease-read' },
  ]);
});

test('consensus - a follower with no known leader refuses a read', () => {
  const cluster = new TestCluster(three);
  assert.throws(() => cluster.node('n2').readIndex('nobody'), { code: 'PF_ERR_NOT_LEADER' });
  assert.throws(() => cluster.node('n2').readIndex(''), RangeError);
});
