import assert from 'node:assert/strict';
import { test } from 'node:test';
import { TestCluster, text } from './harness.ts';

const three = ['n1', 'n2', 'n3'];

test('consensus - leadership transfer hands over to an up-to-date follower at once', () => {
  const cluster = new TestCluster(three);
  cluster.elect('n1');
  cluster.propose('n1', 'a');
  const term = cluster.node('n1').status().term;
  cluster.node('n1').transferLeadership('n2');
  cluster.flush();
  assert.deepEqual(cluster.leaders(), ['n2']);
  assert.equal(cluster.node('n2').status().term, term + 1);
  assert.ok(cluster.sent.some((message) => message.type === 'timeoutNow' && message.to === 'n2'));
  cluster.propose('n2', 'b');
  assert.deepEqual(cluster.appliedValues('n1'), ['a', 'b']);
});

test('consensus - leadership transfer first brings a lagging target up to date', () => {
  const cluster = new TestCluster(three);
  cluster.elect('n1');
  cluster.isolate('n3');
  for (const value of ['a', 'b', 'c']) cluster.propose('n1', value);
  cluster.heal();
  cluster.node('n1').transferLeadership('n3');
  cluster.flush();
  assert.deepEqual(cluster.leaders(), ['n3']);
  assert.equal(cluster.node('n3').status().lastIndex, cluster.node('n1').status().lastIndex);
});

test('consensus - proposals are refused during a transfer, which is abandoned after an election timeout', () => {
  const cluster = new TestCluster(three);
  cluster.elect('n1');
  cluster.cut('n1', 'n3');
  cluster.node('n1').transferLeadership('n3');
  assert.throws(() => cluster.node('n1').propose(text('x')), { code: 'PF_ERR_PROPOSAL_DROPPED' });
  assert.equal(cluster.node('n1').status().leadTransferee, 'n3');
  cluster.tick('n1', 10);
  assert.equal(cluster.node('n1').status().leadTransferee, null);
  assert.doesNotThrow(() => cluster.node('n1').propose(text('x')));
});

test('consensus - transfer arguments are validated', () => {
  const cluster = new TestCluster(three);
  cluster.elect('n1');
  assert.throws(() => cluster.node('n1').transferLeadership('n9'), RangeError);
  assert.throws(() => cluster.node('n2').transferLeadership('n3'), { code: 'PF_ERR_NOT_LEADER' });
});
