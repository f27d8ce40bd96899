import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { apiKeyDigest, HealthState, isReplayable, OutlierDetector } from '../../src/gateway/index.ts';

test('gateway cores - health state needs two failures to go unhealthy and two passes to come back', () => {
  const health = new HealthState();
  assert.equal(health.healthy, true);
  assert.equal(health.record(false, 1, 'refused'), false);
  assert.equal(health.record(true, 2), false, 'a pass resets the failure streak');
  assert.equal(health.record(false, 3), false);
  assert.equal(health.record(false, 4, 'refused'), true);
  assert.equal(health.healthy, false);
  assert.equal(health.snapshot().lastError, 'refused');
  assert.equal(health.record(true, 5), false);
  assert.equal(health.record(true, 6), true);
  assert.equal(health.healthy, true);
  assert.throws(() => new HealthState({ unhealthyThreshold: 0 }), RangeError);
});

test('gateway cores - health state flips only after a full streak (property)', () => {
  fc.assert(
    fc.property(fc.array(fc.boolean(), { maxLength: 60 }), (results) => {
      const health = new HealthState({ unhealthyThreshold: 2, healthyThreshold: 3 });
      let healthy = true;
      let streak = 0;
      results.forEach((passed, index) => {
        streak = passed === healthy ? 0 : streak + 1;
        if (streak >= (healthy ? 2 : 3)) {
          healthy = passed;
          streak = 0;
        }
        health.record(passed, index);
        assert.equal(health.healthy, healthy);
      });
    }),
  );
});

test('gateway cores - outlier detector ejects after consecutive failures for a growing, capped time', () => {
  let now = 0;
  const detector = new OutlierDetector({
    consecutiveFailures: 3,
    baseEjectionMs: 1000,
    maxEjectionMs: 2500,
    now: () => now,
  });
  for (const id of ['a', 'b', 'c', 'd']) detector.add(id);
  assert.equal(detector.recordFailure('a'), false);
  assert.equal(detector.recordFailure('a'), false);
  detector.recordSuccess('a');
  assert.equal(detector.recordFailure('a'), false, 'a success resets the streak');
  detector.recordFailure('a');
  assert.equal(detector.recordFailure('a'), true);
  assert.equal(detector.isEjected('a'), true);
  now = 999;
  assert.equal(detector.isEjected('a'), true);
  now = 1000;
  assert.equal(detector.isEjected('a'), false);
  for (let i = 0; i < 3; i += 1) detector.recordFailure('a');
  assert.equal(detector.snapshot('a')!.ejectedUntil, 3000, 'second ejection: 2 × base');
  now = 3000;
  for (let i = 0; i < 3; i += 1) detector.recordFailure('a');
  assert.equal(detector.snapshot('a')!.ejectedUntil, 5500, 'third: 3 × base capped at 2500');
  // Back in rotation long enough, the multiplier decays (one step per 2 × base).
  now = 5500 + 4000;
  assert.equal(detector.snapshot('a')!.timesEjected, 1);
});

test('gateway cores - outlier detector never ejects more than maxEjectionPercent (property)', () => {
  fc.assert(
    fc.property(
      fc.integer({ min: 1, max: 10 }),
      fc.integer({ min: 0, max: 100 }),
      fc.array(fc.tuple(fc.nat(9), fc.boolean(), fc.nat(400)), { maxLength: 200 }),
      (size, percent, events) => {
        let now = 0;
        const detector = new OutlierDetector({
          consecutiveFailures: 2,
          baseEjectionMs: 1000,
          maxEjectionPercent: percent,
          now: () => now,
        });
        for (let id = 0; id < size; id += 1) detector.add(String(id));
        const limit = Math.floor((size * percent) / 100);
        for (const [target, failed, advance] of events) {
          now += advance;
          const id = String(target % size);
          if (failed) detector.recordFailure(id);
          else detector.recordSuccess(id);
          assert.ok(detector.ejectedCount() <= limit);
        }
      },
    ),
  );
});

test('gateway cores - replayable requests and hashed API keys', () => {
  for (const method of ['GET', 'HEAD', 'OPTIONS', 'PUT', 'DELETE'])
    assert.equal(isReplayable(method, {}), true);
  assert.equal(isReplayable('POST', {}), false);
  assert.equal(isReplayable('PATCH', {}), false);
  assert.equal(isReplayable('POST', { 'idempotency-key': 'k-1' }), true);
  assert.equal(isReplayable('POST', { 'idempotency-key': ' ' }), false);

  const bearer = apiKeyDigest({ authorization: 'Bearer pk_live_secret' });
  assert.equal(bearer, apiKeyDigest({ 'x-api-key': 'pk_live_secret' }), 'same key, same affinity');
  assert.ok(bearer && !bearer.includes('secret'), 'the key itself never leaves');
  assert.notEqual(bearer, apiKeyDigest({ authorization: 'Bearer pk_live_other' }));
  assert.equal(apiKeyDigest({ authorization: 'Basic abc' }), undefined);
  assert.equal(apiKeyDigest({}), undefined);
});
