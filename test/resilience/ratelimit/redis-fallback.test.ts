/**
 * The fallback path of cluster-wide limits, against a real redis-server that the test pauses
 * (SIGSTOP), kills (SIGKILL) and restarts under a steady stream of decisions: decisions keep
 * coming from this server's local share, the metrics say so, and Redis decides again once it is
 * back and the breaker has closed. Also: local shares divide the quota by the server count,
 * which may change at any time (discovery).
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Registry } from 'prom-client';
import { isPixelfleetError } from '../../../src/errors/index.ts';
import {
  createAsyncRateLimiter,
  FallbackLimiterStore,
  FixedWindow,
  openRedisAdapters,
  openRedisConnection,
  ProgressiveLockoutAlgorithm,
  RedisLimiterStore,
  TokenBucket,
} from '../../../src/resilience/ratelimit/index.ts';
import { startRedisServer } from '../../support/redis-server.ts';
import { sleep, waitFor } from '../../support/wait-for.ts';

async function metricValue(
  registry: Registry,
  name: string,
  labels: Record<string, string> = {},
): Promise<number> {
  const metric = await registry.getSingleMetric(name)?.get();
  const sample = metric?.values.find((value) =>
    Object.entries(labels).every(([label, expected]) => value.labels[label] === expected),
  );
  return sample?.value ?? 0;
}

test('fallback - pause, kill and restart Redis under steady decisions: local shares answer, then Redis again', async (context) => {
  const server = await startRedisServer({ owner: context });
  const registry = new Registry();
  const adapters = await openRedisAdapters({
    url: server.url,
    prefix: `fault-${process.pid}`,
    shareCount: () => 3,
    limiterTimeoutMs: 150,
    breaker: { minimumRequests: 5, windowMs: 2000, buckets: 4, openMs: 400 },
    registry,
    idempotency: { sweepIntervalMs: 0 },
  });
  context.after(() => adapters.close());
  const store = adapters.limiterStore;
  const limiter = createAsyncRateLimiter(
    new TokenBucket({ capacity: 600, refillPerSecond: 300, policy: 'steady' }),
    store,
  );

  interface Sample {
    at: number;
    tookMs: number;
    backend: 'redis' | 'local';
    remaining: number;
  }
  const samples: Sample[] = [];
  let running = true;
  // Steady load: one decision every ~10 ms, as an api server under light traffic.
  const load = (async () => {
    while (running) {
      const started = performance.now();
      const decision = await limiter.take('tenant-a');
      samples.push({
        at: started,
        tookMs: performance.now() - started,
        backend: store.lastBackend,
        remaining: decision.remaining,
      });
      await sleep(10);
    }
  })();
  const since = (at: number) => samples.filter((sample) => sample.at >= at);

  try {
    await waitFor(() => samples.length >= 30, { message: 'decisions before the fault' });
    assert.ok(
      samples.every((sample) => sample.backend === 'redis'),
      'Redis decides while healthy',
    );
    assert.equal(await metricValue(registry, 'pixelfleet_ratelimit_fallback_active'), 0);

    // Pause: the connection stays open and commands hang, so only the timeout and breaker help.
    const paused = performance.now();
    await server.kill('SIGSTOP');
    await waitFor(() => store.breakerState === 'open', { timeoutMs: 15_000, message: 'breaker to open' });
    await waitFor(() => since(paused).filter((sample) => sample.backend === 'local').length >= 20, {
      timeoutMs: 15_000,
      message: 'local decisions while Redis is paused',
    });
    const duringPause = since(paused);
    const slowest = Math.max(...duringPause.map((sample) => sample.tookMs));
    // Each decision waits at most about one timeout (150 ms); generous for a loaded machine.
    assert.ok(slowest < 1500, `slowest decision during the pause took ${slowest.toFixed(0)} ms`);
    assert.equal(await metricValue(registry, 'pixelfleet_ratelimit_fallback_active'), 1);
    assert.ok(
      (await metricValue(registry, 'pixelfleet_ratelimit_decisions_total', { backend: 'local' })) >= 20,
    );
    assert.ok(
      (await metricValue(registry, 'pixelfleet_ratelimit_redis_failures_total', { reason: 'timeout' })) >= 1,
    );
    // The local share of a 600-token bucket among 3 servers holds at most 200.
    const local = duringPause.filter((sample) => sample.backend === 'local');
    assert.ok(
      local.every((sample) => sample.remaining < 200),
      'local decisions come from a one-third share',
    );

    // Crash: refused connections fail at once.
    const killed = performance.now();
    await server.kill('SIGKILL');
    await waitFor(() => since(killed).length >= 20, {
      timeoutMs: 15_000,
      message: 'decisions after the crash',
    });
    assert.ok(since(killed).every((sample) => sample.backend === 'local'));
    const stateValue = await metricValue(registry, 'pixelfleet_circuit_breaker_state', {
      dependency: 'redis',
    });
    assert.ok(stateValue >= 1, `breaker gauge ${stateValue}`);

    // Restart (empty, same port): the half-open probe succeeds, Redis decides again.
    const restarted = performance.now();
    await server.restart();
    await waitFor(() => store.breakerState === 'closed' && store.lastBackend === 'redis', {
      timeoutMs: 20_000,
      message: 'Redis to decide again after the restart',
    });
    const recoveredAfterMs = performance.now() - restarted;
    await waitFor(() => since(restarted).filter((sample) => sample.backend === 'redis').length >= 10, {
      timeoutMs: 10_000,
      message: 'steady Redis decisions after recovery',
    });
    assert.equal(await metricValue(registry, 'pixelfleet_ratelimit_fallback_active'), 0);
    assert.equal(await metricValue(registry, 'pixelfleet_circuit_breaker_state', { dependency: 'redis' }), 0);
    const latest = samples.at(-1)!;
    assert.equal(latest.backend, 'redis');
    // Redis restarted empty, so the full cluster-wide bucket applies again, not the local share.
    assert.ok(latest.remaining >= 200, `remaining ${latest.remaining} after recovery`);
    context.diagnostic(
      `decisions ${samples.length}; slowest during pause ${slowest.toFixed(0)} ms; back on Redis ${recoveredAfterMs.toFixed(0)} ms after restart`,
    );
  } finally {
    running = false;
    await load;
  }
});

test('fallback - local shares divide each quota by the server count, which may change', async (context) => {
  // Nothing listens on port 1: every call fails at once and is answered locally.
  const connection = openRedisConnection({ url: 'redis://127.0.0.1:1', connectTimeoutMs: 200 });
  context.after(() => connection.close());
  let servers = 3;
  const store = new FallbackLimiterStore({
    shared: new RedisLimiterStore({ redis: connection.commander }),
    shareCount: () => servers,
    breaker: { minimumRequests: 1000 },
  });
  const bucket = createAsyncRateLimiter(new TokenBucket({ capacity: 10, refillPerSecond: 0.001 }), store);
  const admitted = async (limiter: typeof bucket, key: string, attempts: number) => {
    let count = 0;
    for (let index = 0; index < attempts; index += 1) if ((await limiter.take(key)).allowed) count += 1;
    return count;
  };
  assert.equal(await admitted(bucket, 'a', 20), 4, 'ceil(10 / 3)');
  servers = 2;
  assert.equal(await admitted(bucket, 'b', 20), 5, '10 / 2');
  servers = 0; // discovery knows nobody yet: count this server alone
  assert.equal(await admitted(bucket, 'c', 20), 10);
  const window = createAsyncRateLimiter(new FixedWindow({ limit: 7, windowMs: 60_000 }), store);
  servers = 3;
  assert.equal(await admitted(window, 'a', 20), 3);
  assert.equal(store.lastBackend, 'local');
  assert.equal(store.breakerState, 'closed', 'below minimumRequests the breaker stays closed');
  // An algorithm Redis cannot run is a configuration error, even while Redis is down.
  await assert.rejects(store.apply('k', new ProgressiveLockoutAlgorithm(), 1), (error) =>
    isPixelfleetError(error, 'PF_ERR_CONFIG'),
  );
  assert.throws(() => new FallbackLimiterStore({ shared: store, shareCount: 0 }), RangeError);
  assert.throws(() => new FallbackLimiterStore({ shared: store, shareCount: 2, timeoutMs: 0 }), RangeError);
});

test('fallback - openRedisAdapters starts without Redis: limits decide locally, idempotency answers 503', async () => {
  const errors: unknown[] = [];
  const adapters = await openRedisAdapters({
    url: 'redis://pixelfleet:secret@127.0.0.1:1',
    shareCount: 2,
    readyTimeoutMs: 300,
    connection: { connectTimeoutMs: 200 },
    idempotency: { sweepIntervalMs: 0 },
    onError: (error) => errors.push(error),
  });
  try {
    const notice = errors.find((error) => error instanceof Error && /did not answer/.test(error.message));
    assert.ok(notice instanceof Error, 'start-up says Redis was not reachable');
    assert.doesNotMatch(notice.message, /secret/, 'the password is not logged');
    const limiter = createAsyncRateLimiter(
      new FixedWindow({ limit: 4, windowMs: 60_000 }),
      adapters.limiterStore,
    );
    const decisions = await Promise.all(Array.from({ length: 4 }, () => limiter.take('tenant')));
    assert.deepEqual(
      decisions.map((decision) => decision.allowed),
      [true, true, false, false],
      'half of 4 for each of 2 servers',
    );
    assert.equal(adapters.limiterStore.lastBackend, 'local');
    await assert.rejects(adapters.idempotencyStore.begin('acct', 'key', 'fp', Date.now()), (error) =>
      isPixelfleetError(error, 'PF_ERR_REDIS_UNAVAILABLE'),
    );
  } finally {
    await adapters.close();
    await adapters.close();
  }
});
