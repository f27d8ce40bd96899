import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { createRateLimiter, SlidingWindowLog } from '../../../src/resilience/ratelimit/index.ts';
import {
  type Arrival,
  arrivalsArbitrary,
  FakeClock,
  groupByKey,
  maxInSlidingWindow,
  SEED,
  START,
} from './support.ts';

const parameters = fc.record({
  limit: fc.integer({ min: 1, max: 20 }),
  windowMs: fc.integer({ min: 20, max: 3000 }),
});

test('sliding window log - admits exactly what fits in (t - window, t] and ≤ limit in every sliding window', () => {
  fc.assert(
    fc.property(parameters, arrivalsArbitrary(), ({ limit, windowMs }, arrivals) => {
      const clock = new FakeClock();
      const limiter = createRateLimiter(new SlidingWindowLog({ limit, windowMs }), { clock });
      const history = new Map<string, Arrival[]>();
      const admitted: Arrival[] = [];
      for (const arrival of arrivals) {
        clock.set(arrival.at);
        const decision = limiter.take(arrival.key, arrival.cost);
        // The definition, from the full history rather than a pruned log.
        const past = history.get(arrival.key) ?? [];
        const inWindow = past
          .filter((entry) => entry.at > arrival.at - windowMs)
          .reduce((sum, entry) => sum + entry.cost, 0);
        const expected = inWindow + arrival.cost <= limit;
        if (expected) {
          past.push(arrival);
          history.set(arrival.key, past);
        }
        assert.equal(decision.allowed, expected, `at ${arrival.at - START} ms key ${arrival.key}`);
        assert.equal(decision.remaining, limit - inWindow - (expected ? arrival.cost : 0));
        if (decision.allowed) admitted.push(arrival);
      }
      for (const [key, admissions] of groupByKey(admitted)) {
        const most = maxInSlidingWindow(admissions, windowMs);
        assert.ok(most <= limit, `key ${key}: ${most} in one sliding window, limit ${limit}`);
      }
    }),
    { seed: SEED, numRuns: 150 },
  );
});

test('sliding window log - no boundary burst: limit at the end of one window leaves nothing for the next', () => {
  const clock = new FakeClock(60_000 * 1000);
  const limiter = createRateLimiter(new SlidingWindowLog({ limit: 100, windowMs: 60_000 }), { clock });
  clock.advance(60_000 - 1);
  let admitted = 0;
  for (let index = 0; index < 100; index += 1) if (limiter.take('k').allowed) admitted += 1;
  clock.advance(1);
  for (let index = 0; index < 100; index += 1) if (limiter.take('k').allowed) admitted += 1;
  assert.equal(admitted, 100);
  const refused = limiter.take('k');
  assert.equal(refused.retryAfterMs, 60_000 - 1);
  clock.advance(60_000 - 1);
  assert.equal(limiter.take('k', 0).remaining, 100);
});

test('sliding window log - refused requests are not logged, so a throttled client recovers', () => {
  const clock = new FakeClock();
  const limiter = createRateLimiter(new SlidingWindowLog({ limit: 2, windowMs: 1000 }), { clock });
  limiter.take('k');
  limiter.take('k');
  for (let index = 0; index < 50; index += 1) {
    clock.advance(10);
    assert.equal(limiter.take('k').allowed, false);
  }
  clock.set(START + 1000);
  assert.equal(limiter.take('k', 2).allowed, true);
});

test('sliding window log - rejects bad options with RangeError', () => {
  assert.throws(() => new SlidingWindowLog({ limit: 2.5, windowMs: 1000 }), RangeError);
  assert.throws(() => new SlidingWindowLog({ limit: 2, windowMs: -1 }), RangeError);
});
