import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { type BreakerState, CircuitBreaker } from '../../../src/resilience/remote/index.ts';

const SEED = 20_250_505;

function clock(start = 1_000_000) {
  let now = start;
  return {
    now: () => now,
    advance: (ms: number) => {
      now += ms;
    },
  };
}

function complete(breaker: CircuitBreaker, outcomes: Array<'ok' | 'fail'>): void {
  for (const outcome of outcomes) {
    const permit = breaker.tryAcquire();
    assert.ok(permit, 'expected a permit');
    if (outcome === 'ok') permit.success();
    else permit.failure();
  }
}

test('circuit breaker - stays closed below the minimum volume whatever the error ratio', () => {
  const time = clock();
  const breaker = new CircuitBreaker({ now: time.now });
  complete(breaker, Array(19).fill('fail'));
  assert.equal(breaker.state, 'closed');
  assert.deepEqual(breaker.snapshot(), { state: 'closed', requests: 19, failures: 19 });
  complete(breaker, ['fail']);
  assert.equal(breaker.state, 'open');
});

test('circuit breaker - opens at the error ratio once the minimum volume is reached', () => {
  const time = clock();
  const transitions: Array<[BreakerState, BreakerState]> = [];
  const breaker = new CircuitBreaker({
    now: time.now,
    onStateChange: (from, to) => transitions.push([from, to]),
  });
  complete(breaker, Array(11).fill('ok'));
  complete(breaker, Array(9).fill('fail'));
  assert.equal(breaker.state, 'closed', '9/20 = 45 % < 50 %');
  complete(breaker, ['ok', 'fail']);
  assert.equal(breaker.state, 'closed', '10/22 < 50 %');
  complete(breaker, ['fail', 'fail']);
  assert.equal(breaker.state, 'open', '12/24 = 50 %');
  assert.equal(breaker.tryAcquire(), undefined);
  assert.deepEqual(transitions, [['closed', 'open']]);
  assert.equal(breaker.snapshot().openedAt, time.now());
});

test('circuit breaker - the window rolls: failures older than the window no longer count', () => {
  const time = clock();
  const breaker = new CircuitBreaker({ now: time.now, windowMs: 10_000, buckets: 10 });
  complete(breaker, Array(15).fill('fail'));
  time.advance(5_000);
  complete(breaker, Array(4).fill('fail'));
  assert.equal(breaker.snapshot().requests, 19);
  time.advance(5_500); // the first 15 failures are now 10.5 s old: out of the window
  assert.equal(breaker.snapshot().requests, 4);
  complete(breaker, ['fail']);
  assert.equal(breaker.state, 'closed', 'only 5 requests in the window');
  complete(breaker, Array(15).fill('fail'));
  assert.equal(breaker.state, 'open');
});

test('circuit breaker - after openMs a single half-open probe is admitted; success closes with a fresh window', () => {
  const time = clock();
  const breaker = new CircuitBreaker({ now: time.now, openMs: 5000 });
  complete(breaker, Array(20).fill('fail'));
  time.advance(4999);
  assert.equal(breaker.tryAcquire(), undefined);
  time.advance(1);
  assert.equal(breaker.state, 'half-open');
  const probe = breaker.tryAcquire();
  assert.ok(probe);
  assert.equal(breaker.tryAcquire(), undefined, 'a second caller is rejected while the probe is out');
  probe.success();
  assert.equal(breaker.state, 'closed');
  assert.deepEqual(breaker.snapshot(), { state: 'closed', requests: 0, failures: 0 });
});

test('circuit breaker - a failed probe re-opens for another openMs; a released probe frees the slot', () => {
  const time = clock();
  const breaker = new CircuitBreaker({ now: time.now, openMs: 1000 });
  complete(breaker, Array(20).fill('fail'));
  time.advance(1000);
  const released = breaker.tryAcquire();
  assert.ok(released);
  released.release();
  assert.equal(breaker.state, 'half-open');
  const probe = breaker.tryAcquire();
  assert.ok(probe);
  probe.failure();
  assert.equal(breaker.state, 'open');
  time.advance(999);
  assert.equal(breaker.tryAcquire(), undefined);
  time.advance(1);
  assert.ok(breaker.tryAcquire());
});

test('circuit breaker - outcomes of permits granted before a transition are ignored', () => {
  const time = clock();
  const breaker = new CircuitBreaker({ now: time.now, openMs: 1000, minimumRequests: 2 });
  const stale = breaker.tryAcquire();
  assert.ok(stale);
  complete(breaker, ['fail', 'fail']);
  assert.equal(breaker.state, 'open');
  time.advance(1000);
  const probe = breaker.tryAcquire();
  assert.ok(probe);
  stale.success(); // from the closed era: must not close the breaker nor free the probe slot
  assert.equal(breaker.state, 'half-open');
  assert.equal(breaker.tryAcquire(), undefined);
  probe.success();
  probe.failure(); // settling twice is ignored
  assert.equal(breaker.state, 'closed');
});

test('circuit breaker - matches a reference model of the Hystrix state machine (property)', () => {
  const step = fc.oneof(
    fc.record({ kind: fc.constant('advance' as const), ms: fc.integer({ min: 0, max: 3000 }) }),
    fc.record({ kind: fc.constant('call' as const), fail: fc.boolean() }),
  );
  fc.assert(
    fc.property(fc.array(step, { maxLength: 300 }), (steps) => {
      const time = clock(0);
      const options = { windowMs: 10_000, buckets: 10, minimumRequests: 5, errorRatio: 0.5, openMs: 2000 };
      const breaker = new CircuitBreaker({ ...options, now: time.now });
      // Model: outcomes with their time; state; openedAt.
      let state: BreakerState = 'closed';
      let openedAt = 0;
      let outcomes: Array<{ slot: number; fail: boolean }> = [];
      for (const s of steps) {
        if (s.kind === 'advance') {
          time.advance(s.ms);
          continue;
        }
        const now = time.now();
        if (state === 'open' && now - openedAt >= options.openMs) state = 'half-open';
        const permit = breaker.tryAcquire();
        assert.equal(permit === undefined, (state as BreakerState) === 'open');
        if (permit === undefined) continue;
        if (s.fail) permit.failure();
        else permit.success();
        if (state === 'half-open') {
          if (s.fail) {
            state = 'open';
            openedAt = now;
          } else {
            state = 'closed';
            outcomes = [];
          }
        } else {
          const slot = Math.floor(now / 1000);
          outcomes.push({ slot, fail: s.fail });
          const inWindow = outcomes.filter((o) => o.slot > slot - 10);
          const failures = inWindow.filter((o) => o.fail).length;
          if (s.fail && inWindow.length >= 5 && failures / inWindow.length >= 0.5) {
            state = 'open';
            openedAt = now;
          }
        }
        assert.equal(breaker.state, state);
      }
    }),
    { seed: SEED, numRuns: 300 },
  );
});

test('circuit breaker - bad options are RangeErrors', () => {
  assert.throws(() => new CircuitBreaker({ errorRatio: 0 }), RangeError);
  assert.throws(() => new CircuitBreaker({ errorRatio: 1.5 }), RangeError);
  assert.throws(() => new CircuitBreaker({ buckets: 2.5 }), RangeError);
  assert.throws(() => new CircuitBreaker({ minimumRequests: 0 }), RangeError);
  assert.throws(() => new CircuitBreaker({ openMs: -1 }), RangeError);
});
