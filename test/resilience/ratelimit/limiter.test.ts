import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  createAsyncRateLimiter,
  createRateLimiter,
  FixedWindow,
  MemoryLimiterStore,
  TokenBucket,
} from '../../../src/resilience/ratelimit/index.ts';
import { FakeClock } from './support.ts';

test('rate limiter - cost defaults to 1, cost 0 only reports, bad costs throw RangeError', () => {
  const clock = new FakeClock();
  const limiter = createRateLimiter(new FixedWindow({ limit: 3, windowMs: 1000 }), { clock });
  assert.equal(limiter.take('k').remaining, 2);
  assert.equal(limiter.take('k', 0).remaining, 2);
  assert.equal(limiter.take('k', 0).allowed, true);
  assert.throws(() => limiter.take('k', -1), RangeError);
  assert.throws(() => limiter.take('k', Number.POSITIVE_INFINITY), RangeError);
});

test('rate limiter - the sync and async faces over one memory store see the same state', async () => {
  const clock = new FakeClock();
  const store = new MemoryLimiterStore({ clock });
  const algorithm = new TokenBucket({ capacity: 3, refillPerSecond: 1 });
  const local = createRateLimiter(algorithm, { store });
  const shared = createAsyncRateLimiter(algorithm, store);
  local.take('k', 2);
  assert.equal((await shared.take('k')).remaining, 0);
  assert.equal(local.take('k').allowed, false);
  local.reset('k');
  assert.equal((await shared.take('k', 0)).remaining, 3);
});

test('rate limiter - the default clock is the wall clock', () => {
  const limiter = createRateLimiter(new FixedWindow({ limit: 1, windowMs: 3_600_000 }));
  assert.equal(limiter.take('k').allowed, true);
  const refused = limiter.take('k');
  assert.equal(refused.allowed, false);
  assert.ok(refused.retryAfterMs > 0 && refused.retryAfterMs <= 3_600_000);
});
