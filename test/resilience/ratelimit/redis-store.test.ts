/**
 * The Redis limiter store against a real redis-server: the shared store contract (driven by a
 * test clock passed to the scripts), a property test comparing the Lua steps with the pure steps
 * on random sequences (fractional costs and parameters included), the key layout and expiry on
 * Redis's own clock, NOSCRIPT recovery, and the refusal of algorithms it cannot run.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import fc from 'fast-check';
import { isPixelfleetError } from '../../../src/errors/index.ts';
import {
  type Clock,
  createAsyncRateLimiter,
  FixedWindow,
  LeakyBucket,
  type LimiterAlgorithm,
  ProgressiveLockoutAlgorithm,
  SlidingWindowCounter,
  SlidingWindowLog,
  TokenBucket,
} from '../../../src/resilience/ratelimit/index.ts';
import {
  openRedisConnection,
  type RedisConnection,
  RedisLimiterStore,
} from '../../../src/resilience/ratelimit/redis/index.ts';
import { type RedisServer, startRedisServer } from '../../support/redis-server.ts';
import { limiterStoreContract } from './store-contract.ts';
import { arrivalsArbitrary, FakeClock, SEED } from './support.ts';

let server: RedisServer;
let connection: RedisConnection;
let prefixes = 0;
const freshPrefix = () => `test-${process.pid}-${++prefixes}`;

before(async () => {
  server = await startRedisServer();
  connection = openRedisConnection({ url: server.url });
  await connection.ready;
});
after(async () => {
  await connection?.close();
  await server?.stop();
});

limiterStoreContract('redis', async (clock: Clock) => ({
  store: new RedisLimiterStore({ redis: connection.commander, prefix: freshPrefix(), clock }),
  close: async () => {},
}));

test('redis store - Lua steps equal the pure steps for random parameters, costs and arrivals', async () => {
  const parameters = fc.record({
    capacity: fc.integer({ min: 1, max: 12 }),
    rate: fc.double({ min: 0.3, max: 40, noNaN: true, noDefaultInfinity: true }),
    windowMs: fc.integer({ min: 50, max: 3000 }),
  });
  const cost = fc.oneof(
    fc.constant(1),
    fc.integer({ min: 0, max: 4 }),
    fc.double({ min: 0, max: 3, noNaN: true }),
  );
  await fc.assert(
    fc.asyncProperty(
      parameters,
      arrivalsArbitrary({ minLength: 80, maxLength: 200 }),
      fc.array(cost, { minLength: 200, maxLength: 200 }),
      async (options, arrivals, costs) => {
        const clock = new FakeClock();
        const store = new RedisLimiterStore({ redis: connection.commander, prefix: freshPrefix(), clock });
        const algorithms: LimiterAlgorithm<unknown>[] = [
          new TokenBucket({ capacity: options.capacity, refillPerSecond: options.rate }),
          new LeakyBucket({ capacity: options.capacity, drainPerSecond: options.rate }),
          new FixedWindow({ limit: options.capacity, windowMs: options.windowMs }),
          new SlidingWindowCounter({ limit: options.capacity, windowMs: options.windowMs }),
          new SlidingWindowLog({ limit: options.capacity, windowMs: options.windowMs }),
        ] as LimiterAlgorithm<unknown>[];
        for (const algorithm of algorithms) {
          // The log sums its members afresh where the pure step keeps a running total: equal for
          // whole costs, but fractional ones may differ in the last bit, so the log gets whole costs.
          const whole = algorithm.name === 'sliding-window-log';
          const states = new Map<string, unknown>();
          for (const [index, arrival] of arrivals.entries()) {
            const arrivalCost = whole ? Math.ceil(costs[index]!) : costs[index]!;
            clock.set(arrival.at);
            const expected = algorithm.step(states.get(arrival.key), arrival.at, arrivalCost);
            states.set(arrival.key, expected.state);
            assert.deepEqual(
              await store.apply(arrival.key, algorithm, arrivalCost),
              expected.decision,
              `${algorithm.name} step ${index}`,
            );
          }
        }
      },
    ),
    { seed: SEED, numRuns: 12 },
  );
});

test('redis store - the sliding window log keeps one sorted-set member per admission, with same-millisecond admissions apart', async () => {
  const clock = new FakeClock();
  const prefix = freshPrefix();
  const store = new RedisLimiterStore({ redis: connection.commander, prefix, clock });
  const limiter = createAsyncRateLimiter(
    new SlidingWindowLog({ limit: 5, windowMs: 1000, policy: 'log' }),
    store,
  );
  for (let index = 0; index < 3; index += 1) assert.equal((await limiter.take('k')).allowed, true);
  clock.advance(10);
  assert.equal((await limiter.take('k', 2)).allowed, true);
  assert.equal((await limiter.take('k')).allowed, false);
  const members = (await connection.commander.sendCommand([
    'ZRANGE',
    `${prefix}:log:k`,
    '0',
    '-1',
  ])) as string[];
  assert.equal(members.length, 4);
  assert.equal(new Set(members).size, 4);
});

test('redis store - on the Redis clock, keys live exactly until the quota has recovered (PEXPIREAT)', async () => {
  const prefix = freshPrefix();
  const store = new RedisLimiterStore({ redis: connection.commander, prefix });
  const limiter = createAsyncRateLimiter(
    new TokenBucket({ capacity: 10, refillPerSecond: 5, policy: 'tb' }),
    store,
  );
  const decision = await limiter.take('client-1', 4);
  assert.equal(decision.allowed, true);
  assert.equal(decision.remaining, 6);
  const key = `${prefix}:tb:client-1`;
  const ttl = Number(await connection.commander.sendCommand(['PTTL', key]));
  // 4 tokens at 5 per second refill in 800 ms.
  assert.ok(ttl > 0 && ttl <= 800, `pttl ${ttl}`);
  // A step that leaves the quota full holds nothing.
  const probe = createAsyncRateLimiter(new FixedWindow({ limit: 3, windowMs: 60_000, policy: 'fw' }), store);
  await probe.take('idle', 0);
  assert.equal(Number(await connection.commander.sendCommand(['EXISTS', `${prefix}:fw:idle`])), 0);
  await limiter.reset('client-1');
  assert.equal(Number(await connection.commander.sendCommand(['EXISTS', key])), 0);
});

test('redis store - scripts are reloaded after Redis forgets them (NOSCRIPT)', async () => {
  const store = new RedisLimiterStore({ redis: connection.commander, prefix: freshPrefix() });
  const limiter = createAsyncRateLimiter(new SlidingWindowCounter({ limit: 3, windowMs: 60_000 }), store);
  assert.equal((await limiter.take('k')).remaining, 2);
  await connection.commander.sendCommand(['SCRIPT', 'FLUSH']);
  const results = await Promise.all([limiter.take('k'), limiter.take('k')]);
  assert.deepEqual(results.map((decision) => decision.remaining).sort(), [0, 1]);
});

test('redis store - an algorithm without a script is refused with PF_ERR_CONFIG naming it', async () => {
  const store = new RedisLimiterStore({ redis: connection.commander, prefix: freshPrefix() });
  await assert.rejects(
    store.apply('client', new ProgressiveLockoutAlgorithm(), 1),
    (error) => isPixelfleetError(error, 'PF_ERR_CONFIG') && /progressive-lockout/.test(error.message),
  );
  assert.throws(() => new RedisLimiterStore({ redis: connection.commander, prefix: '' }), RangeError);
});

test('redis store - decisions issued in the same tick share one socket write (automatic pipelining)', async () => {
  const store = new RedisLimiterStore({ redis: connection.commander, prefix: freshPrefix() });
  const limiter = createAsyncRateLimiter(new TokenBucket({ capacity: 1000, refillPerSecond: 1 }), store);
  await limiter.take('warm-up');
  const readsProcessed = async () => {
    const info = String(await connection.commander.sendCommand(['INFO', 'stats']));
    return Number(/total_reads_processed:(\d+)/.exec(info)?.[1]);
  };
  const before = await readsProcessed();
  const decisions = await Promise.all(
    Array.from({ length: 200 }, (_, index) => limiter.take(`key-${index % 7}`)),
  );
  const reads = (await readsProcessed()) - before - 1;
  assert.equal(decisions.length, 200);
  // One write of 200 EVALSHAs arrives in a few reads (socket buffer sizes), not 200.
  assert.ok(reads <= 10, `${reads} server reads for 200 decisions`);
});
