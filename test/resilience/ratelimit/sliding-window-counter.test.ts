import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { createRateLimiter, SlidingWindowCounter } from '../../../src/resilience/ratelimit/index.ts';
import {
  type Arrival,
  arrivalsArbitrary,
  FakeClock,
  groupByKey,
  maxInAlignedWindow,
  maxInSlidingWindow,
  maxOverLinearBound,
  SEED,
  START,
} from './support.ts';

const parameters = fc.record({
  limit: fc.integer({ min: 1, max: 20 }),
  windowMs: fc.integer({ min: 20, max: 3000 }),
});

test('sliding window counter - admits exactly by the weighted estimate and stays within limit·(1 + d/window)', () => {
  fc.assert(
    fc.property(parameters, arrivalsArbitrary(), ({ limit, windowMs }, arrivals) => {
      const clock = new FakeClock();
      const limiter = createRateLimiter(new SlidingWindowCounter({ limit, windowMs }), { clock });
      const perWindow = new Map<string, number>();
      const admitted: Arrival[] = [];
      for (const arrival of arrivals) {
        clock.set(arrival.at);
        const decision = limiter.take(arrival.key, arrival.cost);
        // The definition in exact integers (everything multiplied by windowMs):
        // previous · (window - elapsed) + current · window + cost · window ≤ limit · window.
        const window = Math.floor(arrival.at / windowMs);
        const elapsed = arrival.at - window * windowMs;
        const current = perWindow.get(`${arrival.key}/${window}`) ?? 0;
        const previous = perWindow.get(`${arrival.key}/${window - 1}`) ?? 0;
        const scaledEstimate = previous * (windowMs - elapsed) + current * windowMs;
        const expected = scaledEstimate + arrival.cost * windowMs <= limit * windowMs;
        if (expected) perWindow.set(`${arrival.key}/${window}`, current + arrival.cost);
        assert.equal(decision.allowed, expected, `at ${arrival.at - START} ms key ${arrival.key}`);
        if (decision.allowed) admitted.push(arrival);
      }
      for (const [key, admissions] of groupByKey(admitted)) {
        assert.ok(
          maxInAlignedWindow(admissions, windowMs) <= limit,
          `key ${key}: over limit in an aligned window`,
        );
        const excess = maxOverLinearBound(admissions, windowMs, limit);
        assert.ok(excess <= limit + 1e-9, `key ${key}: cost - limit·d/window reached ${excess} > ${limit}`);
        assert.ok(maxInSlidingWindow(admissions, windowMs) < 2 * limit, `key ${key}: 2× limit in a window`);
      }
    }),
    { seed: SEED, numRuns: 150 },
  );
});

test('sliding window counter - no 2× boundary burst: after limit at the end of a window, the next admits by elapsed fraction', () => {
  const clock = new FakeClock(60_000 * 1000);
  const limiter = createRateLimiter(new SlidingWindowCounter({ limit: 100, windowMs: 60_000 }), { clock });
  clock.advance(60_000 - 1);
  let admitted = 0;
  for (let index = 0; index < 100; index += 1) if (limiter.take('k').allowed) admitted += 1;
  clock.advance(1);
  for (let index = 0; index < 100; index += 1) if (limiter.take('k').allowed) admitted += 1;
  assert.equal(admitted, 100, 'nothing more at the first millisecond of the next window');
  // 6 s (10 %) into the new window the previous window weighs 90: room for exactly 10 more.
  clock.advance(6_000);
  admitted = 0;
  for (let index = 0; index < 100; index += 1) if (limiter.take('k').allowed) admitted += 1;
  assert.equal(admitted, 10);
});

test('sliding window counter - the worst case: a window ending in a full burst, then steady traffic', () => {
  // The bound is tight only when the previous window's whole quota lands at its very end.
  const limit = 50;
  const windowMs = 1000;
  const clock = new FakeClock(windowMs * 10_000);
  const limiter = createRateLimiter(new SlidingWindowCounter({ limit, windowMs }), { clock });
  clock.advance(windowMs - 1);
  const admitted: number[] = [];
  for (let index = 0; index < limit; index += 1) if (limiter.take('k').allowed) admitted.push(clock.now());
  for (let step = 0; step < windowMs; step += 1) {
    clock.advance(1);
    if (limiter.take('k').allowed) admitted.push(clock.now());
  }
  const inWindow = maxInSlidingWindow({ times: admitted, costs: admitted.map(() => 1) }, windowMs);
  assert.ok(inWindow < 2 * limit && inWindow > 1.9 * limit, `${inWindow} in one sliding window`);
});

test('sliding window counter - rejects bad options with RangeError', () => {
  assert.throws(() => new SlidingWindowCounter({ limit: 0, windowMs: 1000 }), RangeError);
  assert.throws(() => new SlidingWindowCounter({ limit: 1, windowMs: 1e-3 }), RangeError);
});
