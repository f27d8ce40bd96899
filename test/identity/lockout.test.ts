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
  presentedKeyFromHeaders,
  requireScope,
  SqliteIdentityStore,
} from '../../src/identity/index.ts';

function fakeClock() {
  const clock = { now: 0 };
  return { clock, read: () => clock.now };
}

describe('progressive lockout', () => {
  test('lockout - locks a client after maxFailures within the window', () => {
    const { clock, read } = fakeClock();
    const lockout = new ProgressiveLockout({
      clock: read,
      maxFailures: 3,
      failureWindowMs: 10_000,
      baseLockoutMs: 1_000,
    });
    assert.deepEqual(lockout.recordFailure('10.0.0.1'), { locked: false });
    assert.deepEqual(lockout.recordFailure('10.0.0.1'), { locked: false });
    assert.deepEqual(lockout.recordFailure('10.0.0.1'), { locked: true, retryAfterMs: 1_000 });
    assert.deepEqual(lockout.check('10.0.0.1'), { locked: true, retryAfterMs: 1_000 });
    assert.deepEqual(lockout.check('10.0.0.2'), { locked: false });
    clock.now += 400;
    assert.deepEqual(lockout.check('10.0.0.1'), { locked: true, retryAfterMs: 600 });
    clock.now += 600;
    assert.deepEqual(lockout.check('10.0.0.1'), { locked: false });
  });

  test('lockout - failures outside the window do not add up', () => {
    const { clock, read } = fakeClock();
    const lockout = new ProgressiveLockout({ clock: read, maxFailures: 3, failureWindowMs: 10_000 });
    for (let i = 0; i < 10; i++) {
      assert.equal(lockout.recordFailure('c').locked, false);
      clock.now += 5_001;
    }
  });

  test('lockout - each further lockout is longer, up to the maximum', () => {
    const { clock, read } = fakeClock();
    const lockout = new ProgressiveLockout({
      clock: read,
      maxFailures: 2,
      baseLockoutMs: 1_000,
      multiplier: 2,
      maxLockoutMs: 6_000,
    });
    const lengths: number[] = [];
    for (let round = 0; round < 5; round++) {
      lockout.recordFailure('c');
      const verdict = lockout.recordFailure('c');
      assert.ok(verdict.locked);
      lengths.push(verdict.retryAfterMs);
      clock.now += verdict.retryAfterMs;
    }
    assert.deepEqual(lengths, [1_000, 2_000, 4_000, 6_000, 6_000]);
  });

  test('lockout - a success clears failures but not the escalation; quiet clients are forgotten', () => {
    const { clock, read } = fakeClock();
    const lockout = new ProgressiveLockout({
      clock: read,
      maxFailures: 2,
      baseLockoutMs: 1_000,
      forgetAfterMs: 60_000,
    });
    lockout.recordFailure('c');
    lockout.recordSuccess('c');
    assert.equal(lockout.recordFailure('c').locked, false);
    const first = lockout.recordFailure('c');
    assert.deepEqual(first, { locked: true, retryAfterMs: 1_000 });
    clock.now += 1_000;
    lockout.recordSuccess('c');
    lockout.recordFailure('c');
    assert.deepEqual(lockout.recordFailure('c'), { locked: true, retryAfterMs: 2_000 });
    clock.now += 2_000 + 60_000;
    assert.deepEqual(lockout.check('c'), { locked: false });
    assert.equal(lockout.trackedClients, 0);
    lockout.recordFailure('c');
    assert.deepEqual(lockout.recordFailure('c'), { locked: true, retryAfterMs: 1_000 });
  });

  test('lockout - tracks at most maxTrackedClients', () => {
    const { read } = fakeClock();
    const lockout = new ProgressiveLockout({ clock: read, maxTrackedClients: 100 });
    for (let i = 0; i < 1_000; i++) lockout.recordFailure(`client-${i}`);
    assert.equal(lockout.trackedClients, 100);
  });

  test('lockout - the error is a 429 with Retry-After seconds', () => {
    const error = lockedOutError(1_500);
    assert.equal(error.code, 'PF_ERR_AUTH_LOCKED_OUT');
    assert.equal(error.status, 429);
    assert.equal(error.extensions.retryAfterSeconds, 2);
  });

  test('lockout - rejects bad options with RangeError', () => {
    assert.throws(() => new ProgressiveLockout({ maxFailures: 0 }), RangeError);
    assert.throws(() => new ProgressiveLockout({ multiplier: 0.5 }), RangeError);
    assert.throws(() => new ProgressiveLockout({ baseLockoutMs: 10_000, maxLockoutMs: 1_000 }), RangeError);
  });
});

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
    const clock = { now: 1_750_000_000_000 };
    const store = new SqliteIdentityStore({ path: ':memory:', clock: () => clock.now });
    const bus = new InProcessChangeBus();
    const management = new ManagementPlane({ store, bus, clock: () => clock.now });
    const context = { actor: 'admin', sourceIp: null };
    const account = await management.createAccount({ name: 'Acme' }, context);
    const issued = await management.issueKey(account.id, { scopes: ['jobs:read'] }, context);
    const edgeCache = new EdgeCache({ source: store, bus, clock: () => clock.now });
    const lockout = new ProgressiveLockout({ clock: () => clock.now, maxFailures: 3, baseLockoutMs: 2_000 });
    const authenticate = createRequestAuthenticator({ edgeCache, lockout });

    // Missing keys are not attempts; they do not count.
    for (let i = 0; i < 5; i++) await assert.rejects(authenticate(undefined, '10.0.0.1'));
    assert.equal(lockout.check('10.0.0.1').locked, false);

    for (let i = 0; i < 3; i++) {
      await assert.rejects(authenticate('pf_live_bad', '10.0.0.1'), (error) =>
        isPixelfleetError(error, 'PF_ERR_UNAUTHORIZED'),
      );
    }
    await assert.rejects(authenticate(issued.presentedKey, '10.0.0.1'), (error) => {
      assert.ok(isPixelfleetError(error, 'PF_ERR_AUTH_LOCKED_OUT'));
      assert.equal(error.extensions.retryAfterSeconds, 2);
      return true;
    });
    // Other addresses are unaffected.
    const principal = await authenticate(issued.presentedKey, '10.0.0.2');
    assert.equal(principal.accountId, account.id);
    clock.now += 2_000;
    assert.equal((await authenticate(issued.presentedKey, '10.0.0.1')).keyId, issued.key.id);

    requireScope(principal, 'jobs:read');
    assert.throws(
      () => requireScope(principal, 'images:write'),
      (error) => isPixelfleetError(error, 'PF_ERR_FORBIDDEN') && error.status === 403,
    );
    requireScope({ ...principal, scopes: ['admin'] }, 'usage:read');
    edgeCache.close();
    await store.close();
  });
});
