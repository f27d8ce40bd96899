/**
 * Property tests of the queue state machine: random command sequences (enqueues, claims, acks,
 * nacks, extends with current and stale leases, ticks, time passing, lost leases) must keep the
 * invariants, and a snapshot taken anywhere must restore to a machine that behaves identically.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import type { QueueCommand } from '../../src/queue/commands.ts';
import { type QueueSnapshot, QueueStateMachine } from '../../src/queue/state-machine.ts';
import type { ClaimedJob, JobState } from '../../src/queue/types.ts';

const T0 = 1_700_000_000_000;
const RETENTION_MS = 400;

type Step =
  | {
      kind: 'enqueue';
      id: number;
      account: number;
      maxAttempts: number | undefined;
      deadlineIn: number | undefined;
    }
  | { kind: 'claim'; leaseMs: number }
  | { kind: 'ack'; pick: number }
  | { kind: 'nack'; pick: number; retry: boolean; delayMs: number }
  | { kind: 'extend'; pick: number; leaseMs: number }
  | { kind: 'tick' }
  | { kind: 'advance'; ms: number }
  | { kind: 'release' };

const stepArbitrary: fc.Arbitrary<Step> = fc.oneof(
  {
    weight: 5,
    arbitrary: fc.record({
      kind: fc.constant('enqueue' as const),
      id: fc.nat(24),
      account: fc.nat(3),
      maxAttempts: fc.option(fc.integer({ min: 1, max: 3 }), { nil: undefined }),
      deadlineIn: fc.option(fc.integer({ min: -5, max: 150 }), { nil: undefined }),
    }),
  },
  {
    weight: 5,
    arbitrary: fc.record({ kind: fc.constant('claim' as const), leaseMs: fc.integer({ min: 1, max: 80 }) }),
  },
  { weight: 3, arbitrary: fc.record({ kind: fc.constant('ack' as const), pick: fc.nat() }) },
  {
    weight: 2,
    arbitrary: fc.record({
      kind: fc.constant('nack' as const),
      pick: fc.nat(),
      retry: fc.boolean(),
      delayMs: fc.integer({ min: 0, max: 60 }),
    }),
  },
  {
    weight: 1,
    arbitrary: fc.record({
      kind: fc.constant('extend' as const),
      pick: fc.nat(),
      leaseMs: fc.integer({ min: 1, max: 80 }),
    }),
  },
  { weight: 2, arbitrary: fc.constant({ kind: 'tick' as const }) },
  {
    weight: 3,
    arbitrary: fc.record({ kind: fc.constant('advance' as const), ms: fc.integer({ min: 0, max: 60 }) }),
  },
  { weight: 1, arbitrary: fc.constant({ kind: 'release' as const }) },
);

/** What the test knows about a job from the results it saw, to check the machine against. */
interface Known {
  /** Order of the current incarnation's enqueue, for the FIFO check. */
  order: number;
  account: string;
  acked: boolean;
  /** Claimable no earlier than this (nack backoff). */
  notBefore: number;
  deadline: number | undefined;
  /** When the job last finished, as last seen. */
  finishedAt?: number | undefined;
}

interface Run {
  commands: QueueCommand[];
  results: unknown[];
}

/** Turns abstract steps into concrete commands against `machine`, checking invariants as it goes. */
function drive(machine: QueueStateMachine, steps: Step[]): Run {
  const run: Run = { commands: [], results: [] };
  const known = new Map<string, Known>();
  const leases: ClaimedJob[] = [];
  const leaseIds = new Set<string>();
  let at = T0;
  let order = 0;

  for (const step of steps) {
    let command: QueueCommand | undefined;
    switch (step.kind) {
      case 'enqueue':
        command = {
          type: 'enqueue',
          at,
          id: `job-${step.id}`,
          account: `account-${step.account}`,
          payload: { step: step.id },
          ...(step.maxAttempts === undefined ? {} : { maxAttempts: step.maxAttempts }),
          ...(step.deadlineIn === undefined ? {} : { deadline: at + step.deadlineIn }),
        };
        break;
      case 'claim':
        command = { type: 'claim', at, consumer: 'w', leaseMs: step.leaseMs };
        break;
      case 'ack':
      case 'nack':
      case 'extend': {
        const lease = leases[step.pick % Math.max(1, leases.length)];
        if (lease === undefined) continue;
        if (step.kind === 'ack')
          command = { type: 'ack', at, id: lease.id, leaseId: lease.leaseId, outcome: { at } };
        else if (step.kind === 'nack') {
          command = {
            type: 'nack',
            at,
            id: lease.id,
            leaseId: lease.leaseId,
            reason: 'test',
            retry: step.retry,
            delayMs: step.delayMs,
          };
        } else command = { type: 'extend', at, id: lease.id, leaseId: lease.leaseId, leaseMs: step.leaseMs };
        break;
      }
      case 'tick':
        command = { type: 'tick', at };
        break;
      case 'release':
        command = { type: 'release-leases', at };
        break;
      case 'advance':
        at += step.ms;
        continue;
    }

    // FIFO within an account: what a claim may return is decided before it runs.
    const claimableBefore =
      command.type === 'claim'
        ? [...known.entries()].filter(([id, job]) => {
            const state = machine.get(id)?.state;
            return (
              state === 'queued' && job.notBefore <= at && !(job.deadline !== undefined && at > job.deadline)
            );
          })
        : [];

    const result = machine.apply(command);
    run.commands.push(command);
    run.results.push(result);

    switch (command.type) {
      case 'enqueue': {
        const applied = result as { duplicate: boolean };
        if (!applied.duplicate) {
          known.set(command.id, {
            order: order++,
            account: command.account,
            acked: false,
            notBefore: at,
            deadline: command.deadline,
          });
        }
        break;
      }
      case 'claim': {
        const job = (result as { job: ClaimedJob | undefined }).job;
        if (job === undefined) {
          assert.deepEqual(claimableBefore, [], 'claim returned nothing while jobs were claimable');
          break;
        }
        const claimed = known.get(job.id)!;
        assert.ok(!claimed.acked, `acked job ${job.id} was delivered again`);
        assert.ok(job.attempt <= job.maxAttempts, `attempt ${job.attempt} > ${job.maxAttempts}`);
        assert.ok(!leaseIds.has(job.leaseId), `lease id ${job.leaseId} reused`);
        leaseIds.add(job.leaseId);
        leases.push(job);
        const earlier = claimableBefore.filter(
          ([, other]) => other.account === claimed.account && other.order < claimed.order,
        );
        assert.deepEqual(
          earlier.map(([id]) => id),
          [],
          `claimed ${job.id} before earlier jobs of ${claimed.account}`,
        );
        break;
      }
      case 'ack': {
        if ((result as { rejection?: unknown }).rejection === undefined) {
          known.get(command.id)!.acked = true;
          assert.equal(machine.get(command.id)?.state, 'succeeded');
        }
        break;
      }
      case 'nack': {
        if (
          (result as { rejection?: unknown }).rejection === undefined &&
          machine.get(command.id)?.state === 'queued'
        ) {
          known.get(command.id)!.notBefore = at + (command.delayMs ?? 0);
        }
        break;
      }
      default:
        break;
    }
    checkInvariants(machine, known, at);
  }
  return run;
}

function checkInvariants(machine: QueueStateMachine, known: Map<string, Known>, at: number): void {
  assert.deepEqual(machine.checkInvariants(), []);
  const counts: Record<JobState, number> = { queued: 0, running: 0, succeeded: 0, dead: 0, expired: 0 };
  const perAccount: Record<string, { queued: number; inflight: number }> = {};
  for (const [id, job] of known) {
    const record = machine.get(id);
    if (record === undefined) {
      // Only finished jobs are ever forgotten, and only after the retention window.
      assert.ok(job.finishedAt !== undefined && at >= job.finishedAt + RETENTION_MS, `job ${id} was lost`);
      continue;
    }
    job.finishedAt = record.finishedAt;
    assert.ok(record.attempts <= record.maxAttempts);
    counts[record.state]++;
    if (record.state === 'queued' || record.state === 'running') {
      perAccount[job.account] ??= { queued: 0, inflight: 0 };
      const tally = perAccount[job.account]!;
      if (record.state === 'queued') tally.queued++;
      else tally.inflight++;
    }
    if (job.acked) assert.equal(record.state, 'succeeded', `acked job ${id} left the succeeded state`);
  }
  const stats = machine.stats();
  assert.equal(stats.depth, counts.queued);
  assert.equal(stats.inflight, counts.running);
  assert.equal(stats.deadLetters, counts.dead);
  assert.deepEqual(stats.perAccount, perAccount);
  assert.equal(machine.deadLetters(1000).length, counts.dead);
}

// Short sequences find edge cases quickly and shrink well; long ones build up state.
const stepsArbitrary = fc.oneof(
  fc.array(stepArbitrary, { minLength: 1, maxLength: 20 }),
  fc.array(stepArbitrary, { minLength: 1, maxLength: 300, size: 'max' }),
);

test('queue state - random command sequences keep the invariants', () => {
  fc.assert(
    fc.property(stepsArbitrary, (steps) => {
      drive(new QueueStateMachine({ retentionMs: RETENTION_MS, maxAttempts: 2 }), steps);
    }),
    { numRuns: 500 },
  );
});

test('queue state - replicas applying the same commands agree, and snapshot then restore changes nothing', () => {
  fc.assert(
    fc.property(stepsArbitrary, fc.nat(), (steps, cut) => {
      const primary = new QueueStateMachine({ retentionMs: RETENTION_MS, maxAttempts: 2 });
      const run = drive(primary, steps);
      const split = cut % (run.commands.length + 1);

      // A replica applies the first part, snapshots through JSON, restores, applies the rest.
      const replica = new QueueStateMachine({ retentionMs: RETENTION_MS, maxAttempts: 2 });
      const firstResults = run.commands.slice(0, split).map((command) => replica.apply(command));
      const snapshot = JSON.parse(JSON.stringify(replica.snapshot())) as QueueSnapshot;
      const restored = QueueStateMachine.restore(snapshot);
      assert.deepEqual(restored.snapshot(), snapshot);
      assert.deepEqual(restored.checkInvariants(), []);
      const laterResults = run.commands.slice(split).map((command) => restored.apply(command));
      assert.deepEqual([...firstResults, ...laterResults], run.results);
      assert.deepEqual(restored.snapshot(), primary.snapshot());
      assert.deepEqual(restored.stats(), primary.stats());
    }),
    { numRuns: 500 },
  );
});
