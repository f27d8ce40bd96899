/**
 * The contract every `LimiterStore` keeps, as one suite to run against each engine (memory now,
 * Redis later). A store under test must take its time from the clock it is given, so the suite
 * can drive time by hand (a Redis store would pass it to its script instead of reading `TIME`).
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import {
  type Clock,
  createAsyncRateLimiter,
  FixedWindow,
  LeakyBucket,
  type LimiterAlgorithm,
  type LimiterStore,
  SlidingWindowCounter,
  SlidingWindowLog,
  TokenBucket,
} from '../../../src/resilience/ratelimit/index.ts';
import { arrivalsArbitrary, FakeClock, SEED } from './support.ts';

export interface StoreUnderTest {
  store: LimiterStore;
  close(): Promise<void>;
}

function everyAlgorithm(): LimiterAlgorithm<unknown>[] {
  return [
    new TokenBucket({ capacity: 5, refillPerSecond: 7.5, policy: 'token' }),
    new LeakyBucket({ capacity: 4, drainPerSecond: 3, policy: 'leaky' }),
    new FixedWindow({ limit: 6, windowMs: 700, policy: 'fixed' }),
    new SlidingWindowLog({ limit: 6, windowMs: 900, policy: 'log' }),
    new SlidingWindowCounter({ limit: 6, windowMs: 800, policy: 'counter' }),
  ] as LimiterAlgorithm<unknown>[];
}

export function limiterStoreContract(engine: string, open: (clock: Clock) => Promise<StoreUnderTest>): void {
  test(`${engine} store - decides exactly as the pure algorithm, for every algorithm and key`, async () => {
    await fc.assert(
      fc.asyncProperty(arrivalsArbitrary({ minLength: 200, maxLength: 600 }), async (arrivals) => {
        const clock = new FakeClock();
        const { store, close } = await open(clock);
        try {
          for (const algorithm of everyAlgorithm()) {
            const limiter = createAsyncRateLimiter(algorithm, store);
            const states = new Map<string, unknown>();
            for (const arrival of arrivals) {
              clock.set(arrival.at);
              const expected = algorithm.step(states.get(arrival.key), arrival.at, arrival.cost);
              states.set(arrival.key, expected.state);
              assert.deepEqual(
                await limiter.take(arrival.key, arrival.cost),
                expected.decision,
                algorithm.name,
              );
            }
          }
        } finally {
          await close();
        }
      }),
      { seed: SEED, numRuns: 15 },
    );
  });

  test(`${engine} store - a step is atomic per key: concurrent takes never over-admit`, async () => {
    const clock = new FakeClock();
    const { store, close } = await open(clock);
    try {
      for (const algorithm of everyAlgorithm()) {
        const limiter = createAsyncRateLimiter(algorithm, store);
        const decisions = await Promise.all(Array.from({ length: 50 }, () => limiter.take('shared')));
        const admitted = decisions.filter((decision) => decision.allowed).length;
        assert.equal(admitted, algorithm.step(undefined, clock.now(), 0).decision.limit, algorithm.name);
      }
    } finally {
      await close();
    }
  });

  test(`${engine} store - reset restores a key's full quota and leaves other keys alone`, async () => {
    const clock = new FakeClock();
    const { store, close } = await open(clock);
    try {
      const limiter = createAsyncRateLimiter(new FixedWindow({ limit: 2, windowMs: 60_000 }), store);
      for (const key of ['a', 'b']) {
        await limiter.take(key, 2);
        assert.equal((await limiter.take(key)).allowed, false);
      }
      await limiter.reset('a');
      assert.equal((await limiter.take('a', 0)).remaining, 2);
      assert.equal((await limiter.take('b', 0)).remaining, 0);
    } finally {
      await close();
    }
  });

  test(`${engine} store - limiters with different policies sharing a store keep separate state`, async () => {
    const clock = new FakeClock();
    const { store, close } = await open(clock);
    try {
      const perMinute = createAsyncRateLimiter(
        new FixedWindow({ limit: 1, windowMs: 60_000, policy: 'm' }),
        store,
      );
      const perHour = createAsyncRateLimiter(
        new FixedWindow({ limit: 3, windowMs: 3_600_000, policy: 'h' }),
        store,
      );
      assert.equal((await perMinute.take('k')).allowed, true);
      assert.equal((await perMinute.take('k')).allowed, false);
      assert.equal((await perHour.take('k')).remaining, 2);
    } finally {
      await close();
    }
  });

  test(`${engine} store - bad costs are refused with RangeError before reaching the store`, async () => {
    const clock = new FakeClock();
    const { store, close } = await open(clock);
    try {
      const limiter = createAsyncRateLimiter(new TokenBucket({ capacity: 1, refillPerSecond: 1 }), store);
      await assert.rejects(limiter.take('k', -1), RangeError);
      await assert.rejects(limiter.take('k', Number.NaN), RangeError);
    } finally {
      await close();
    }
  });
}
