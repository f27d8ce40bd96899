import assert from 'node:assert/strict';
import { test } from 'node:test';
import { TestCluster } from './harness.ts';

const three = ['n1', 'n2', 'n3'];

test('consensus - a single voter elects itself and commits alone', () => {
  const cluster = new TestCluster(['n1']);
  cluster.tickAll(25);
  assert.deepEqual(cluster.leaders(), ['n1']);
  cluster.propose('n1', 'solo');
  assert.deepEqual(cluster.appliedValues('n1'), ['solo']);
});

test('consensus - election timeouts elect exactly one leader and raise the term', () => {
  const cluster = new TestCluster(three);
  cluster.tickAll(40);
  const leaders = cluster.leaders();
  assert.equal(leaders.length, 1);
  const term = cluster.node(leaders[0]!).status().term;
  assert.ok(term >= 2, `term ${term} should be past the bootstrap term`);
  for (const id of three) {
    assert.equal(cluster.node(id).status().term, term);
    assert.equal(cluster.node(id).status().leader, leaders[0]);
  }
});

test('consensus - the leader appends a no-op entry of its own term on election', () => {
  const cluster = new TestCluster(three);
  cluster.elect('n1');
  const status = cluster.node('n1').status();
  const entry = cluster.node('n1').entryAt(status.lastIndex)!;
  assert.equal(entry.kind, 'noop');
  assert.equal(entry.term, status.term);
  assert.equal(status.commit, status.lastIndex, 'the no-op commits once a quorum has it');
});

test('consensus - a candidate with a stale log is refused votes', () => {
  const cluster = new TestCluster(three, { preVote: false, checkQuorum: false });
  cluster.elect('n1');
  cluster.isolate('n3');
  cluster.propose('n1', 'a');
  cluster.heal();
  cluster.isolate('n1');
  cluster.elect('n3');
  assert.notEqual(cluster.node('n3').status().role, 'leader', 'n3 lacks the committed entry');
});

test('consensus - pre-vote keeps a node back from a partition from disrupting a healthy leader', () => {
  const cluster = new TestCluster(three);
  cluster.elect('n1');
  const term = cluster.node('n1').status().term;
  cluster.isolate('n3');
  cluster.tick('n3', 200);
  assert.equal(cluster.node('n3').status().term, term, 'pre-votes that fail never raise the term');
  cluster.heal();
  cluster.tickAll(30);
  assert.deepEqual(cluster.leaders(), ['n1']);
  assert.equal(cluster.node('n1').status().term, term);
});

test('consensus - without pre-vote the same rejoining node deposes the leader (contrast)', () => {
  const cluster = new TestCluster(three, { preVote: false, checkQuorum: false });
  cluster.elect('n1');
  const term = cluster.node('n1').status().term;
  cluster.isolate('n3');
  cluster.tick('n3', 200);
  assert.ok(cluster.node('n3').status().term > term);
  cluster.heal();
  cluster.tickAll(30);
  assert.ok(cluster.node('n1').status().term > term, 'the leader was forced into a new term');
});

test('consensus - check-quorum makes a leader that cannot hear a majority step down', () => {
  const cluster = new TestCluster(three);
  cluster.elect('n1');
  cluster.isolate('n1');
  // Within two election timeouts: the first check may still count answers from before the cut.
  cluster.tick('n1', 20);
  assert.equal(cluster.node('n1').status().role, 'follower');
  assert.throws(() => cluster.node('n1').propose(new Uint8Array([1])), { code: 'PF_ERR_NOT_LEADER' });
});

test('consensus - without check-quorum an isolated leader keeps believing it leads (contrast)', () => {
  const cluster = new TestCluster(three, { checkQuorum: false });
  cluster.elect('n1');
  cluster.isolate('n1');
  cluster.tick('n1', 50);
  assert.equal(cluster.node('n1').status().role, 'leader');
});

test('consensus - followers refuse proposals with the leader as a hint', () => {
  const cluster = new TestCluster(three);
  cluster.elect('n1');
  assert.throws(
    () => cluster.node('n2').propose(new Uint8Array([1])),
    (error: { code?: string; extensions?: { leader?: string } }) =>
      error.code === 'PF_ERR_NOT_LEADER' && error.extensions?.leader === 'n1',
  );
});
