import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { isPixelfleetError } from '../../src/errors/index.ts';
import {
  createRequestAuthenticator,
  EdgeCache,
  InProcessChangeBus,
  lockedOutError,
  ManagementPlane,
  ProgressiveLockout,
  type ProgressiveLockoutLimiterOptions,
  presentedKeyFromHeaders,
  requireScope,
  SqliteIdentityStore,
} from '../../src/identity/index.ts';
import {
  MemoryLimiterStore,
  ProgressiveLockout as ResilienceProgressiveLockout,
} from '../../src/resilience/ratelimit/index.ts';

/** A store with one account and one valid key, an authenticator over it, and a hand-driven clock. */
async function harness(lockoutOptions: ProgressiveLockoutLimiterOptions) {
  const clock = { now: 1_750_000_000_000 };
  const read = () => clock.now;
  const store = new SqliteIdentityStore({ path: ':memory:', clock: read });
  const bus = new InProcessChangeBus();
  const management = new ManagementPlane({ store, bus, clock: read });
  const context = { actor: 'admin', sourceIp: null };
  const account = await management.createAccount({ name: 'Acme' }, context);
  const issued = await management.issueKey(account.id, { scopes: ['jobs:read'] }, context);
  const edgeCache = new EdgeCache({ source: store, bus, clock: read });
  const lockout = new ProgressiveLockout({ clock: { now: read }, ...lockoutOptions });
  const authenticate = createRequestAuthenticator({ edgeCache, lockout });
  return {
    clock,
    account,
    issued,
    lockout,
    authenticate,
    /** Seconds of Retry-After the next attempt from `client` is refused with, or 0 if admitted. */
    async refusalSeconds(client: string): Promise<number> {
      try {
        await authenticate(issued.presentedKey, client);
        return 0;
      } catch (error) {
        assert.ok(isPixelfleetError(error, 'PF_ERR_AUTH_LOCKED_OUT'), String(error));
        return error.extensions.retryAfterSeconds as number;
      }
    },
    async failOnce(client: string): Promise<void> {
      await assert.rejects(authenticate('pf_live_bad', client), (error) =>
        isPixelfleetError(error, 'PF_ERR_UNAUTHORIZED'),
      );
    },
    async close() {
      edgeCache.close();
      await store.close();
    },
  };
}

describe('request authenticator', () => {
  test('request authenticator - reads Bearer and X-Api-Key headers', () => {
    assert.equal(presentedKeyFromHeaders({ authorization: 'Bearer pf_live_x' }), 'pf_live_x');
    assert.equal(presentedKeyFromHeaders({ authorization: 'bearer   pf_live_x ' }), 'pf_live_x');
    assert.equal(presentedKeyFromHeaders({ 'x-api-key': 'pf_live_y' }), 'pf_live_y');
    assert.equal(presentedKeyFromHeaders({ authorization: 'Basic abc' }), 'Basic abc');
    assert.equal(presentedKeyFromHeaders({}), undefined);
    assert.equal(presentedKeyFromHeaders({ 'x-api-key': '' }), undefined);
  });

  test('request authenticator - locks out an address that keeps failing, then lets it back', async () => {
    const h = await harness({ freeFailures: 2, baseLockoutMs: 2_000 });
    try {
      // Missing keys are not attempts; they do not count.
      for (let i = 0; i < 5; i++) await assert.rejects(h.authenticate(undefined, '10.0.0.1'));
      assert.equal(h.lockout.check('10.0.0.1').allowed, true);

      for (let i = 0; i < 3; i++) await h.failOnce('10.0.0.1');
      // Locked: even the valid key is refused, without being verified.
      await assert.rejects(h.authenticate(h.issued.presentedKey, '10.0.0.1'), (error) => {
        assert.ok(isPixelfleetError(error, 'PF_ERR_AUTH_LOCKED_OUT'));
        assert.equal(error.status, 429);
        assert.equal(error.extensions.retryAfterSeconds, 2);
        return true;
      });
      // Other addresses are unaffected.
      const principal = await h.authenticate(h.issued.presentedKey, '10.0.0.2');
      assert.equal(principal.accountId, h.account.id);
      h.clock.now += 2_000;
      assert.equal((await h.authenticate(h.issued.presentedKey, '10.0.0.1')).keyId, h.issued.key.id);

      requireScope(principal, 'jobs:read');
      assert.throws(
        () => requireScope(principal, 'images:write'),
        (error) => isPixelfleetError(error, 'PF_ERR_FORBIDDEN') && error.status === 403,
      );
      requireScope({ ...principal, scopes: ['admin'] }, 'usage:read');
    } finally {
      await h.close();
    }
  });

  test('request authenticator - each further lockout is longer, up to the maximum', async () => {
    const h = await harness({ freeFailures: 1, baseLockoutMs: 1_000, multiplier: 2, maxLockoutMs: 6_000 });
    try {
      await h.failOnce('c');
      assert.equal(await h.refusalSeconds('c'), 0, 'one failure is free');
      const lengths: number[] = [];
      for (let round = 0; round < 5; round++) {
        await h.failOnce('c');
        const seconds = await h.refusalSeconds('c');
        lengths.push(seconds);
        h.clock.now += seconds * 1_000; // the client waits out each lockout, then fails again
      }
      assert.deepEqual(lengths, [1, 2, 4, 6, 6]);
    } finally {
      await h.close();
    }
  });

  test('request authenticator - a valid key does not wipe the failure count', async () => {
    const h = await harness({ freeFailures: 2, baseLockoutMs: 1_000 });
    try {
      await h.failOnce('c');
      await h.failOnce('c');
      // Interleaving a key the client holds must not buy it more guesses.
      assert.equal(await h.refusalSeconds('c'), 0);
      await h.failOnce('c');
      assert.equal(await h.refusalSeconds('c'), 1);
    } finally {
      await h.close();
    }
  });

  test('request authenticator - quiet time forgives failures, so honest clients recover', async () => {
    const h = await harness({ freeFailures: 2, baseLockoutMs: 1_000, decayMs: 10_000 });
    try {
      await h.failOnce('c');
      await h.failOnce('c');
      h.clock.now += 20_000; // two decay periods: both failures forgiven
      await h.failOnce('c');
      await h.failOnce('c');
      assert.equal(await h.refusalSeconds('c'), 0, 'two failures are within the free allowance again');
      await h.failOnce('c');
      assert.equal(await h.refusalSeconds('c'), 1);
      h.clock.now += 1_000 + 30_000; // the lockout ends and every failure is forgiven
      assert.equal(h.lockout.check('c').remaining, 2);
    } finally {
      await h.close();
    }
  });

  test('request authenticator - lockout memory is bounded by its store', () => {
    const store = new MemoryLimiterStore({ maxKeys: 100 });
    const lockout = new ProgressiveLockout({ store });
    for (let i = 0; i < 1_000; i++) lockout.recordFailure(`client-${i}`);
    assert.equal(store.size, 100);
  });

  test('request authenticator - the lockout error is a 429 with Retry-After seconds', () => {
    const error = lockedOutError(1_500);
    assert.equal(error.code, 'PF_ERR_AUTH_LOCKED_OUT');
    assert.equal(error.status, 429);
    assert.equal(error.extensions.retryAfterSeconds, 2);
    assert.equal(lockedOutError(1).extensions.retryAfterSeconds, 1, 'never "retry in 0 s"');
  });

  test('request authenticator - identity uses the one resilience lockout, which rejects bad options', () => {
    assert.equal(ProgressiveLockout, ResilienceProgressiveLockout);
    assert.throws(() => new ProgressiveLockout({ freeFailures: -1 }), RangeError);
    assert.throws(() => new ProgressiveLockout({ multiplier: 0.5 }), RangeError);
    assert.throws(() => new ProgressiveLockout({ baseLockoutMs: 10_000, maxLockoutMs: 1_000 }), RangeError);
  });
});
