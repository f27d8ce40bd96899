/**
 * Accuracy figures: all five algorithms configured for the same nominal quota (20 per 1000 ms;
 * buckets hold 20 and refill/drain at 20/s) see the same seeded random arrival sequences, and we
 * measure what each actually admitted. The figures are printed as test diagnostics.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import {
  createRateLimiter,
  FixedWindow,
  LeakyBucket,
  type LimiterAlgorithm,
  SlidingWindowCounter,
  SlidingWindowLog,
  TokenBucket,
} from '../../../src/resilience/ratelimit/index.ts';
import {
  type Admissions,
  arrivalsArbitrary,
  FakeClock,
  maxInAlignedWindow,
  maxInSlidingWindow,
  SEED,
} from './support.ts';

const LIMIT = 20;
const WINDOW_MS = 1000;

const algorithms: Record<string, () => LimiterAlgorithm<unknown>> = {
  'token bucket': () =>
    new TokenBucket({ capacity: LIMIT, refillPerSecond: LIMIT }) as LimiterAlgorithm<unknown>,
  'leaky bucket': () =>
    new LeakyBucket({ capacity: LIMIT, drainPerSecond: LIMIT }) as LimiterAlgorithm<unknown>,
  'fixed window': () => new FixedWindow({ limit: LIMIT, windowMs: WINDOW_MS }) as LimiterAlgorithm<unknown>,
  'sliding window log': () =>
    new SlidingWindowLog({ limit: LIMIT, windowMs: WINDOW_MS }) as LimiterAlgorithm<unknown>,
  'sliding window counter': () =>
    new SlidingWindowCounter({ limit: LIMIT, windowMs: WINDOW_MS }) as LimiterAlgorithm<unknown>,
};

interface Figures {
  slidingWindow: number;
  tenthWindow: number;
  alignedWindow: number;
  admitted: number;
  offered: number;
}

test('rate limiters - accuracy over seeded random arrivals (max admitted per window / limit)', (t) => {
  const runs = fc.sample(arrivalsArbitrary({ keys: ['k'], maxCost: 1, minLength: 2000, maxLength: 4000 }), {
    seed: SEED,
    numRuns: 100,
  });
  const figures = new Map<string, Figures>();
  for (const [name, make] of Object.entries(algorithms)) {
    const total: Figures = { slidingWindow: 0, tenthWindow: 0, alignedWindow: 0, admitted: 0, offered: 0 };
    for (const arrivals of runs) {
      const clock = new FakeClock();
      const limiter = createRateLimiter(make(), { clock });
      const admissions: Admissions = { times: [], costs: [] };
      for (const arrival of arrivals) {
        clock.set(arrival.at);
        if (limiter.take(arrival.key, arrival.cost).allowed) {
          admissions.times.push(arrival.at);
          admissions.costs.push(arrival.cost);
        }
      }
      total.slidingWindow = Math.max(total.slidingWindow, maxInSlidingWindow(admissions, WINDOW_MS) / LIMIT);
      total.tenthWindow = Math.max(total.tenthWindow, maxInSlidingWindow(admissions, WINDOW_MS / 10) / LIMIT);
      total.alignedWindow = Math.max(total.alignedWindow, maxInAlignedWindow(admissions, WINDOW_MS) / LIMIT);
      total.admitted += admissions.times.length;
      total.offered += arrivals.length;
    }
    figures.set(name, total);
  }
  const logAdmitted = figures.get('sliding window log')!.admitted;
  t.diagnostic(`${runs.length} runs, ${figures.get('token bucket')!.offered} requests offered per algorithm`);
  t.diagnostic(
    'algorithm | max in any 1000 ms / limit | max in any 100 ms / limit | max per aligned window / limit | admitted vs log',
  );
  for (const [name, figure] of figures) {
    t.diagnostic(
      `${name} | ${figure.slidingWindow.toFixed(2)} | ${figure.tenthWindow.toFixed(2)} | ${figure.alignedWindow.toFixed(2)} | ${(figure.admitted / logAdmitted).toFixed(3)}`,
    );
  }
  // The documented guarantees, on the same runs.
  assert.ok(figures.get('token bucket')!.slidingWindow <= 2);
  assert.ok(figures.get('token bucket')!.tenthWindow <= 1.1);
  assert.ok(figures.get('leaky bucket')!.slidingWindow <= 2);
  assert.ok(figures.get('fixed window')!.alignedWindow <= 1);
  assert.ok(figures.get('sliding window log')!.slidingWindow <= 1);
  assert.ok(figures.get('sliding window counter')!.alignedWindow <= 1);
  assert.ok(figures.get('sliding window counter')!.slidingWindow < 2);
  assert.ok(figures.get('sliding window counter')!.tenthWindow <= 1.1);
});
