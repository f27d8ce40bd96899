import assert from 'node:assert/strict';
import { test } from 'node:test';
import { RetryBudget } from '../../../src/resilience/remote/index.ts';

function clock(start = 5_000_000) {
  let now = start;
  return {
    now: () => now,
    advance: (ms: number) => {
      now += ms;
    },
  };
}

test('retry budget - grants ratio × requests plus the per-second floor over the window', () => {
  const time = clock();
  const budget = new RetryBudget({ ratio: 0.2, minRetriesPerSecond: 1, windowMs: 10_000, now: time.now });
  for (let i = 0; i < 100; i++) budget.recordRequest();
  let granted = 0;
  while (budget.tryRetry()) granted += 1;
  assert.equal(granted, 0.2 * 100 + 1 * 10);
  assert.deepEqual(budget.snapshot(), { requests: 100, retries: 30 });
});

test('retry budget - with no floor and no requests nothing may be retried', () => {
  const budget = new RetryBudget({ minRetriesPerSecond: 0, now: () => 0 });
  assert.equal(budget.tryRetry(), false);
  for (let i = 0; i < 10; i++) budget.recordRequest();
  assert.equal(budget.tryRetry(), true);
  assert.equal(budget.tryRetry(), true);
  assert.equal(budget.tryRetry(), false, '20 % of 10 requests is 2 retries');
});

test('retry budget - retries and requests age out of the window', () => {
  const time = clock();
  const budget = new RetryBudget({ ratio: 0.5, minRetriesPerSecond: 0, windowMs: 3000, now: time.now });
  for (let i = 0; i < 4; i++) budget.recordRequest();
  assert.ok(budget.tryRetry() && budget.tryRetry());
  assert.equal(budget.tryRetry(), false);
  time.advance(1000);
  for (let i = 0; i < 2; i++) budget.recordRequest();
  assert.ok(budget.tryRetry(), '6 requests allow 3 retries');
  assert.equal(budget.tryRetry(), false);
  time.advance(2000); // the first second left the 3 s window
  assert.deepEqual(budget.snapshot(), { requests: 2, retries: 1 });
  assert.equal(budget.tryRetry(), false, '2 requests allow 1 retry, already used');
  time.advance(10_000);
  assert.deepEqual(budget.snapshot(), { requests: 0, retries: 0 });
});

test('retry budget - under sustained load retries never exceed ratio of requests plus the floor', () => {
  const time = clock();
  const budget = new RetryBudget({ ratio: 0.1, minRetriesPerSecond: 2, windowMs: 10_000, now: time.now });
  let requests = 0;
  let retries = 0;
  for (let ms = 0; ms < 60_000; ms += 10) {
    time.advance(10);
    budget.recordRequest();
    requests += 1;
    // Every request fails and wants three retries: the budget is what stops the storm.
    for (let i = 0; i < 3; i++) if (budget.tryRetry()) retries += 1;
  }
  const bound = 0.1 * requests + 2 * 60 + 0.1 * 1000 + 20; // one extra window of slack at the start
  assert.ok(retries <= bound, `${retries} retries for ${requests} requests`);
  assert.ok(retries >= 0.1 * requests, 'the budget is actually granted');
});

test('retry budget - bad options are RangeErrors', () => {
  assert.throws(() => new RetryBudget({ ratio: -0.1 }), RangeError);
  assert.throws(() => new RetryBudget({ windowMs: 500 }), RangeError);
  assert.throws(() => new RetryBudget({ minRetriesPerSecond: Number.NaN }), RangeError);
});
