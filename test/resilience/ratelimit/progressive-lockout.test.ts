import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { ProgressiveLockout } from '../../../src/resilience/ratelimit/index.ts';
import { FakeClock, SEED } from './support.ts';

const options = {
  freeFailures: 3,
  baseLockoutMs: 1000,
  multiplier: 2,
  maxLockoutMs: 30_000,
  decayMs: 60_000,
};

test('progressive lockout - free failures, then lockouts that double up to the cap', () => {
  const clock = new FakeClock();
  const lockout = new ProgressiveLockout({ ...options, clock });
  const lockouts: number[] = [];
  for (let failure = 1; failure <= 10; failure += 1) {
    assert.equal(lockout.check('10.0.0.1').allowed, true, `before failure ${failure}`);
    const after = lockout.recordFailure('10.0.0.1');
    lockouts.push(after.retryAfterMs);
    clock.advance(after.retryAfterMs); // the client waits out each lockout, then fails again
  }
  assert.deepEqual(lockouts, [0, 0, 0, 1000, 2000, 4000, 8000, 16_000, 30_000, 30_000]);
});

test('progressive lockout - a locked client is refused until the lockout ends; other clients are unaffected', () => {
  const clock = new FakeClock();
  const lockout = new ProgressiveLockout({ ...options, clock });
  for (let failure = 0; failure < 4; failure += 1) lockout.recordFailure('attacker');
  const locked = lockout.check('attacker');
  assert.equal(locked.allowed, false);
  assert.equal(locked.retryAfterMs, 1000);
  assert.equal(lockout.check('someone-else').allowed, true);
  clock.advance(999);
  assert.equal(lockout.check('attacker').allowed, false);
  clock.advance(1);
  assert.equal(lockout.check('attacker').allowed, true);
});

test('progressive lockout - quiet time forgives one failure per decay period; checks do not delay it', () => {
  const clock = new FakeClock();
  const lockout = new ProgressiveLockout({ ...options, clock });
  for (let failure = 0; failure < 6; failure += 1) lockout.recordFailure('c');
  assert.equal(lockout.check('c').remaining, 0);
  for (let period = 1; period <= 6; period += 1) {
    clock.advance(30_000);
    lockout.check('c');
    clock.advance(30_000);
    // After `period` quiet periods, 6 - period failures remain counted.
    assert.equal(lockout.check('c').remaining, Math.max(0, 3 - (6 - period)), `after ${period} periods`);
  }
  // Fully forgiven: the next failure is a free one again.
  assert.equal(lockout.recordFailure('c').allowed, true);
});

test('progressive lockout - over random failure patterns the lockout never exceeds the cap and state expires', () => {
  fc.assert(
    fc.property(fc.array(fc.integer({ min: 0, max: 90_000 }), { minLength: 50, maxLength: 400 }), (gaps) => {
      const clock = new FakeClock();
      const lockout = new ProgressiveLockout({ ...options, clock, maxKeys: 10 });
      for (const gap of gaps) {
        clock.advance(gap);
        const decision = lockout.recordFailure('c');
        assert.ok(decision.retryAfterMs <= options.maxLockoutMs);
        assert.ok(decision.remaining >= 0 && decision.remaining <= options.freeFailures);
      }
      // Cap + enough decay periods to forgive the capped count: back to a clean slate.
      clock.advance(options.maxLockoutMs + 20 * options.decayMs);
      assert.equal(lockout.check('c').remaining, options.freeFailures);
    }),
    { seed: SEED, numRuns: 100 },
  );
});

test('progressive lockout - reset lifts a lockout', () => {
  const clock = new FakeClock();
  const lockout = new ProgressiveLockout({ ...options, clock });
  for (let failure = 0; failure < 8; failure += 1) lockout.recordFailure('c');
  assert.equal(lockout.check('c').allowed, false);
  lockout.reset('c');
  assert.equal(lockout.check('c').allowed, true);
  assert.equal(lockout.check('c').remaining, 3);
});

test('progressive lockout - rejects bad options with RangeError', () => {
  assert.throws(() => new ProgressiveLockout({ multiplier: 1 }), RangeError);
  assert.throws(() => new ProgressiveLockout({ freeFailures: -1 }), RangeError);
  assert.throws(() => new ProgressiveLockout({ baseLockoutMs: 5000, maxLockoutMs: 1000 }), RangeError);
  assert.throws(() => new ProgressiveLockout({ decayMs: 0 }), RangeError);
});
