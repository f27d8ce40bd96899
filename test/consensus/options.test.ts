import assert from 'node:assert/strict';
import { test } from 'node:test';
import { RaftNode, type RaftOptions } from '../../src/consensus/index.ts';
import { TestCluster, text } from './harness.ts';

const base: RaftOptions = { id: 'n1', voters: ['n1', 'n2', 'n3'], random: () => 0.5 };

test('consensus - every option is validated with a RangeError', () => {
  const bad: Partial<Record<keyof RaftOptions, unknown>>[] = [
    { id: '' },
    { voters: 'n1' },
    { voters: ['n1', 'n1'] },
    { voters: [''] },
    { random: 0.5 },
    { electionTick: 0 },
    { electionTick: 1.5 },
    { heartbeatTick: 0 },
    { heartbeatTick: 10, electionTick: 10 },
    { preVote: 'yes' },
    { checkQuorum: 1 },
    { readOnly: 'fast' },
    { readOnly: 'lease', checkQuorum: false },
    { maxSizePerMessage: 0 },
    { maxInflightMessages: -1 },
    { maxInflightBytes: -1 },
    { maxCommittedSizePerReady: 0 },
    { maxUncommittedEntriesSize: Number.NaN },
    { storage: 'disk' },
  ];
  for (const override of bad) {
    assert.throws(
      () => new RaftNode({ ...base, ...override } as RaftOptions),
      RangeError,
      JSON.stringify(override),
    );
  }
  assert.doesNotThrow(() => new RaftNode({ ...base, readOnly: 'lease', maxInflightBytes: 0 }));
});

test('consensus - a founding member persists the bootstrap configuration as entry 1', () => {
  const node = new RaftNode(base);
  const ready = node.ready()!;
  assert.deepEqual(ready.hardState, { term: 1, vote: null, commit: 1 });
  assert.equal(ready.entries.length, 1);
  assert.equal(ready.entries[0]!.kind, 'config');
  assert.equal(ready.committedEntries.length, 1);
  assert.equal(ready.mustSync, true);
  node.advance(ready);
  assert.equal(node.ready(), undefined);
});

test('consensus - one Ready is outstanding at a time and advance must get that Ready', () => {
  const node = new RaftNode(base);
  const ready = node.ready()!;
  node.tick();
  assert.equal(node.ready(), undefined, 'no second Ready before advance');
  assert.throws(() => node.advance({ ...ready }), RangeError);
  node.advance(ready);
});

test('consensus - a restarted node keeps its term, vote and log', () => {
  const cluster = new TestCluster(['n1', 'n2', 'n3']);
  cluster.elect('n1');
  cluster.propose('n1', 'a');
  const before = cluster.node('n2').status();
  const after = cluster.restart('n2', ['n1', 'n2', 'n3']).status();
  assert.equal(after.term, before.term);
  assert.equal(after.vote, before.vote);
  assert.equal(after.lastIndex, before.lastIndex);
  assert.equal(after.commit, before.commit);
  assert.deepEqual(cluster.appliedValues('n2'), ['a'], 'committed entries are re-applied after a restart');
});

test('consensus - storage that lost the hard state but kept entries never runs an older term', () => {
  const node = new RaftNode({
    ...base,
    storage: {
      hardState: { term: 2, vote: 'n2', commit: 1 },
      entries: [
        { term: 1, index: 1, kind: 'config', data: text(JSON.stringify({ voters: ['n1', 'n2', 'n3'] })) },
        { term: 5, index: 2, kind: 'noop', data: new Uint8Array() },
      ],
    },
  });
  assert.equal(node.status().term, 5);
  assert.equal(node.status().vote, null);
});

test('consensus - inconsistent persisted state is refused', () => {
  const entry = { term: 1, index: 1, kind: 'noop' as const, data: new Uint8Array() };
  assert.throws(
    () =>
      new RaftNode({ ...base, storage: { hardState: { term: 1, vote: null, commit: 3 }, entries: [entry] } }),
    { code: 'PF_ERR_RAFT_STATE_CORRUPT' },
  );
  assert.throws(
    () =>
      new RaftNode({
        ...base,
        storage: { hardState: { term: 1, vote: null, commit: 0 }, entries: [{ ...entry, index: 2 }] },
      }),
    { code: 'PF_ERR_RAFT_STATE_CORRUPT' },
  );
});

test('consensus - proposals are refused past maxUncommittedEntriesSize', () => {
  const cluster = new TestCluster(['n1', 'n2', 'n3'], { maxUncommittedEntriesSize: 10 });
  cluster.elect('n1');
  cluster.isolate('n1');
  const leader = cluster.node('n1');
  leader.propose(new Uint8Array(8));
  assert.throws(() => leader.propose(new Uint8Array(8)), { code: 'PF_ERR_PROPOSAL_DROPPED' });
  cluster.heal();
  cluster.flush();
  cluster.tickAll(2);
  assert.doesNotThrow(() => leader.propose(new Uint8Array(8)), 'committing frees the budget');
});
