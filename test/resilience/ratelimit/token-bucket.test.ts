import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { createRateLimiter, TokenBucket } from '../../../src/resilience/ratelimit/index.ts';
import {
  type Arrival,
  arrivalsArbitrary,
  FakeClock,
  groupByKey,
  maxBurstOverRate,
  SEED,
  START,
} from './support.ts';

// Rates are quarters of a token per second so the reference model below can count in exact
// integers: one token is 4000 units and a rate of k/4 tokens/s adds exactly k units per ms.
const UNITS_PER_TOKEN = 4000;
const parameters = fc.record({
  capacity: fc.integer({ min: 1, max: 20 }),
  quarterTokensPerSecond: fc.integer({ min: 1, max: 200 }),
});

test('token bucket - admits exactly what the definition allows and never more than capacity + rate·t', () => {
  fc.assert(
    fc.property(parameters, arrivalsArbitrary(), ({ capacity, quarterTokensPerSecond }, arrivals) => {
      const refillPerSecond = quarterTokensPerSecond / 4;
      const clock = new FakeClock();
      const limiter = createRateLimiter(new TokenBucket({ capacity, refillPerSecond }), { clock });
      const model = new Map<string, { units: number; at: number }>();
      const admitted: Arrival[] = [];
      for (const arrival of arrivals) {
        clock.set(arrival.at);
        const decision = limiter.take(arrival.key, arrival.cost);
        // The definition, in exact integers: refill since the last request, capped at capacity.
        const previous = model.get(arrival.key) ?? { units: capacity * UNITS_PER_TOKEN, at: arrival.at };
        let units = Math.min(
          capacity * UNITS_PER_TOKEN,
          previous.units + (arrival.at - previous.at) * quarterTokensPerSecond,
        );
        const expected = units >= arrival.cost * UNITS_PER_TOKEN;
        if (expected) units -= arrival.cost * UNITS_PER_TOKEN;
        model.set(arrival.key, { units, at: arrival.at });
        assert.equal(decision.allowed, expected, `at ${arrival.at - START} ms key ${arrival.key}`);
        assert.equal(decision.remaining, Math.floor(units / UNITS_PER_TOKEN));
        assert.equal(decision.limit, capacity);
        if (decision.allowed) admitted.push(arrival);
      }
      const ratePerMs = refillPerSecond / 1000;
      for (const [key, admissions] of groupByKey(admitted)) {
        const burst = maxBurstOverRate(admissions, ratePerMs);
        assert.ok(
          burst <= capacity + 1e-6,
          `key ${key}: ${burst} above capacity ${capacity} over some interval`,
        );
      }
    }),
    { seed: SEED, numRuns: 150 },
  );
});

test('token bucket - a full bucket admits a burst of capacity, then exactly the refill rate', () => {
  const clock = new FakeClock();
  const limiter = createRateLimiter(new TokenBucket({ capacity: 10, refillPerSecond: 5 }), { clock });
  let admitted = 0;
  for (let index = 0; index < 15; index += 1) if (limiter.take('k').allowed) admitted += 1;
  assert.equal(admitted, 10);
  const refused = limiter.take('k');
  assert.equal(refused.allowed, false);
  assert.equal(refused.retryAfterMs, 200);
  // Over the next 10 s one request every 10 ms: 5 per second get through, 50 in all.
  admitted = 0;
  for (let step = 1; step <= 1000; step += 1) {
    clock.advance(10);
    if (limiter.take('k').allowed) admitted += 1;
  }
  assert.equal(admitted, 50);
});

test('token bucket - decisions carry the policy, the window and the time to the next token', () => {
  const clock = new FakeClock();
  const limiter = createRateLimiter(new TokenBucket({ capacity: 4, refillPerSecond: 2, policy: 'burst' }), {
    clock,
  });
  const first = limiter.take('k', 3);
  assert.deepEqual(first, {
    allowed: true,
    limit: 4,
    remaining: 1,
    resetMs: 500,
    retryAfterMs: 0,
    policy: 'burst',
    windowMs: 2000,
  });
  const tooCostly = limiter.take('k', 5);
  assert.equal(tooCostly.allowed, false);
  assert.equal(tooCostly.retryAfterMs, Number.POSITIVE_INFINITY);
  clock.advance(2000);
  assert.equal(limiter.take('k', 0).remaining, 4);
  assert.equal(limiter.take('k', 0).resetMs, 0);
});

test('token bucket - rejects bad options with RangeError', () => {
  assert.throws(() => new TokenBucket({ capacity: 0, refillPerSecond: 1 }), RangeError);
  assert.throws(() => new TokenBucket({ capacity: 1.5, refillPerSecond: 1 }), RangeError);
  assert.throws(() => new TokenBucket({ capacity: 1, refillPerSecond: 0 }), RangeError);
  assert.throws(() => new TokenBucket({ capacity: 1, refillPerSecond: Number.NaN }), RangeError);
  assert.throws(() => new TokenBucket({ capacity: 1, refillPerSecond: 1, policy: 'bad\nname' }), RangeError);
});

test('token bucket - a clock stepping backwards never refills twice', () => {
  const bucket = new TokenBucket({ capacity: 2, refillPerSecond: 1 });
  let step = bucket.step(undefined, 10_000, 2);
  assert.equal(step.decision.remaining, 0);
  step = bucket.step(step.state, 9_000, 0);
  assert.equal(step.decision.remaining, 0);
  step = bucket.step(step.state, 10_999, 1);
  assert.equal(step.decision.allowed, false);
  step = bucket.step(step.state, 11_000, 1);
  assert.equal(step.decision.allowed, true);
});
