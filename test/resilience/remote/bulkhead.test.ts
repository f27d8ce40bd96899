import assert from 'node:assert/strict';
import { test } from 'node:test';
import { isPixelfleetError } from '../../../src/errors/index.ts';
import { Bulkhead } from '../../../src/resilience/remote/index.ts';

function gate() {
  let open!: () => void;
  const opened = new Promise<void>((resolve) => {
    open = resolve;
  });
  return { open, opened };
}

test('bulkhead - rejects with PF_ERR_BULKHEAD_FULL once slots and queue are taken', async () => {
  const bulkhead = new Bulkhead({ maxConcurrent: 2, maxQueued: 1 });
  const release = gate();
  const running = [1, 2, 3].map((n) =>
    bulkhead.run(async () => {
      await release.opened;
      return n;
    }),
  );
  assert.equal(bulkhead.active, 2);
  assert.equal(bulkhead.queued, 1);
  await assert.rejects(
    bulkhead.run(async () => 4),
    (error) => isPixelfleetError(error, 'PF_ERR_BULKHEAD_FULL'),
  );
  release.open();
  assert.deepEqual(await Promise.all(running), [1, 2, 3]);
  assert.equal(bulkhead.active, 0);
  assert.equal(bulkhead.queued, 0);
});

test('bulkhead - queued calls run in arrival order and a failing call frees its slot', async () => {
  const bulkhead = new Bulkhead({ maxConcurrent: 1, maxQueued: 5 });
  const order: number[] = [];
  const first = bulkhead.run(async () => {
    throw new Error('boom');
  });
  const rest = [2, 3, 4].map((n) => bulkhead.run(async () => void order.push(n)));
  await assert.rejects(first, /boom/);
  await Promise.all(rest);
  assert.deepEqual(order, [2, 3, 4]);
  assert.equal(bulkhead.active, 0);
});

test('bulkhead - a cancelled waiter leaves the queue', async () => {
  const bulkhead = new Bulkhead({ maxConcurrent: 1, maxQueued: 1 });
  const release = gate();
  const holder = bulkhead.run(() => release.opened);
  const controller = new AbortController();
  const waiter = bulkhead.run(async () => 'ran', controller.signal);
  assert.equal(bulkhead.queued, 1);
  controller.abort(new Error('caller gave up'));
  await assert.rejects(waiter, /caller gave up/);
  assert.equal(bulkhead.queued, 0);
  release.open();
  await holder;
  assert.equal(bulkhead.active, 0);
});

test('bulkhead - bad options are RangeErrors', () => {
  assert.throws(() => new Bulkhead({ maxConcurrent: 0 }), RangeError);
  assert.throws(() => new Bulkhead({ maxConcurrent: 1, maxQueued: -1 }), RangeError);
});
