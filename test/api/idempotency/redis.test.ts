/**
 * The Redis idempotency store against a real redis-server: the shared contract (each location a
 * key prefix, each store its own connection, so "concurrent begins start exactly one" runs over
 * three connections), plus what only Redis shows: TTLs that reclaim memory, the budget's
 * accounting staying exact through expiry and re-claims, and failures as PF_ERR_REDIS_UNAVAILABLE.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { RedisIdempotencyStore } from '../../../src/api/idempotency/index.ts';
import { isPixelfleetError } from '../../../src/errors/index.ts';
import { openRedisConnection } from '../../../src/resilience/ratelimit/index.ts';
import { type RedisServer, startRedisServer } from '../../support/redis-server.ts';
import { runIdempotencyContract } from './contract.ts';

let server: RedisServer;
const run = `${process.pid}-${Date.now().toString(36)}`;

before(async () => {
  server = await startRedisServer();
});
after(() => server?.stop());

async function openStore(
  prefix: string,
  options: Partial<ConstructorParameters<typeof RedisIdempotencyStore>[0]> = {},
) {
  const connection = openRedisConnection({ url: server.url });
  await connection.ready;
  return new RedisIdempotencyStore({
    redis: connection.commander,
    release: () => connection.close(),
    prefix,
    sweepIntervalMs: 0,
    ...options,
  });
}

runIdempotencyContract('redis', (location, options) => openStore(`test-${run}:${location}`, options));

const t0 = 1_750_000_000_000;
const response = (bytes: number) => ({
  status: 200,
  headers: { 'content-type': 'image/png' },
  body: Buffer.alloc(bytes, 7),
});

test('idempotency redis - entries carry TTLs so unswept keys still leave Redis', async () => {
  const store = await openStore(`test-${run}:ttl`, { retentionMs: 3_600_000, expirySlackMs: 1000 });
  try {
    const connection = openRedisConnection({ url: server.url });
    await connection.ready;
    try {
      const begun = await store.begin('acct', 'k', 'fp', t0, 5_000);
      assert.equal(begun.kind, 'started');
      const key = store.entryKey('acct', 'k');
      const leaseTtl = Number(await connection.commander.sendCommand(['PTTL', key]));
      assert.ok(leaseTtl > 5_000 && leaseTtl <= 6_000, `lease pttl ${leaseTtl}`);
      if (begun.kind !== 'started') return;
      assert.equal(await store.complete('acct', 'k', begun.token, response(10)), true);
      const retentionTtl = Number(await connection.commander.sendCommand(['PTTL', key]));
      assert.ok(retentionTtl > 3_600_000 && retentionTtl <= 3_601_000, `retention pttl ${retentionTtl}`);
    } finally {
      await connection.close();
    }
  } finally {
    await store.close();
  }
});

test('idempotency redis - the byte budget accounting stays exact through expiry, re-claims and sweeps', async () => {
  const store = await openStore(`test-${run}:budget`, { retentionMs: 1000, maxStoredBytes: 1_000_000 });
  try {
    for (let index = 0; index < 5; index += 1) {
      const begun = await store.begin('acct', `k${index}`, 'fp', t0);
      if (begun.kind === 'started') await store.complete('acct', `k${index}`, begun.token, response(1000));
    }
    const perEntry = (await store.storedBytes()) / 5;
    assert.ok(perEntry > 1000, `per entry ${perEntry}`);
    // k0 is past its retention: claiming it again forgets its bytes.
    assert.equal((await store.begin('acct', 'k0', 'fp', t0 + 1000)).kind, 'started');
    assert.equal(await store.storedBytes(), perEntry * 4);
    // k1..k4 are past their retention; k0 is a fresh marker now.
    assert.deepEqual(await store.sweep(t0 + 1000), { expired: 4, evicted: 0 });
    assert.equal(await store.storedBytes(), 0);
  } finally {
    await store.close();
  }
});

test('idempotency redis - an unreachable Redis fails with PF_ERR_REDIS_UNAVAILABLE (503)', async () => {
  const connection = openRedisConnection({ url: 'redis://127.0.0.1:1', connectTimeoutMs: 200 });
  const store = new RedisIdempotencyStore({
    redis: connection.commander,
    release: () => connection.close(),
    sweepIntervalMs: 0,
  });
  try {
    await assert.rejects(
      store.begin('acct', 'k', 'fp', t0),
      (error) => isPixelfleetError(error, 'PF_ERR_REDIS_UNAVAILABLE') && error.status === 503,
    );
  } finally {
    await store.close();
  }
  await assert.rejects(store.begin('acct', 'k', 'fp', t0), (error) =>
    isPixelfleetError(error, 'PF_ERR_REDIS_UNAVAILABLE'),
  );
});
