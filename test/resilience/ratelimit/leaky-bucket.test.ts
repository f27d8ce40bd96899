import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { createRateLimiter, LeakyBucket } from '../../../src/resilience/ratelimit/index.ts';
import {
  type Arrival,
  arrivalsArbitrary,
  FakeClock,
  groupByKey,
  maxBurstOverRate,
  SEED,
  START,
} from './support.ts';

// Exact integer reference: one cost unit is 4000 level units; a drain rate of k/4 per second
// removes exactly k level units per ms.
const UNITS = 4000;
const parameters = fc.record({
  capacity: fc.integer({ min: 1, max: 20 }),
  quarterDrainPerSecond: fc.integer({ min: 1, max: 200 }),
});

test('leaky bucket - never exceeds capacity, drains at rate, and shapes output to the drain rate', () => {
  fc.assert(
    fc.property(parameters, arrivalsArbitrary(), ({ capacity, quarterDrainPerSecond }, arrivals) => {
      const drainPerSecond = quarterDrainPerSecond / 4;
      const clock = new FakeClock();
      const limiter = createRateLimiter(new LeakyBucket({ capacity, drainPerSecond }), { clock });
      const model = new Map<string, { level: number; at: number }>();
      const lastStart = new Map<string, { start: number; cost: number }>();
      const admitted: Arrival[] = [];
      for (const arrival of arrivals) {
        clock.set(arrival.at);
        const decision = limiter.take(arrival.key, arrival.cost);
        const previous = model.get(arrival.key) ?? { level: 0, at: arrival.at };
        let level = Math.max(0, previous.level - (arrival.at - previous.at) * quarterDrainPerSecond);
        const queuedAhead = level;
        const expected = level + arrival.cost * UNITS <= capacity * UNITS;
        if (expected) level += arrival.cost * UNITS;
        model.set(arrival.key, { level, at: arrival.at });
        assert.equal(decision.allowed, expected, `at ${arrival.at - START} ms key ${arrival.key}`);
        assert.ok(level <= capacity * UNITS, 'level above capacity');
        assert.equal(decision.remaining, Math.floor((capacity * UNITS - level) / UNITS));
        if (!decision.allowed) continue;
        admitted.push(arrival);
        // As a queue: start once the work ahead has drained, never sooner than the rate allows.
        const delayMs = decision.delayMs ?? 0;
        assert.ok(Math.abs(delayMs - queuedAhead / quarterDrainPerSecond) < 1e-6, 'delay is the queue ahead');
        assert.ok(delayMs <= (capacity * 1000) / drainPerSecond + 1e-6, 'delay bounded by capacity / rate');
        // Relative to START: absolute epoch ms would eat the float precision the check needs.
        const start = arrival.at - START + delayMs;
        const before = lastStart.get(arrival.key);
        if (before !== undefined) {
          const spacing = start - before.start;
          assert.ok(spacing >= (before.cost * 1000) / drainPerSecond - 1e-6, `starts ${spacing} ms apart`);
        }
        lastStart.set(arrival.key, { start, cost: arrival.cost });
      }
      for (const [key, admissions] of groupByKey(admitted)) {
        const burst = maxBurstOverRate(admissions, drainPerSecond / 1000);
        assert.ok(burst <= capacity + 1e-6, `key ${key}: burst ${burst} above capacity ${capacity}`);
      }
    }),
    { seed: SEED, numRuns: 150 },
  );
});

test('leaky bucket - a full bucket frees exactly one unit per 1 / drain rate', () => {
  const clock = new FakeClock();
  const limiter = createRateLimiter(new LeakyBucket({ capacity: 5, drainPerSecond: 10 }), { clock });
  const delays: number[] = [];
  for (let index = 0; index < 5; index += 1) delays.push(limiter.take('k').delayMs ?? -1);
  assert.deepEqual(delays, [0, 100, 200, 300, 400]);
  const full = limiter.take('k');
  assert.equal(full.allowed, false);
  assert.equal(full.remaining, 0);
  assert.equal(full.retryAfterMs, 100);
  for (const elapsed of [99, 100, 250, 499, 500, 10_000]) {
    clock.set(START + elapsed);
    assert.equal(
      limiter.take('k', 0).remaining,
      Math.min(5, Math.floor(elapsed / 100)),
      `after ${elapsed} ms`,
    );
  }
});

test('leaky bucket - rejects bad options with RangeError', () => {
  assert.throws(() => new LeakyBucket({ capacity: -1, drainPerSecond: 1 }), RangeError);
  assert.throws(() => new LeakyBucket({ capacity: 1, drainPerSecond: Number.POSITIVE_INFINITY }), RangeError);
  assert.throws(() => new LeakyBucket({ capacity: 1, drainPerSecond: -2 }), RangeError);
});
