import assert from 'node:assert/strict';
import { after, afterEach, beforeEach, describe, test } from 'node:test';
import { isPixelfleetError, type PixelfleetError } from '../../src/errors/index.ts';
import {
  type Credential,
  type CredentialSource,
  EdgeCache,
  type EdgeCacheEvent,
  type EdgeCacheOptions,
  InProcessChangeBus,
  ManagementPlane,
  SqliteIdentityStore,
  type Tier,
} from '../../src/identity/index.ts';

const context = { actor: 'admin', sourceIp: '127.0.0.1' };

/** A real store behind a switch that can make it fail, counting the lookups that reach it. */
class SwitchableSource implements CredentialSource {
  readonly store: SqliteIdentityStore;
  failing = false;
  lookups = 0;
  gate: Promise<void> | undefined;

  constructor(store: SqliteIdentityStore) {
    this.store = store;
  }

  async findCredential(keyId: string): Promise<Credential | undefined> {
    this.lookups++;
    if (this.failing) throw new Error('identity store unreachable');
    // Read first, then wait: a gated lookup holds a record read before whatever happens next.
    const credential = await this.store.findCredential(keyId);
    if (this.gate !== undefined) await this.gate;
    return credential;
  }

  async getTier(name: string): Promise<Tier | undefined> {
    this.lookups++;
    if (this.failing) throw new Error('identity store unreachable');
    return this.store.getTier(name);
  }
}

function rejectsWith(code: string, reason?: string) {
  return (error: unknown) => {
    assert.ok(isPixelfleetError(error), `expected a PixelfleetError, got ${error}`);
    assert.equal(error.code, code, error.message);
    if (reason !== undefined) assert.equal((error as PixelfleetError).extensions.reason, reason);
    return true;
  };
}

describe('edge cache', () => {
  const clock = { now: 1_750_000_000_000 };
  let store: SqliteIdentityStore;
  let bus: InProcessChangeBus;
  let management: ManagementPlane;
  let source: SwitchableSource;
  let events: EdgeCacheEvent[];
  let cache: EdgeCache | undefined;

  function makeCache(options: Partial<EdgeCacheOptions> = {}): EdgeCache {
    cache = new EdgeCache({
      source,
      bus,
      clock: () => clock.now,
      onEvent: (event) => events.push(event),
      ...options,
    });
    return cache;
  }

  async function newKey(scopes?: string[]) {
    const account = await management.createAccount({ name: 'Acme', tier: 'pro' }, context);
    const issued = await management.issueKey(account.id, scopes === undefined ? {} : { scopes }, context);
    return { account, keyId: issued.key.id, presentedKey: issued.presentedKey };
  }

  beforeEach(() => {
    clock.now = 1_750_000_000_000;
    store = new SqliteIdentityStore({ path: ':memory:', clock: () => clock.now });
    bus = new InProcessChangeBus();
    management = new ManagementPlane({ store, bus, clock: () => clock.now });
    source = new SwitchableSource(store);
    events = [];
  });
  afterEach(async () => {
    cache?.close();
    await cache?.settled();
    await store.close();
  });
  after(() => {});

  test('edge cache - authenticates a key and returns its principal with tier limits', async () => {
    const { account, keyId, presentedKey } = await newKey(['images:write', 'usage:read']);
    const principal = await makeCache().authenticate(presentedKey);
    assert.equal(principal.accountId, account.id);
    assert.equal(principal.keyId, keyId);
    assert.equal(principal.tier.name, 'pro');
    assert.equal(principal.tier.ratePerSecond, 100);
    assert.deepEqual(principal.scopes, ['images:write', 'usage:read']);
    assert.equal(principal.anonymous, false);
  });

  test('edge cache - serves from cache within the positive TTL and refetches after it', async () => {
    const { presentedKey } = await newKey();
    const edge = makeCache({ positiveTtlMs: 30_000, refreshAheadMs: 0 });
    await edge.authenticate(presentedKey);
    clock.now += 29_999;
    for (let i = 0; i < 50; i++) await edge.authenticate(presentedKey);
    assert.equal(source.lookups, 1);
    clock.now += 1;
    await edge.authenticate(presentedKey);
    assert.equal(source.lookups, 2);
    assert.equal(edge.stats().hits, 50);
    assert.equal(edge.stats().misses, 2);
  });

  test('edge cache - refreshes a hot entry in the background before it expires', async () => {
    const { presentedKey } = await newKey();
    const edge = makeCache({ positiveTtlMs: 30_000, refreshAheadMs: 5_000 });
    await edge.authenticate(presentedKey);
    clock.now += 26_000;
    await edge.authenticate(presentedKey);
    await edge.settled();
    assert.equal(source.lookups, 2);
    assert.equal(edge.stats().refreshes, 1);
    // The refresh restarted the TTL: 30 s after the first fetch is still a hit.
    clock.now += 10_000;
    await edge.authenticate(presentedKey);
    assert.equal(source.lookups, 2);
    assert.equal(edge.stats().misses, 1);
  });

  test('edge cache - caches unknown key ids for the negative TTL only', async () => {
    const edge = makeCache({ negativeTtlMs: 5_000 });
    const unknown = `pf_live_${'a'.repeat(16)}_${'b'.repeat(64)}`;
    for (let i = 0; i < 10; i++)
      await assert.rejects(edge.authenticate(unknown), rejectsWith('PF_ERR_UNAUTHORIZED', 'unknown'));
    assert.equal(source.lookups, 1);
    clock.now += 5_000;
    await assert.rejects(edge.authenticate(unknown), rejectsWith('PF_ERR_UNAUTHORIZED', 'unknown'));
    assert.equal(source.lookups, 2);
  });

  test('edge cache - a newly issued key works at once even after a negative entry for its id', async () => {
    const account = await management.createAccount({ name: 'Acme' }, context);
    const fixed = Buffer.alloc(40, 7);
    const deterministic = new ManagementPlane({
      store,
      bus,
      clock: () => clock.now,
      random: (size) => fixed.subarray(0, size),
    });
    const edge = makeCache();
    const guessed = `pf_live_${'07'.repeat(8)}_${'07'.repeat(32)}`;
    await assert.rejects(edge.authenticate(guessed), rejectsWith('PF_ERR_UNAUTHORIZED', 'unknown'));
    const issued = await deterministic.issueKey(account.id, {}, context);
    assert.equal(issued.presentedKey, guessed);
    assert.equal((await edge.authenticate(guessed)).keyId, issued.key.id);
  });

  test('edge cache - missing, malformed, wrong-secret, revoked and expired keys get distinct 401s', async () => {
    const { keyId, presentedKey } = await newKey();
    const edge = makeCache();
    await assert.rejects(edge.authenticate(undefined), rejectsWith('PF_ERR_UNAUTHORIZED', 'missing'));
    await assert.rejects(edge.authenticate(''), rejectsWith('PF_ERR_UNAUTHORIZED', 'missing'));
    await assert.rejects(edge.authenticate('sk_live_123'), rejectsWith('PF_ERR_UNAUTHORIZED', 'malformed'));
    const wrongSecret =
      `${presentedKey.slice(0, -4)}0000` === presentedKey
        ? `${presentedKey.slice(0, -4)}1111`
        : `${presentedKey.slice(0, -4)}0000`;
    await assert.rejects(edge.authenticate(wrongSecret), rejectsWith('PF_ERR_UNAUTHORIZED', 'unknown'));

    const account = await management.createAccount({ name: 'Expiring' }, context);
    const expiring = await management.issueKey(account.id, { expiresAt: clock.now + 60_000 }, context);
    await edge.authenticate(expiring.presentedKey);
    clock.now += 60_000;
    await assert.rejects(edge.authenticate(expiring.presentedKey), (error) => {
      rejectsWith('PF_ERR_UNAUTHORIZED', 'expired')(error);
      assert.match((error as Error).message, /expired at/);
      return true;
    });

    await management.revokeKey(keyId, 'leaked', context);
    await assert.rejects(edge.authenticate(presentedKey), (error) => {
      rejectsWith('PF_ERR_UNAUTHORIZED', 'revoked')(error);
      assert.match((error as Error).message, /revoked/);
      return true;
    });
    // A wrong secret for a revoked key id reveals nothing about the key.
    await assert.rejects(edge.authenticate(wrongSecret), rejectsWith('PF_ERR_UNAUTHORIZED', 'unknown'));
  });

  test('edge cache - a closed account gets 403 at once through the bus', async () => {
    const { account, presentedKey } = await newKey();
    const edge = makeCache();
    await edge.authenticate(presentedKey);
    await management.closeAccount(account.id, 'fraud', context);
    await assert.rejects(edge.authenticate(presentedKey), rejectsWith('PF_ERR_ACCOUNT_CLOSED'));
  });

  test('edge cache - a revocation event acts even while the store is down (tombstone beats stale)', async () => {
    const { keyId, presentedKey } = await newKey();
    const edge = makeCache();
    await edge.authenticate(presentedKey);
    await management.revokeKey(keyId, null, context);
    source.failing = true;
    await assert.rejects(edge.authenticate(presentedKey), rejectsWith('PF_ERR_UNAUTHORIZED', 'revoked'));
  });

  test('edge cache - without the bus a revocation is seen within the positive TTL (the backstop)', async () => {
    const { keyId, presentedKey } = await newKey();
    const edge = makeCache({ bus: undefined, positiveTtlMs: 30_000, refreshAheadMs: 0 });
    await edge.authenticate(presentedKey);
    await management.revokeKey(keyId, null, context);
    clock.now += 29_000;
    await edge.authenticate(presentedKey);
    clock.now += 1_000;
    await assert.rejects(edge.authenticate(presentedKey), rejectsWith('PF_ERR_UNAUTHORIZED', 'revoked'));
  });

  test('edge cache - serves stale entries when the store throws, counted and reported', async () => {
    const { presentedKey } = await newKey();
    const edge = makeCache({ positiveTtlMs: 30_000, maxStaleMs: 120_000, refreshAheadMs: 0 });
    await edge.authenticate(presentedKey);
    source.failing = true;
    clock.now += 60_000;
    const principal = await edge.authenticate(presentedKey);
    assert.equal(principal.tier.name, 'pro');
    assert.equal(edge.stats().staleServed, 1);
    assert.equal(edge.stats().storeErrors, 1);
    const stale = events.find((event) => event.type === 'stale-served');
    assert.ok(stale && stale.type === 'stale-served');
    assert.equal(stale.ageMs, 60_000);
    assert.match(String(stale.error), /unreachable/);

    // Past the staleness bound the cache gives up with 503.
    clock.now += 60_001;
    await assert.rejects(edge.authenticate(presentedKey), rejectsWith('PF_ERR_MANAGEMENT_UNAVAILABLE'));
    // And recovers as soon as the store does.
    source.failing = false;
    assert.equal((await edge.authenticate(presentedKey)).tier.name, 'pro');
  });

  test('edge cache - a key never seen while the store is down gets 503, not 401', async () => {
    const { presentedKey } = await newKey();
    source.failing = true;
    await assert.rejects(makeCache().authenticate(presentedKey), (error) => {
      rejectsWith('PF_ERR_MANAGEMENT_UNAVAILABLE')(error);
      assert.equal((error as PixelfleetError).extensions.retryAfterSeconds, 1);
      return true;
    });
  });

  test('edge cache - a failed background refresh keeps serving the cached entry', async () => {
    const { presentedKey } = await newKey();
    const edge = makeCache({ positiveTtlMs: 30_000, refreshAheadMs: 5_000 });
    await edge.authenticate(presentedKey);
    source.failing = true;
    clock.now += 27_000;
    await edge.authenticate(presentedKey);
    await edge.settled();
    assert.equal(edge.stats().storeErrors, 1);
    clock.now += 2_000;
    await edge.authenticate(presentedKey);
    assert.equal(edge.stats().staleServed, 0);
  });

  test('edge cache - concurrent misses for one key share a single store lookup', async () => {
    const { presentedKey } = await newKey();
    const edge = makeCache();
    let open!: () => void;
    source.gate = new Promise((resolve) => {
      open = resolve;
    });
    const pending = Array.from({ length: 20 }, () => edge.authenticate(presentedKey));
    open();
    const principals = await Promise.all(pending);
    assert.equal(principals.length, 20);
    assert.equal(source.lookups, 1);
  });

  test('edge cache - a lookup that raced a change event is not cached as fresh', async () => {
    const { keyId, presentedKey } = await newKey();
    const edge = makeCache();
    let open!: () => void;
    source.gate = new Promise((resolve) => {
      open = resolve;
    });
    // The lookup reads the record (burst 200), then the tier changes before it returns.
    const racing = edge.authenticate(presentedKey);
    await new Promise((resolve) => setImmediate(resolve));
    await management.setTier('pro', { burst: 300 }, context);
    open();
    source.gate = undefined;
    assert.equal((await racing).tier.burst, 200);
    assert.equal((await edge.authenticate(presentedKey)).tier.burst, 300);

    // Same race with a revocation: the tombstone wins over the record read before it.
    source.gate = new Promise((resolve) => {
      open = resolve;
    });
    clock.now += 60_000;
    const racingRevocation = edge.authenticate(presentedKey);
    await new Promise((resolve) => setImmediate(resolve));
    await management.revokeKey(keyId, null, context);
    open();
    source.gate = undefined;
    await racingRevocation.catch(() => undefined);
    await assert.rejects(edge.authenticate(presentedKey), rejectsWith('PF_ERR_UNAUTHORIZED', 'revoked'));
  });

  test('edge cache - tier changes reach cached principals through the bus', async () => {
    const { account, presentedKey } = await newKey();
    const edge = makeCache();
    assert.equal((await edge.authenticate(presentedKey)).tier.burst, 200);
    await management.setTier('pro', { burst: 300 }, context);
    assert.equal((await edge.authenticate(presentedKey)).tier.burst, 300);
    await management.changeAccountTier(account.id, 'enterprise', context);
    assert.equal((await edge.authenticate(presentedKey)).tier.name, 'enterprise');
  });

  test('edge cache - anonymous requests are refused until the anonymous tier is enabled', async () => {
    const edge = makeCache();
    await assert.rejects(edge.authenticate(undefined), rejectsWith('PF_ERR_UNAUTHORIZED', 'missing'));
    await management.setTier('anonymous', { enabled: true }, context);
    const principal = await edge.authenticate(undefined);
    assert.equal(principal.anonymous, true);
    assert.equal(principal.tier.name, 'anonymous');
    assert.deepEqual(principal.scopes, ['images:write', 'jobs:read']);
  });

  test('edge cache - memory is bounded by maxEntries (least recently used evicted)', async () => {
    const edge = makeCache({ maxEntries: 3 });
    for (let i = 0; i < 10; i++) {
      const id = i.toString(16).padStart(16, '0');
      await assert.rejects(edge.authenticate(`pf_live_${id}_${'c'.repeat(64)}`));
    }
    assert.equal(edge.stats().entries, 3);
  });

  test('edge cache - rejects bad options with RangeError', () => {
    assert.throws(() => makeCache({ positiveTtlMs: 0 }), RangeError);
    assert.throws(() => makeCache({ negativeTtlMs: 1.5 }), RangeError);
    assert.throws(() => makeCache({ positiveTtlMs: 1_000, refreshAheadMs: 1_000 }), RangeError);
    assert.throws(() => makeCache({ maxEntries: 0 }), RangeError);
    cache = undefined;
  });
});
