import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  createRateLimiter,
  FixedWindow,
  MemoryLimiterStore,
  SlidingWindowLog,
  TokenBucket,
} from '../../../src/resilience/ratelimit/index.ts';
import { limiterStoreContract } from './store-contract.ts';
import { FakeClock } from './support.ts';

limiterStoreContract('memory', async (clock) => ({
  store: new MemoryLimiterStore({ clock }),
  close: async () => {},
}));

test('memory store - idle keys are swept once their quota has recovered', () => {
  const clock = new FakeClock();
  const store = new MemoryLimiterStore({ clock });
  const limiter = createRateLimiter(new TokenBucket({ capacity: 10, refillPerSecond: 10 }), { store });
  for (let index = 0; index < 1000; index += 1) limiter.take(`idle-${index}`);
  assert.equal(store.size, 1000);
  // 100 ms later every bucket is full again; new traffic sweeps the old keys as it goes.
  clock.advance(100);
  for (let index = 0; index < 1000; index += 1) limiter.take(`busy-${index}`);
  assert.ok(store.size <= 1000, `size ${store.size}`);
  clock.advance(100);
  const held = store.size;
  assert.equal(store.sweep(), held);
  assert.equal(store.size, 0);
  assert.equal(store.evictions, 0);
});

test('memory store - a flood of distinct keys stays within maxKeys (LRU), counting live evictions', () => {
  const clock = new FakeClock();
  const store = new MemoryLimiterStore({ clock, maxKeys: 500 });
  const limiter = createRateLimiter(new SlidingWindowLog({ limit: 5, windowMs: 60_000 }), { store });
  for (let index = 0; index < 20_000; index += 1) {
    clock.advance(1);
    limiter.take(`spray-${index}`);
    assert.ok(store.size <= 500);
  }
  assert.equal(store.evictions, 20_000 - 500);
});

test('memory store - the least recently used key is evicted first, not the busiest', () => {
  const clock = new FakeClock();
  const store = new MemoryLimiterStore({ clock, maxKeys: 3 });
  const limiter = createRateLimiter(new FixedWindow({ limit: 2, windowMs: 60_000 }), { store });
  limiter.take('busy', 2);
  limiter.take('b');
  limiter.take('c');
  limiter.take('busy', 0); // touch: now the most recently used
  limiter.take('d'); // evicts 'b'
  assert.equal(limiter.take('busy').allowed, false, 'busy kept its exhausted quota');
  assert.equal(limiter.take('b', 0).remaining, 2, 'b was forgotten');
});

test('memory store - spraying distinct keys cannot evict a key in use to reset its quota', () => {
  const clock = new FakeClock();
  const store = new MemoryLimiterStore({ clock, maxKeys: 400 });
  const limiter = createRateLimiter(new FixedWindow({ limit: 5, windowMs: 3_600_000 }), { store });
  limiter.take('abuser', 5);
  for (let index = 0; index < 20_000; index += 1) {
    limiter.take(`spray-${index}`);
    // Used at least once per maxKeys / 4 insertions: the abuser keeps its exhausted quota.
    if (index % 100 === 0) assert.equal(limiter.take('abuser').allowed, false, `after ${index} sprayed keys`);
  }
  assert.ok(store.size <= 400);
});

test('memory store - rejects bad options with RangeError', () => {
  assert.throws(() => new MemoryLimiterStore({ maxKeys: 0 }), RangeError);
  assert.throws(() => new MemoryLimiterStore({ sweepPerStep: 1.5 }), RangeError);
});
