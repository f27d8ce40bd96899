import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { AppendMessage, AppendResponseMessage, Message } from '../../src/consensus/index.ts';
import { TestCluster } from './harness.ts';

const five = ['n1', 'n2', 'n3', 'n4', 'n5'];

function involves(message: Message, id: string): boolean {
  return message.from === id || message.to === id;
}

function electUntilLeader(cluster: TestCluster, id: string): void {
  for (let attempt = 0; attempt < 5 && cluster.node(id).status().role !== 'leader'; attempt++)
    cluster.elect(id);
  assert.equal(cluster.node(id).status().role, 'leader', `${id} should win`);
}

test('consensus - proposals replicate and apply in order on every node', () => {
  const cluster = new TestCluster(['n1', 'n2', 'n3']);
  cluster.elect('n1');
  for (const value of ['a', 'b', 'c']) cluster.propose('n1', value);
  cluster.tickAll(2);
  for (const id of ['n1', 'n2', 'n3']) assert.deepEqual(cluster.appliedValues(id), ['a', 'b', 'c']);
});

test('consensus - proposals between two Readies travel in one batched append', () => {
  const cluster = new TestCluster(['n1', 'n2', 'n3']);
  cluster.elect('n1');
  const leader = cluster.node('n1');
  for (let count = 0; count < 10; count++) leader.propose(new Uint8Array([count]));
  const ready = leader.ready()!;
  const appends = ready.messages.filter((message): message is AppendMessage => message.type === 'append');
  assert.equal(appends.length, 2, 'one append per follower');
  assert.equal(appends[0]!.entries.length, 10);
  leader.advance(ready);
});

test('consensus - appends respect maxSizePerMessage and the in-flight window', () => {
  const cluster = new TestCluster(['n1', 'n2'], { maxSizePerMessage: 8, maxInflightMessages: 2 });
  cluster.elect('n1');
  const leader = cluster.node('n1');
  for (let count = 0; count < 10; count++) leader.propose(new Uint8Array(4));
  const ready = leader.ready()!;
  const appends = ready.messages.filter((message): message is AppendMessage => message.type === 'append');
  assert.equal(appends.length, 2, 'the window stops the pipeline after two messages');
  for (const append of appends) assert.equal(append.entries.length, 2, 'two 4-byte entries per 8 bytes');
  leader.advance(ready);
  cluster.inFlight.push(...appends);
  cluster.flush();
  cluster.tickAll(3);
  assert.equal(
    cluster.appliedValues('n2').length,
    10,
    'the rest follows as acknowledgements free the window',
  );
});

test('consensus - fast back-off repairs a divergent follower in a couple of round trips', () => {
  const cluster = new TestCluster(['n1', 'n2', 'n3']);
  cluster.elect('n1');
  // n1 is cut off and piles up 50 entries nobody else will ever have; n2 and n3 move on.
  cluster.isolate('n1');
  for (let count = 0; count < 50; count++) cluster.node('n1').propose(new Uint8Array([count]));
  cluster.flush();
  cluster.tickAll(40);
  const leader = cluster.leaders().find((id) => id !== 'n1');
  assert.ok(leader, 'n2 or n3 leads');
  for (const value of ['x', 'y', 'z']) cluster.propose(leader, value);
  cluster.heal();
  const before = cluster.sent.length;
  cluster.tickAll(3);
  const rejections = cluster.sent
    .slice(before)
    .filter(
      (message): message is AppendResponseMessage => message.type === 'appendResponse' && message.reject,
    );
  assert.ok(rejections.length <= 2, `expected at most 2 rejections, got ${rejections.length}`);
  assert.deepEqual(cluster.appliedValues('n1'), ['x', 'y', 'z']);
  assert.equal(cluster.node('n1').status().lastIndex, cluster.node(leader).status().lastIndex);
});

test('consensus - an old-term entry is never committed by counting replicas (Figure 8)', () => {
  // One entry per message, so the test decides which entries reach whom.
  const cluster = new TestCluster(five, { preVote: false, checkQuorum: false, maxSizePerMessage: 1 });
  cluster.elect('n1');
  const baseCommit = cluster.node('n1').status().commit;
  // (a) n1 replicates X (its term) to n2 only.
  cluster.filter = (message) =>
    !(involves(message, 'n1') && ['n3', 'n4', 'n5'].some((id) => involves(message, id)));
  cluster.propose('n1', 'X');
  const xIndex = baseCommit + 1;
  assert.equal(cluster.node('n2').entryAt(xIndex)?.term, cluster.node('n1').status().term);
  // (b) n1 is down; n5 is elected by n3 and n4, and its no-op reaches nobody.
  cluster.filter = (message) =>
    !involves(message, 'n1') && !(message.from === 'n5' && message.type === 'append');
  electUntilLeader(cluster, 'n5');
  assert.equal(cluster.node('n5').entryAt(xIndex)?.kind, 'noop');
  // (c) n5 is down; n1 restarts, is re-elected and spreads X to a majority, but its own no-op is held back.
  cluster.filter = (message) => {
    if (involves(message, 'n5')) return false;
    if (message.type !== 'append') return true;
    return { ...message, entries: message.entries.filter((entry) => entry.index <= xIndex) };
  };
  cluster.restart('n1', five);
  electUntilLeader(cluster, 'n1');
  cluster.tickAll(3);
  const holdersOfX = five.filter(
    (id) => cluster.node(id).entryAt(xIndex)?.term === cluster.node('n2').entryAt(xIndex)?.term,
  );
  assert.ok(holdersOfX.length >= 3, `X should be on a majority, is on ${holdersOfX.join(',')}`);
  assert.equal(
    cluster.node('n1').status().commit,
    baseCommit,
    'X is from an older term: counting replicas must not commit it',
  );
  // (d) n1 is down again; n5 restarts and its later-term log wins and overwrites X — which is safe only because X never committed.
  cluster.heal();
  cluster.filter = (message) => !involves(message, 'n1');
  cluster.restart('n5', five);
  electUntilLeader(cluster, 'n5');
  cluster.propose('n5', 'Z');
  for (const id of ['n2', 'n3', 'n4', 'n5']) {
    assert.deepEqual(cluster.appliedValues(id), ['Z'], `${id} applies Z and never X`);
  }
  // Once n1 rejoins, its X is overwritten too.
  cluster.heal();
  cluster.tickAll(3);
  assert.deepEqual(cluster.appliedValues('n1'), ['Z']);
});

test('consensus - duplicated and reordered appends never shorten a follower log', () => {
  const cluster = new TestCluster(['n1', 'n2', 'n3']);
  cluster.elect('n1');
  cluster.propose('n1', 'a');
  const oldAppends = cluster.sent.filter((message) => message.type === 'append' && message.to === 'n2');
  for (const value of ['b', 'c']) cluster.propose('n1', value);
  const lastIndex = cluster.node('n2').status().lastIndex;
  for (const message of oldAppends) cluster.node('n2').step(message);
  cluster.drain('n2');
  assert.equal(cluster.node('n2').status().lastIndex, lastIndex);
  cluster.flush();
  cluster.tickAll(2);
  assert.deepEqual(cluster.appliedValues('n2'), ['a', 'b', 'c']);
});
