import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import type { Entry } from '../../src/consensus/index.ts';
import { TestCluster } from './harness.ts';

const ids = ['n1', 'n2', 'n3'];

type Command =
  | { kind: 'tick'; node: number; times: number }
  | { kind: 'isolate'; node: number }
  | { kind: 'cut'; from: number; to: number }
  | { kind: 'heal' }
  | { kind: 'propose' }
  | { kind: 'restart'; node: number };

const node = fc.integer({ min: 0, max: 2 });
const command: fc.Arbitrary<Command> = fc.oneof(
  fc.record({ kind: fc.constant('tick' as const), node, times: fc.integer({ min: 1, max: 25 }) }),
  fc.record({ kind: fc.constant('isolate' as const), node }),
  fc.record({ kind: fc.constant('cut' as const), from: node, to: node }),
  fc.constant({ kind: 'heal' as const }),
  fc.constant({ kind: 'propose' as const }),
  fc.record({ kind: fc.constant('restart' as const), node }),
);

/** Runs one command, then delivers every message; returns the number of proposals made so far. */
function apply(cluster: TestCluster, step: Command, proposals: number): number {
  if (step.kind === 'tick') {
    for (let count = 0; count < step.times; count++) cluster.node(ids[step.node]!).tick();
  } else if (step.kind === 'isolate') cluster.isolate(ids[step.node]!);
  else if (step.kind === 'cut') cluster.cut(ids[step.from]!, ids[step.to]!);
  else if (step.kind === 'heal') cluster.heal();
  else if (step.kind === 'restart') cluster.restart(ids[step.node]!, ids);
  else {
    const leader = cluster.leaders()[0];
    if (leader) cluster.node(leader).propose(new TextEncoder().encode(`p${++proposals}`));
  }
  cluster.flush();
  return proposals;
}

function samePrefix(a: Entry[], b: Entry[]): boolean {
  const length = Math.min(a.length, b.length);
  for (let position = 0; position < length; position++) {
    const left = a[position]!;
    const right = b[position]!;
    if (left.index !== right.index || left.term !== right.term || left.kind !== right.kind) return false;
  }
  return true;
}

test('consensus - any schedule of ticks, partitions, restarts and proposals keeps replicas consistent', () => {
  let runs = 0;
  let leadersSeen = 0;
  fc.assert(
    fc.property(fc.array(command, { maxLength: 60 }), (commands) => {
      runs += 1;
      const cluster = new TestCluster(ids);
      const leaderOfTerm = new Map<number, string>();
      let proposals = 0;
      const check = (): void => {
        for (const id of ids) {
          const status = cluster.node(id).status();
          if (status.role !== 'leader') continue;
          const known = leaderOfTerm.get(status.term);
          assert.ok(known === undefined || known === id, `two leaders in term ${status.term}`);
          leaderOfTerm.set(status.term, id);
        }
        for (const a of ids) {
          for (const b of ids)
            assert.ok(samePrefix(cluster.applied.get(a)!, cluster.applied.get(b)!), 'applied logs diverge');
        }
      };
      for (const step of commands) {
        proposals = apply(cluster, step, proposals);
        check();
      }
      // Liveness once the network heals: one leader, and a new proposal reaches everyone.
      cluster.heal();
      cluster.tickAll(60);
      const leaders = cluster.leaders();
      assert.equal(leaders.length, 1);
      cluster.propose(leaders[0]!, 'final');
      cluster.tickAll(3);
      for (const id of ids) assert.equal(cluster.appliedValues(id).at(-1), 'final');
      check();
      leadersSeen += leaderOfTerm.size;
    }),
    { numRuns: 150, seed: 20261121 },
  );
  assert.equal(runs, 150);
  assert.ok(leadersSeen >= 150, 'every schedule elected at least one leader');
});

test('consensus - ticksUntilTimeout: the ticks before it change nothing, and a follower acts on it', () => {
  // The queue host sleeps through ticks on this promise and applies them late (RaftHost#catchUp).
  let checked = 0;
  fc.assert(
    fc.property(fc.array(command, { maxLength: 40 }), node, (commands, probe) => {
      const cluster = new TestCluster(ids);
      let proposals = 0;
      for (const step of commands) {
        proposals = apply(cluster, step, proposals);
      }
      const raft = cluster.node(ids[probe]!);
      assert.equal(raft.hasReady(), false, 'the cluster was drained');
      const ticks = raft.ticksUntilTimeout();
      assert.ok(ticks >= 1);
      if (!Number.isFinite(ticks)) return;
      const before = raft.status();
      for (let tick = 1; tick < ticks; tick++) {
        raft.tick();
        assert.equal(raft.hasReady(), false, `tick ${tick} of ${ticks} produced a Ready`);
        assert.equal(raft.status().role, before.role);
        assert.equal(raft.ticksUntilTimeout(), ticks - tick, 'each tick brings the timeout one nearer');
      }
      raft.tick();
      checked += 1;
      // A follower or candidate campaigns on that tick; a leader's may be a quiet quorum check.
      if (before.role !== 'leader') assert.equal(raft.hasReady(), true, 'the election timeout fired');
    }),
    { numRuns: 200 },
  );
  assert.ok(checked > 100, `only ${checked} runs reached the check`);
});
