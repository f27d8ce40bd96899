import assert from 'node:assert/strict';
import { test } from 'node:test';
import { AdaptiveTimeout } from '../../../src/resilience/remote/index.ts';

test('adaptive timeout - uses the initial timeout until enough samples were seen', () => {
  const timeout = new AdaptiveTimeout({ initialMs: 700, minSamples: 5 });
  assert.equal(timeout.percentileMs(), undefined);
  assert.equal(timeout.timeoutMs(), 700);
  for (let i = 0; i < 4; i++) timeout.observe(10);
  assert.equal(timeout.timeoutMs(), 700);
  timeout.observe(10);
  assert.equal(timeout.percentileMs(), 10);
  assert.equal(timeout.timeoutMs(), 20);
});

test('adaptive timeout - follows multiplier × p99 of the ring, clamped', () => {
  const timeout = new AdaptiveTimeout({ samples: 100, multiplier: 2, minMs: 5, maxMs: 1000 });
  for (let i = 1; i <= 100; i++) timeout.observe(i); // 1..100 ms
  assert.equal(timeout.percentileMs(), 99);
  assert.equal(timeout.timeoutMs(), 198);
  // The ring forgets: 100 fast samples replace the old ones.
  for (let i = 0; i < 100; i++) timeout.observe(1);
  assert.equal(timeout.percentileMs(), 1);
  assert.equal(timeout.timeoutMs(), 5, 'clamped to minMs');
  for (let i = 0; i < 100; i++) timeout.observe(5000);
  assert.equal(timeout.timeoutMs(), 1000, 'clamped to maxMs');
});

test('adaptive timeout - censored samples at the timeout let it grow when the dependency slows', () => {
  const timeout = new AdaptiveTimeout({ samples: 200, multiplier: 2, minMs: 1, maxMs: 10_000 });
  for (let i = 0; i < 200; i++) timeout.observe(10);
  assert.equal(timeout.timeoutMs(), 20);
  // The dependency now takes 100 ms: every call times out and records the timeout it hit.
  let rounds = 0;
  while (timeout.timeoutMs() < 100 && rounds < 1000) {
    timeout.observe(Math.min(100, timeout.timeoutMs()));
    rounds += 1;
  }
  assert.ok(timeout.timeoutMs() >= 100, `stuck at ${timeout.timeoutMs()} ms`);
  assert.ok(rounds < 50, `took ${rounds} timeouts to adapt`);
});

test('adaptive timeout - ignores nonsense samples and rejects bad options', () => {
  const timeout = new AdaptiveTimeout({ minSamples: 1 });
  timeout.observe(Number.NaN);
  timeout.observe(-5);
  timeout.observe(Number.POSITIVE_INFINITY);
  assert.equal(timeout.percentileMs(), undefined);
  assert.throws(() => new AdaptiveTimeout({ percentile: 0 }), RangeError);
  assert.throws(() => new AdaptiveTimeout({ samples: 0 }), RangeError);
  assert.throws(() => new AdaptiveTimeout({ minMs: 100, maxMs: 10 }), RangeError);
});

test('adaptive timeout - the cached percentile is never below the exact one, and sees a rise at once', () => {
  const timeout = new AdaptiveTimeout({ samples: 1000, minSamples: 1 });
  const ring: number[] = [];
  const exact = () => {
    const sorted = [...ring].sort((a, b) => a - b);
    return sorted[Math.max(1, Math.ceil(0.99 * sorted.length)) - 1]!;
  };
  let seed = 7;
  const random = () => {
    seed = (seed * 1_103_515_245 + 12_345) % 2 ** 31;
    return seed / 2 ** 31;
  };
  let previous = 0;
  for (let i = 0; i < 5000; i++) {
    // Phases: steady, a slowdown, recovery.
    const base = i < 2000 ? 10 : i < 3000 ? 200 : 5;
    const ms = base * (0.5 + random());
    timeout.observe(ms);
    ring.push(ms);
    if (ring.length > 1000) ring.shift();
    const cached = timeout.percentileMs()!;
    assert.ok(cached >= exact(), `sample ${i}: cached ${cached} < exact ${exact()}`);
    if (ms > previous) assert.equal(cached, exact(), `sample ${i}: a higher sample was not seen at once`);
    previous = cached;
  }
  // After the recovery the timeout followed the fast samples down.
  assert.equal(timeout.percentileMs(), exact());
});
