import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import {
  FixedWindow,
  LeakyBucket,
  type LimiterAlgorithm,
  SlidingWindowCounter,
  SlidingWindowLog,
  TokenBucket,
} from '../../../src/resilience/ratelimit/index.ts';
import { arrivalsArbitrary, runAlgorithm, SEED } from './support.ts';

// Every algorithm, with random parameters, as the pure core (no store in between).
const algorithms: fc.Arbitrary<LimiterAlgorithm<unknown>> = fc.oneof(
  fc
    .record({ capacity: fc.integer({ min: 1, max: 20 }), quarter: fc.integer({ min: 1, max: 200 }) })
    .map(({ capacity, quarter }) => new TokenBucket({ capacity, refillPerSecond: quarter / 4 })),
  fc
    .record({ capacity: fc.integer({ min: 1, max: 20 }), quarter: fc.integer({ min: 1, max: 200 }) })
    .map(({ capacity, quarter }) => new LeakyBucket({ capacity, drainPerSecond: quarter / 4 })),
  fc
    .record({ limit: fc.integer({ min: 1, max: 20 }), windowMs: fc.integer({ min: 20, max: 3000 }) })
    .map((options) => new FixedWindow(options)),
  fc
    .record({ limit: fc.integer({ min: 1, max: 20 }), windowMs: fc.integer({ min: 20, max: 3000 }) })
    .map((options) => new SlidingWindowLog(options)),
  fc
    .record({ limit: fc.integer({ min: 1, max: 20 }), windowMs: fc.integer({ min: 20, max: 3000 }) })
    .map((options) => new SlidingWindowCounter(options)),
) as fc.Arbitrary<LimiterAlgorithm<unknown>>;

test('rate limiters - retryAfterMs is exact: the same request is admitted then and not a millisecond earlier', () => {
  fc.assert(
    fc.property(algorithms, arrivalsArbitrary({ minLength: 300, maxLength: 1000 }), (algorithm, arrivals) => {
      runAlgorithm(algorithm, arrivals, (arrival, _before, state, allowed) => {
        if (allowed) return;
        const refused = algorithm.step(state, arrival.at, arrival.cost).decision;
        const wait = refused.retryAfterMs;
        assert.ok(wait > 0, `${algorithm.name}: refused with retryAfterMs ${wait}`);
        if (!Number.isFinite(wait)) {
          assert.ok(arrival.cost > refused.limit, `${algorithm.name}: Infinity for a cost that fits`);
          return;
        }
        assert.equal(
          algorithm.step(state, arrival.at + wait, arrival.cost).decision.allowed,
          true,
          algorithm.name,
        );
        assert.equal(
          algorithm.step(state, arrival.at + wait - 1, arrival.cost).decision.allowed,
          false,
          `${algorithm.name}: admitted 1 ms before retryAfterMs ${wait}`,
        );
      });
    }),
    { seed: SEED, numRuns: 200 },
  );
});

test('rate limiters - resetMs is the effective window: remaining grows then and not a millisecond earlier', () => {
  fc.assert(
    fc.property(algorithms, arrivalsArbitrary({ minLength: 300, maxLength: 1000 }), (algorithm, arrivals) => {
      runAlgorithm(algorithm, arrivals, (arrival, _before, state) => {
        const now = algorithm.step(state, arrival.at, 0).decision;
        if (now.remaining >= now.limit) {
          assert.equal(now.resetMs, 0, `${algorithm.name}: full quota but resetMs ${now.resetMs}`);
          return;
        }
        const later = algorithm.step(state, arrival.at + now.resetMs, 0).decision;
        assert.ok(later.remaining > now.remaining, `${algorithm.name}: nothing freed after resetMs`);
        if (now.resetMs >= 1) {
          const earlier = algorithm.step(state, arrival.at + now.resetMs - 1, 0).decision;
          assert.equal(earlier.remaining, now.remaining, `${algorithm.name}: freed before resetMs`);
        }
      });
    }),
    { seed: SEED, numRuns: 200 },
  );
});

test('rate limiters - a step never mutates the state it is given', () => {
  fc.assert(
    fc.property(algorithms, arrivalsArbitrary({ minLength: 200, maxLength: 400 }), (algorithm, arrivals) => {
      runAlgorithm(algorithm, arrivals, (arrival, before) => {
        if (before === undefined) return;
        const copy = structuredClone(before);
        algorithm.step(before, arrival.at + 1, arrival.cost);
        assert.deepEqual(before, copy);
      });
    }),
    { seed: SEED, numRuns: 50 },
  );
});

test('rate limiters - state expiry is exact: a state past expiresAt decides like no state at all', () => {
  fc.assert(
    fc.property(algorithms, arrivalsArbitrary({ minLength: 200, maxLength: 600 }), (algorithm, arrivals) => {
      const states = new Map<string, unknown>();
      for (const arrival of arrivals) {
        const step = algorithm.step(states.get(arrival.key), arrival.at, arrival.cost);
        states.set(arrival.key, step.state);
        for (const probe of [step.expiresAt, step.expiresAt + 1, step.expiresAt + 12_345]) {
          for (const cost of [0, 1, 2]) {
            const kept = algorithm.step(step.state, probe, cost).decision;
            const fresh = algorithm.step(undefined, probe, cost).decision;
            assert.deepEqual(kept, fresh, `${algorithm.name} at expiresAt + ${probe - step.expiresAt}`);
          }
        }
      }
    }),
    { seed: SEED, numRuns: 50 },
  );
});
