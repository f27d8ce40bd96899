import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { ConcurrencyLimiter, type ConcurrencyPermit } from '../../../src/resilience/ratelimit/index.ts';
import { SEED } from './support.ts';

test('concurrency limiter - at most maxConcurrent permits per key, keys independent', () => {
  const limiter = new ConcurrencyLimiter({ maxConcurrent: 2 });
  const first = limiter.acquire('a');
  const second = limiter.acquire('a');
  const third = limiter.acquire('a');
  assert.deepEqual(
    [first.decision.allowed, second.decision.allowed, third.decision.allowed],
    [true, true, false],
  );
  assert.equal(second.decision.remaining, 0);
  assert.equal(third.decision.retryAfterMs, 1000);
  assert.equal(limiter.acquire('b').decision.allowed, true);
  first.release();
  assert.equal(limiter.acquire('a').decision.allowed, true);
});

test('concurrency limiter - release is idempotent and a refused permit releases nothing', () => {
  const limiter = new ConcurrencyLimiter({ maxConcurrent: 1 });
  const held = limiter.acquire('a');
  const refused = limiter.acquire('a');
  refused.release();
  assert.equal(limiter.inFlight('a'), 1);
  held.release();
  held.release();
  assert.equal(limiter.inFlight('a'), 0);
  assert.equal(limiter.size, 0, 'a key with nothing in flight is forgotten');
  const again = limiter.acquire('a');
  assert.equal(again.decision.allowed, true);
  held.release(); // a stale double release must not free the new holder's slot
  assert.equal(limiter.acquire('a').decision.allowed, false);
});

test('concurrency limiter - per-call limits for tiers', () => {
  const limiter = new ConcurrencyLimiter({ maxConcurrent: 1 });
  assert.equal(limiter.acquire('pro', 3).decision.allowed, true);
  assert.equal(limiter.acquire('pro', 3).decision.allowed, true);
  assert.equal(limiter.acquire('pro', 3).decision.remaining, 0);
  assert.throws(() => limiter.acquire('pro', 0), RangeError);
});

test('concurrency limiter - random acquire/release interleavings never exceed the limit', () => {
  fc.assert(
    fc.property(
      fc.array(fc.record({ key: fc.constantFrom('a', 'b'), release: fc.boolean(), pick: fc.nat() }), {
        minLength: 100,
        maxLength: 2000,
      }),
      (operations) => {
        const limiter = new ConcurrencyLimiter({ maxConcurrent: 3 });
        const held: Record<string, ConcurrencyPermit[]> = { a: [], b: [] };
        for (const operation of operations) {
          const permits = held[operation.key]!;
          if (operation.release && permits.length > 0) {
            const [permit] = permits.splice(operation.pick % permits.length, 1);
            permit!.release();
            permit!.release();
          } else {
            const permit = limiter.acquire(operation.key);
            assert.equal(permit.decision.allowed, permits.length < 3);
            if (permit.decision.allowed) permits.push(permit);
          }
          assert.equal(limiter.inFlight(operation.key), permits.length);
        }
      },
    ),
    { seed: SEED, numRuns: 100 },
  );
});

test('concurrency limiter - rejects bad options with RangeError', () => {
  assert.throws(() => new ConcurrencyLimiter({ maxConcurrent: 0 }), RangeError);
  assert.throws(() => new ConcurrencyLimiter({ maxConcurrent: 1, retryAfterMs: -1 }), RangeError);
});
