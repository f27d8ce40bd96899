import assert from 'node:assert/strict';
import { test } from 'node:test';
import { isPixelfleetError } from '../../src/errors/index.ts';
import type { QueueCommand } from '../../src/queue/commands.ts';
import { QueueStateMachine, rejectionError } from '../../src/queue/state-machine.ts';
import type { ClaimedJob } from '../../src/queue/types.ts';

const T0 = 1_700_000_000_000;

function machine(config: { maxAttempts?: number; retentionMs?: number } = {}) {
  const queue = new QueueStateMachine(config);
  const enqueue = (
    id: string,
    account = 'acme',
    at = T0,
    extra: { maxAttempts?: number; deadline?: number } = {},
  ) => queue.apply({ type: 'enqueue', at, id, account, payload: { n: id }, ...extra });
  const claim = (at = T0, leaseMs = 1000): ClaimedJob | undefined =>
    queue.apply({ type: 'claim', at, consumer: 'worker-1', leaseMs }).job;
  const claimAll = (at = T0) => {
    const ids: string[] = [];
    for (let job = claim(at); job; job = claim(at)) ids.push(job.id);
    return ids;
  };
  return { queue, enqueue, claim, claimAll };
}

test('queue state - enqueue is idempotent by id', () => {
  const { queue, enqueue } = machine();
  assert.deepEqual(enqueue('a'), { changed: true, id: 'a', duplicate: false, state: 'queued' });
  assert.deepEqual(enqueue('a', 'other'), { changed: false, id: 'a', duplicate: true, state: 'queued' });
  assert.equal(queue.stats().depth, 1);
  assert.equal(queue.stats().enqueuedTotal, 1);
});

test('queue state - serves one account first in, first out', () => {
  const { enqueue, claimAll } = machine();
  for (const id of ['j1', 'j2', 'j3', 'j4']) enqueue(id);
  assert.deepEqual(claimAll(), ['j1', 'j2', 'j3', 'j4']);
});

test('queue state - serves accounts round robin', () => {
  const { enqueue, claimAll } = machine();
  for (let index = 1; index <= 4; index++) enqueue(`busy-${index}`, 'busy');
  enqueue('quiet-1', 'quiet');
  enqueue('quiet-2', 'quiet');
  enqueue('rare-1', 'rare');
  assert.deepEqual(claimAll(), ['busy-1', 'quiet-1', 'rare-1', 'busy-2', 'quiet-2', 'busy-3', 'busy-4']);
});

test('queue state - lease ids are deterministic and change on every delivery', () => {
  const commands: QueueCommand[] = [
    { type: 'enqueue', at: T0, id: 'a', account: 'x', payload: {} },
    { type: 'claim', at: T0, consumer: 'w', leaseMs: 10 },
    { type: 'tick', at: T0 + 10 },
    { type: 'claim', at: T0 + 11, consumer: 'w', leaseMs: 10 },
  ];
  const first = new QueueStateMachine();
  const second = new QueueStateMachine();
  const firstResults = commands.map((command) => first.apply(command));
  const secondResults = commands.map((command) => second.apply(command));
  assert.deepEqual(firstResults, secondResults);
  const leaseIds = [firstResults[1], firstResults[3]].map(
    (result) => (result as { job: ClaimedJob }).job.leaseId,
  );
  assert.notEqual(leaseIds[0], leaseIds[1]);
  assert.equal((firstResults[3] as { job: ClaimedJob }).job.attempt, 2);
});

test('queue state - ack is fenced by the lease id and stores the outcome', () => {
  const { queue, enqueue, claim } = machine();
  enqueue('a');
  const job = claim()!;
  const wrong = queue.apply({ type: 'ack', at: T0 + 1, id: 'a', leaseId: 'lease-999' });
  assert.equal(wrong.changed, false);
  assert.equal(wrong.rejection?.code, 'PF_ERR_LEASE_LOST');
  assert.ok(isPixelfleetError(rejectionError(wrong.rejection!), 'PF_ERR_LEASE_LOST'));
  const missing = queue.apply({ type: 'ack', at: T0 + 1, id: 'nope', leaseId: job.leaseId });
  assert.equal(missing.rejection?.code, 'PF_ERR_JOB_NOT_FOUND');
  const acked = queue.apply({
    type: 'ack',
    at: T0 + 2,
    id: 'a',
    leaseId: job.leaseId,
    outcome: { bytes: 42 },
  });
  assert.deepEqual(acked, { changed: true });
  const record = queue.get('a')!;
  assert.equal(record.state, 'succeeded');
  assert.deepEqual(record.outcome, { bytes: 42 });
  assert.equal(record.firstClaimedAt, T0);
  assert.equal(record.finishedAt, T0 + 2);
  const again = queue.apply({ type: 'ack', at: T0 + 3, id: 'a', leaseId: job.leaseId });
  assert.equal(again.rejection?.code, 'PF_ERR_LEASE_LOST');
});

test('queue state - a lease past its expiry is lost even before a tick', () => {
  const { queue, enqueue, claim } = machine();
  enqueue('a');
  const job = claim(T0, 100)!;
  const late = queue.apply({ type: 'ack', at: T0 + 100, id: 'a', leaseId: job.leaseId });
  assert.equal(late.rejection?.code, 'PF_ERR_LEASE_LOST');
  assert.equal(queue.get('a')!.state, 'running');
});

test('queue state - tick redelivers expired leases and dead-letters the last attempt', () => {
  const { queue, enqueue, claim } = machine({ maxAttempts: 2 });
  enqueue('a');
  claim(T0, 100);
  assert.equal(queue.nextDueAt(), T0 + 100);
  const first = queue.apply({ type: 'tick', at: T0 + 100 });
  assert.deepEqual(first.redelivered, ['a']);
  assert.equal(first.changed, true);
  const second = claim(T0 + 101, 100)!;
  assert.equal(second.attempt, 2);
  const last = queue.apply({ type: 'tick', at: T0 + 250 });
  assert.deepEqual(last.deadLettered, ['a']);
  const record = queue.get('a')!;
  assert.equal(record.state, 'dead');
  assert.equal(record.lastError, 'lease expired after 2 attempts');
  assert.deepEqual(
    queue.deadLetters().map((job) => job.id),
    ['a'],
  );
  assert.equal(queue.stats().redeliveredTotal, 1);
  assert.equal(queue.stats().deadLetteredTotal, 1);
  assert.equal(queue.apply({ type: 'tick', at: T0 + 260 }).changed, false);
});

test('queue state - extend moves the expiry and fences like ack', () => {
  const { queue, enqueue, claim } = machine();
  enqueue('a');
  const job = claim(T0, 100)!;
  const extended = queue.apply({ type: 'extend', at: T0 + 50, id: 'a', leaseId: job.leaseId, leaseMs: 500 });
  assert.equal(extended.leaseExpiresAt, T0 + 550);
  assert.equal(queue.apply({ type: 'tick', at: T0 + 200 }).redelivered.length, 0);
  assert.equal(queue.get('a')!.state, 'running');
  const wrong = queue.apply({ type: 'extend', at: T0 + 60, id: 'a', leaseId: 'lease-0', leaseMs: 500 });
  assert.equal(wrong.rejection?.code, 'PF_ERR_LEASE_LOST');
  assert.deepEqual(queue.apply({ type: 'tick', at: T0 + 550 }).redelivered, ['a']);
});

test('queue state - nack retries after the backoff, or dead-letters', () => {
  const { queue, enqueue, claim } = machine({ maxAttempts: 3 });
  enqueue('a');
  enqueue('b');
  const a = claim()!;
  queue.apply({
    type: 'nack',
    at: T0 + 10,
    id: 'a',
    leaseId: a.leaseId,
    reason: 'busy',
    retry: true,
    delayMs: 100,
  });
  const b = claim(T0 + 20)!;
  assert.equal(b.id, 'b');
  assert.equal(claim(T0 + 109), undefined);
  const retried = claim(T0 + 110)!;
  assert.equal(retried.id, 'a');
  assert.equal(retried.attempt, 2);
  queue.apply({ type: 'nack', at: T0 + 120, id: 'b', leaseId: b.leaseId, reason: 'poison', retry: false });
  assert.equal(queue.get('b')!.state, 'dead');
  assert.equal(queue.get('b')!.lastError, 'poison');
  queue.apply({
    type: 'nack',
    at: T0 + 130,
    id: 'a',
    leaseId: retried.leaseId,
    reason: 'again',
    retry: true,
  });
  const third = claim(T0 + 131)!;
  assert.equal(third.attempt, 3);
  queue.apply({
    type: 'nack',
    at: T0 + 140,
    id: 'a',
    leaseId: third.leaseId,
    reason: 'gave up',
    retry: true,
  });
  assert.equal(queue.get('a')!.state, 'dead');
  assert.equal(queue.get('a')!.attempts, 3);
  assert.deepEqual(
    queue.deadLetters().map((job) => job.id),
    ['a', 'b'],
  );
  assert.equal(queue.stats().nackedTotal, 4);
});

test('queue state - drops queued jobs whose deadline passed', () => {
  const { queue, enqueue, claim } = machine();
  enqueue('late', 'x', T0, { deadline: T0 + 50 });
  enqueue('soon', 'y', T0, { deadline: T0 + 500 });
  enqueue('born-late', 'z', T0, { deadline: T0 - 1 });
  assert.equal(queue.get('born-late')!.state, 'expired');
  // A claim skips (and expires) a job whose deadline passed without waiting for a tick.
  assert.equal(claim(T0 + 51)!.id, 'soon');
  assert.equal(queue.get('late')!.state, 'expired');
  enqueue('ticked', 'x', T0 + 60, { deadline: T0 + 70 });
  // Heap tops are removed lazily, so the due time may be early (never late).
  assert.ok(queue.nextDueAt()! <= T0 + 71);
  assert.deepEqual(queue.apply({ type: 'tick', at: T0 + 71 }).expired, ['ticked']);
  assert.equal(queue.stats().expiredTotal, 3);
  assert.equal(queue.stats().depth, 0);
});

test('queue state - forgets finished jobs after the retention window, which bounds deduplication', () => {
  const { queue, enqueue, claim } = machine({ retentionMs: 1000 });
  enqueue('a');
  const job = claim()!;
  queue.apply({ type: 'ack', at: T0 + 10, id: 'a', leaseId: job.leaseId });
  assert.equal(enqueue('a', 'acme', T0 + 500).duplicate, true);
  assert.equal(queue.apply({ type: 'tick', at: T0 + 1009 }).forgotten, 0);
  assert.equal(queue.apply({ type: 'tick', at: T0 + 1010 }).forgotten, 1);
  assert.equal(queue.get('a'), undefined);
  assert.equal(enqueue('a', 'acme', T0 + 1011).duplicate, false);
  assert.equal(queue.size, 1);
});

test('queue state - release-leases expires every lease at once', () => {
  const { queue, enqueue, claim } = machine({ maxAttempts: 1 });
  enqueue('a');
  enqueue('b', 'acme', T0, { maxAttempts: 2 });
  claim();
  claim();
  const released = queue.apply({ type: 'release-leases', at: T0 + 1 });
  assert.deepEqual(released.deadLettered, ['a']);
  assert.deepEqual(released.redelivered, ['b']);
  assert.equal(queue.get('a')!.lastError, 'lease expired after 1 attempts');
  assert.equal(queue.stats().inflight, 0);
});

test('queue state - snapshot survives JSON and restores the same state', () => {
  const { queue, enqueue, claim } = machine();
  enqueue('a', 'x');
  enqueue('b', 'y');
  enqueue('c', 'x', T0, { deadline: T0 + 10_000 });
  claim();
  const snapshot = JSON.parse(JSON.stringify(queue.snapshot()));
  const restored = QueueStateMachine.restore(snapshot);
  assert.deepEqual(restored.snapshot(), queue.snapshot());
  assert.deepEqual(restored.stats(), queue.stats());
  assert.deepEqual(restored.checkInvariants(), []);
  assert.deepEqual(
    restored.apply({ type: 'claim', at: T0 + 1, consumer: 'w', leaseMs: 5 }),
    queue.apply({ type: 'claim', at: T0 + 1, consumer: 'w', leaseMs: 5 }),
  );
  assert.throws(
    () => QueueStateMachine.restore({} as never),
    (error: unknown) => isPixelfleetError(error, 'PF_ERR_STORAGE_CORRUPT'),
  );
});

test('queue state - configure changes the defaults later commands use', () => {
  const { queue, enqueue } = machine();
  assert.equal(
    queue.apply({ type: 'configure', at: T0, maxAttempts: 3, retentionMs: 86_400_000 }).changed,
    false,
  );
  assert.equal(queue.apply({ type: 'configure', at: T0, maxAttempts: 7, retentionMs: 1000 }).changed, true);
  enqueue('a');
  assert.equal(queue.get('a')!.maxAttempts, 7);
  assert.throws(() => queue.apply({ type: 'configure', at: T0, maxAttempts: 0, retentionMs: 1 }), RangeError);
});

test('queue state - rejects bad options and unknown commands', () => {
  assert.throws(() => new QueueStateMachine({ maxAttempts: 1.5 }), RangeError);
  assert.throws(() => new QueueStateMachine({ retentionMs: -1 }), RangeError);
  assert.throws(
    () => new QueueStateMachine().apply({ type: 'explode', at: T0 } as unknown as QueueCommand),
    (error: unknown) => isPixelfleetError(error, 'PF_ERR_INTERNAL'),
  );
});

test('queue state - stays O(log n) per command with 50k jobs across 200 accounts', () => {
  const { queue } = machine();
  const started = performance.now();
  const jobs = 50_000;
  for (let index = 0; index < jobs; index++) {
    queue.apply({
      type: 'enqueue',
      at: T0,
      id: `job-${index}`,
      account: `account-${index % 200}`,
      payload: { index },
    });
  }
  let claimed = 0;
  for (let job = claim(); job; job = claim()) {
    claimed++;
    queue.apply({ type: 'ack', at: T0 + 1, id: job.id, leaseId: job.leaseId });
  }
  function claim() {
    return queue.apply({ type: 'claim', at: T0 + 1, consumer: 'w', leaseMs: 60_000 }).job;
  }
  const elapsed = performance.now() - started;
  assert.equal(claimed, jobs);
  assert.equal(queue.stats().ackedTotal, jobs);
  // Quadratic behaviour would take minutes here; linearithmic takes well under a second.
  assert.ok(elapsed < 10_000, `50k enqueue+claim+ack took ${elapsed.toFixed(0)} ms`);
});

test('queue - a job enqueued with its own retention is forgotten on its own schedule', () => {
  const machine = new QueueStateMachine({ retentionMs: 86_400_000 });
  machine.apply({ type: 'enqueue', at: 0, id: 'short', account: 'a', payload: {}, retentionMs: 1000 });
  machine.apply({ type: 'enqueue', at: 0, id: 'default', account: 'a', payload: {} });
  for (const id of ['short', 'default']) {
    const claimed = machine.apply({ type: 'claim', at: 1, consumer: 'w', leaseMs: 10_000 });
    assert.equal(claimed.job?.id, id);
    machine.apply({ type: 'ack', at: 2, id, leaseId: claimed.job!.leaseId });
  }
  assert.equal(machine.nextDueAt(), 1002);
  machine.apply({ type: 'tick', at: 1003 });
  assert.equal(machine.get('short'), undefined, 'short retention passed');
  assert.equal(machine.get('default')?.state, 'succeeded', 'default retention still holds');
  const restored = QueueStateMachine.restore(machine.snapshot());
  restored.apply({ type: 'tick', at: 86_400_003 });
  assert.equal(restored.get('default'), undefined);
});
