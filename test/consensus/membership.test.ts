import assert from 'node:assert/strict';
import { test } from 'node:test';
import { decodeConfChange } from '../../src/consensus/index.ts';
import { TestCluster } from './harness.ts';

const three = ['n1', 'n2', 'n3'];

test('consensus - a new member joins, catches up and becomes a voter', () => {
  const cluster = new TestCluster(three);
  cluster.elect('n1');
  cluster.propose('n1', 'a');
  cluster.start('n4', []);
  assert.equal(cluster.node('n4').status().voters.length, 0, 'a joining node starts passive');
  cluster.node('n1').proposeConfChange({ add: 'n4' });
  cluster.flush();
  cluster.tickAll(3);
  for (const id of [...three, 'n4']) {
    assert.deepEqual(cluster.node(id).status().voters.sort(), ['n1', 'n2', 'n3', 'n4'], id);
  }
  assert.deepEqual(cluster.appliedValues('n4'), ['a']);
  cluster.propose('n1', 'b');
  assert.deepEqual(cluster.appliedValues('n4'), ['a', 'b']);
});

test('consensus - only one membership change may be pending at a time', () => {
  const cluster = new TestCluster(three);
  cluster.elect('n1');
  const ticket = cluster.node('n1').proposeConfChange({ add: 'n4' });
  assert.deepEqual(decodeConfChange(cluster.node('n1').entryAt(ticket.index)!.data), { add: 'n4' });
  assert.throws(() => cluster.node('n1').proposeConfChange({ add: 'n5' }), {
    code: 'PF_ERR_PROPOSAL_DROPPED',
  });
});

test('consensus - a new leader accepts no change before its earlier config entries are applied', () => {
  const cluster = new TestCluster(three);
  cluster.elect('n1');
  cluster.filter = (message) => message.type !== 'appendResponse';
  cluster.node('n1').proposeConfChange({ add: 'n4' });
  cluster.flush();
  assert.throws(() => cluster.node('n1').proposeConfChange({ remove: 'n3' }), {
    code: 'PF_ERR_PROPOSAL_DROPPED',
  });
});

test('consensus - removing the leader makes it step down and the rest elect a successor', () => {
  const cluster = new TestCluster(three);
  cluster.elect('n1');
  cluster.node('n1').proposeConfChange({ remove: 'n1' });
  cluster.flush();
  cluster.tickAll(2);
  assert.equal(cluster.node('n1').status().role, 'follower');
  assert.deepEqual(cluster.node('n2').status().voters.sort(), ['n2', 'n3']);
  cluster.tickAll(40);
  const leaders = cluster.leaders();
  assert.equal(leaders.length, 1);
  assert.notEqual(leaders[0], 'n1', 'a removed node never campaigns');
  cluster.propose(leaders[0]!, 'after');
  assert.deepEqual(cluster.appliedValues('n2'), ['after']);
});

test('consensus - membership changes are validated', () => {
  const cluster = new TestCluster(three);
  cluster.elect('n1');
  const leader = cluster.node('n1');
  assert.throws(() => leader.proposeConfChange({ add: 'n2' }), RangeError);
  assert.throws(() => leader.proposeConfChange({ remove: 'n9' }), RangeError);
  assert.throws(() => leader.proposeConfChange({} as never), RangeError);
  assert.throws(() => cluster.node('n2').proposeConfChange({ add: 'n4' }), { code: 'PF_ERR_NOT_LEADER' });
});
