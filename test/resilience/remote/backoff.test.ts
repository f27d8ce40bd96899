import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { Backoff, type JitterKind } from '../../../src/resilience/remote/index.ts';

const SEED = 20_250_505;
const parameters = fc.record({
  initialDelayMs: fc.integer({ min: 1, max: 500 }),
  extraMs: fc.integer({ min: 0, max: 20_000 }),
  attempt: fc.integer({ min: 1, max: 80 }),
  random: fc.double({ min: 0, max: 1, maxExcluded: true, noNaN: true }),
  previousDelayMs: fc.option(fc.double({ min: 0, max: 50_000, noNaN: true }), { nil: undefined }),
});

function exponential(initialDelayMs: number, maxDelayMs: number, attempt: number): number {
  return Math.min(maxDelayMs, initialDelayMs * 2 ** (attempt - 1));
}

test('backoff - every jitter kind stays within its bounds', () => {
  fc.assert(
    fc.property(parameters, ({ initialDelayMs, extraMs, attempt, random, previousDelayMs }) => {
      const maxDelayMs = initialDelayMs + extraMs;
      const cap = exponential(initialDelayMs, maxDelayMs, attempt);
      const delayOf = (jitter: JitterKind) =>
        new Backoff({ initialDelayMs, maxDelayMs, jitter, random: () => random }).delay(
          attempt,
          previousDelayMs,
        );

      assert.equal(delayOf('none'), cap);
      const full = delayOf('full');
      assert.ok(full >= 0 && full <= cap, `full ${full} outside [0, ${cap}]`);
      const equal = delayOf('equal');
      assert.ok(equal >= cap / 2 && equal <= cap, `equal ${equal} outside [${cap / 2}, ${cap}]`);
      const decorrelated = delayOf('decorrelated');
      const previous =
        previousDelayMs !== undefined && previousDelayMs > 0 ? previousDelayMs : initialDelayMs;
      const upper = Math.min(maxDelayMs, Math.max(initialDelayMs, 3 * previous));
      assert.ok(
        decorrelated >= Math.min(initialDelayMs, maxDelayMs) && decorrelated <= upper,
        `decorrelated ${decorrelated} outside [${initialDelayMs}, ${upper}]`,
      );
      for (const delay of [full, equal, decorrelated])
        assert.ok(Number.isFinite(delay) && delay <= maxDelayMs);
    }),
    { seed: SEED, numRuns: 500 },
  );
});

test('backoff - without jitter the delay doubles from the initial delay up to the cap', () => {
  const backoff = new Backoff({ initialDelayMs: 25, maxDelayMs: 1000, jitter: 'none' });
  assert.deepEqual(
    [1, 2, 3, 4, 5, 6, 7, 100].map((attempt) => backoff.delay(attempt)),
    [25, 50, 100, 200, 400, 800, 1000, 1000],
  );
});

test('backoff - full jitter spreads delays over the whole range (seeded)', () => {
  let state = 7;
  const random = () => {
    state = (state * 1_103_515_245 + 12_345) % 2 ** 31;
    return state / 2 ** 31;
  };
  const backoff = new Backoff({ initialDelayMs: 100, maxDelayMs: 100, jitter: 'full', random });
  const delays = Array.from({ length: 2000 }, () => backoff.delay(1));
  const mean = delays.reduce((sum, delay) => sum + delay, 0) / delays.length;
  assert.ok(mean > 40 && mean < 60, `mean ${mean} not near 50`);
  assert.ok(Math.min(...delays) < 5 && Math.max(...delays) > 95);
});

test('backoff - decorrelated jitter grows from the previous delay', () => {
  const backoff = new Backoff({
    initialDelayMs: 10,
    maxDelayMs: 10_000,
    jitter: 'decorrelated',
    random: () => 0.999,
  });
  let previous: number | undefined;
  const delays: number[] = [];
  for (let attempt = 1; attempt <= 6; attempt++) {
    previous = backoff.delay(attempt, previous);
    delays.push(previous);
  }
  for (let i = 1; i < delays.length; i++) assert.ok((delays[i] as number) > (delays[i - 1] as number));
  assert.ok((delays.at(-1) as number) <= 10_000);
});

test('backoff - bad options are RangeErrors', () => {
  assert.throws(() => new Backoff({ initialDelayMs: 0 }), RangeError);
  assert.throws(() => new Backoff({ initialDelayMs: 100, maxDelayMs: 50 }), RangeError);
  assert.throws(() => new Backoff({ jitter: 'sideways' as JitterKind }), RangeError);
  assert.throws(() => new Backoff().delay(0), RangeError);
});
