import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { createRateLimiter, FixedWindow } from '../../../src/resilience/ratelimit/index.ts';
import {
  type Arrival,
  arrivalsArbitrary,
  FakeClock,
  groupByKey,
  maxInAlignedWindow,
  maxInSlidingWindow,
  SEED,
  START,
} from './support.ts';

const parameters = fc.record({
  limit: fc.integer({ min: 1, max: 20 }),
  windowMs: fc.integer({ min: 20, max: 3000 }),
});

test('fixed window - admits exactly limit per aligned window, by definition', () => {
  let worstSlidingRatio = 0;
  fc.assert(
    fc.property(parameters, arrivalsArbitrary(), ({ limit, windowMs }, arrivals) => {
      const clock = new FakeClock();
      const limiter = createRateLimiter(new FixedWindow({ limit, windowMs }), { clock });
      const counts = new Map<string, number>();
      const admitted: Arrival[] = [];
      for (const arrival of arrivals) {
        clock.set(arrival.at);
        const decision = limiter.take(arrival.key, arrival.cost);
        const slot = `${arrival.key}/${Math.floor(arrival.at / windowMs)}`;
        const count = counts.get(slot) ?? 0;
        const expected = count + arrival.cost <= limit;
        if (expected) counts.set(slot, count + arrival.cost);
        assert.equal(decision.allowed, expected, `at ${arrival.at - START} ms key ${arrival.key}`);
        assert.equal(decision.remaining, limit - (counts.get(slot) ?? 0));
        if (decision.allowed) admitted.push(arrival);
      }
      for (const [key, admissions] of groupByKey(admitted)) {
        assert.ok(maxInAlignedWindow(admissions, windowMs) <= limit, `key ${key} over limit in a window`);
        worstSlidingRatio = Math.max(worstSlidingRatio, maxInSlidingWindow(admissions, windowMs) / limit);
      }
    }),
    { seed: SEED, numRuns: 150 },
  );
  // The boundary effect shows up on random traffic too: some sliding window holds more than limit.
  assert.ok(worstSlidingRatio > 1, `worst sliding window / limit = ${worstSlidingRatio}`);
});

test('fixed window - shows the 2× boundary burst: limit at the end of one window, limit at the start of the next', () => {
  const clock = new FakeClock(60_000 * 1000); // a window boundary of a 60 s window
  const limiter = createRateLimiter(new FixedWindow({ limit: 100, windowMs: 60_000 }), { clock });
  clock.advance(60_000 - 1); // the last millisecond of window one
  let admitted = 0;
  for (let index = 0; index < 100; index += 1) if (limiter.take('k').allowed) admitted += 1;
  assert.equal(limiter.take('k').allowed, false);
  clock.advance(1); // the first millisecond of window two
  for (let index = 0; index < 100; index += 1) if (limiter.take('k').allowed) admitted += 1;
  // 200 requests admitted within 2 ms, twice the limit of any 60 s window.
  assert.equal(admitted, 200);
});

test('fixed window - reset and retry point at the window end', () => {
  const clock = new FakeClock(10_000 * 500);
  const limiter = createRateLimiter(new FixedWindow({ limit: 2, windowMs: 10_000, policy: 'minute' }), {
    clock,
  });
  clock.advance(2500);
  assert.equal(limiter.take('k').resetMs, 7500);
  limiter.take('k');
  const refused = limiter.take('k');
  assert.equal(refused.allowed, false);
  assert.equal(refused.retryAfterMs, 7500);
  assert.equal(refused.policy, 'minute');
  clock.advance(7500);
  assert.equal(limiter.take('k').allowed, true);
});

test('fixed window - rejects bad options with RangeError', () => {
  assert.throws(() => new FixedWindow({ limit: 0, windowMs: 1000 }), RangeError);
  assert.throws(() => new FixedWindow({ limit: 1, windowMs: 0.5 }), RangeError);
  assert.throws(() => new FixedWindow({ limit: 1, windowMs: Number.NaN }), RangeError);
});
