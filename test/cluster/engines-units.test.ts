/**
 * The pure parts of the existing-engine wiring: reading --queue, the start-up checks, the change
 * feed that starts over on a resync, the breaker in front of identity's data-plane reads, and
 * TenancyGuard deciding its buckets on a shared store (a MemoryLimiterStore standing for Redis:
 * the same LimiterStore contract).
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { TenancyGuard } from '../../src/api/tenancy.ts';
import { checkEngineSettings } from '../../src/cluster/engines/check.ts';
import { natsReplicasOf, queueEngineOf } from '../../src/cluster/engines/queue.ts';
import { shareCountOf } from '../../src/cluster/engines/redis.ts';
import { GuardedCredentialSource } from '../../src/cluster/identity/guarded-source.ts';
import { ResyncingChangeFeed } from '../../src/cluster/identity/resyncing-feed.ts';
import { isPixelfleetError, PixelfleetError } from '../../src/errors/index.ts';
import { type CredentialSource, initialTiers, type Principal, type Tier } from '../../src/identity/index.ts';
import { MemoryLimiterStore } from '../../src/resilience/ratelimit/index.ts';

test('cluster engines - --queue reads raft or a list of NATS servers', () => {
  assert.deepEqual(queueEngineOf('raft'), { kind: 'raft' });
  assert.deepEqual(queueEngineOf(''), { kind: 'raft' });
  assert.deepEqual(queueEngineOf('nats://127.0.0.1:4222'), {
    kind: 'nats',
    servers: ['nats://127.0.0.1:4222'],
  });
  assert.deepEqual(queueEngineOf('nats://a:1,b:2, nats://c:3'), {
    kind: 'nats',
    servers: ['nats://a:1', 'nats://b:2', 'nats://c:3'],
  });
  for (const bad of ['kafka://x:1', 'nats://', 'nats://host-without-port', 'nats://a:1,:']) {
    assert.throws(
      () => queueEngineOf(bad),
      (error: unknown) => isPixelfleetError(error, 'PF_ERR_CONFIG') && error.extensions?.key === '--queue',
      bad,
    );
  }
  assert.equal(natsReplicasOf(0, ['a']), 1);
  assert.equal(natsReplicasOf(0, ['a', 'b', 'c']), 3);
  assert.equal(natsReplicasOf(2, ['a', 'b', 'c']), 2);
});

test('cluster engines - start-up checks name the flag', () => {
  const fine = { queue: 'raft', redis: 'redis://127.0.0.1:6379', postgres: 'postgres://u:p@h:5432/d' };
  checkEngineSettings(fine, ['api', 'queue']);
  const keyOf = (settings: typeof fine, roles: Parameters<typeof checkEngineSettings>[1] = []) => {
    try {
      checkEngineSettings(settings, roles);
    } catch (error) {
      return (error as PixelfleetError).extensions?.key;
    }
    return undefined;
  };
  assert.equal(keyOf({ ...fine, queue: 'nats://h:1' }, ['queue']), '--roles');
  assert.equal(keyOf({ ...fine, redis: 'http://h:1' }), '--redis');
  assert.equal(keyOf({ ...fine, postgres: 'mysql://h/d' }), '--postgres');
  assert.equal(keyOf({ ...fine, redis: '', postgres: '' }), undefined);
});

test('cluster engines - limit shares: the configured count, else the live api servers, at least 1', () => {
  let alive = 0;
  assert.equal(shareCountOf(0, () => alive)(), 1);
  alive = 3;
  assert.equal(shareCountOf(0, () => alive)(), 3);
  assert.equal(shareCountOf(2, () => alive)(), 2);
});

test('cluster engines - a resync gives every reader a gap, and wakes a waiting one', async () => {
  const feed = new ResyncingChangeFeed();
  const event = { type: 'tier.changed', at: 1, tier: 'free' } as const;
  const start = feed.read(undefined);
  assert.equal(feed.append(event), 1);
  const page = feed.read(start.next, start.incarnation);
  assert.deepEqual(
    page.events.map((numbered) => numbered.seq),
    [1],
  );
  assert.equal(page.gap, false);

  // A reader waiting at the tail is woken by the resync and told to distrust its cache.
  const waiting = feed.wait(page.next, page.incarnation, 10_000);
  await new Promise((resolve) => setImmediate(resolve));
  assert.equal(feed.waiting, 1);
  const startedAt = performance.now();
  feed.resync();
  const woken = await waiting;
  assert.ok(performance.now() - startedAt < 1_000);
  assert.equal(woken.gap, true);
  assert.notEqual(woken.incarnation, page.incarnation);
  assert.equal(feed.resyncs, 1);

  // From the new cursor it follows the new ring without further gaps.
  feed.append(event);
  const after = feed.read(woken.next, woken.incarnation);
  assert.equal(after.gap, false);
  assert.equal(after.events.length, 1);
  // A reader that had not polled since the resync gets its gap too.
  assert.equal(feed.read(page.next, page.incarnation).gap, true);
});

test('cluster engines - identity reads fail fast once the store keeps failing, then recover', async () => {
  let now = 0;
  let failing = true;
  let calls = 0;
  const source: CredentialSource = {
    async findCredential() {
      calls++;
      if (failing) throw new PixelfleetError('PF_ERR_MANAGEMENT_UNAVAILABLE', 'down');
      return undefined;
    },
    async getTier(name) {
      calls++;
      if (name === 'broken') throw new RangeError('a bug, not an outage');
      return undefined;
    },
  };
  const guarded = new GuardedCredentialSource({ source, breaker: { now: () => now, openMs: 5_000 } });
  for (let index = 0; index < 5; index++) {
    await assert.rejects(guarded.findCredential('k'), (error) =>
      isPixelfleetError(error, 'PF_ERR_MANAGEMENT_UNAVAILABLE'),
    );
  }
  assert.equal(guarded.breaker.state, 'open');
  await assert.rejects(guarded.findCredential('k'), /circuit breaker is open/);
  assert.equal(calls, 5, 'an open breaker does not call the store');
  now += 5_000;
  failing = false;
  assert.equal(await guarded.findCredential('k'), undefined);
  assert.equal(guarded.breaker.state, 'closed');
  // Errors that are not unavailability are passed on without counting against the store.
  await assert.rejects(guarded.getTier('broken'), RangeError);
  assert.equal(guarded.breaker.state, 'closed');
});

test('cluster engines - api servers sharing a limiter store share the tier and global buckets', async () => {
  const tier: Tier = {
    name: 'tiny',
    ...initialTiers.free,
    burst: 3,
    ratePerSecond: 0.001,
    builtIn: false,
    updatedAt: 0,
  };
  const principal: Principal = { accountId: 'a', keyId: 'k', tier, scopes: [], anonymous: false };
  const clock = () => 1_000_000;
  const guard = (store?: MemoryLimiterStore, globalBurst = 1_000) =>
    new TenancyGuard({
      authenticate: async () => principal,
      globalRatePerSecond: 0.001,
      globalBurst,
      conversionsThisMonth: async () => 0,
      clock,
      ...(store === undefined ? {} : { limiterStore: store }),
    });
  const admitted = async (guards: TenancyGuard[], requests: number) => {
    let count = 0;
    for (let index = 0; index < requests; index++) {
      try {
        await guards[index % guards.length]!.admit('key', '127.0.0.1');
        count++;
      } catch (error) {
        assert.ok(isPixelfleetError(error, 'PF_ERR_RATE_LIMITED'), String(error));
      }
    }
    return count;
  };
  const shared = new MemoryLimiterStore({ clock: { now: clock } });
  assert.equal(await admitted([guard(shared), guard(shared)], 10), 3, 'one tier bucket for both servers');
  assert.equal(await admitted([guard(), guard()], 10), 6, 'without a shared store each server has its own');
  const cluster = new MemoryLimiterStore({ clock: { now: clock } });
  const global = [guard(cluster, 4), guard(cluster, 4)];
  principal.tier = { ...tier, burst: 100 };
  assert.equal(await admitted(global, 10), 4, 'the global bucket is the cluster’s');
});
