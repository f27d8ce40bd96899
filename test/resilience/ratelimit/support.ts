/**
 * Test support for the rate limiter cores: a fake clock, seeded random arrival sequences
 * (fast-check), and window analyses that measure what a limiter actually admitted.
 */
import fc from 'fast-check';
import type { Clock, LimiterAlgorithm } from '../../../src/resilience/ratelimit/index.ts';

/** A clock the test moves by hand; limiters never see real time. */
export class FakeClock implements Clock {
  #now: number;
  constructor(start = START) {
    this.#now = start;
  }
  now(): number {
    return this.#now;
  }
  set(at: number): void {
    this.#now = at;
  }
  advance(milliseconds: number): void {
    this.#now += milliseconds;
  }
}

/** A realistic epoch-ms origin, so window alignment is exercised with large timestamps. */
export const START = 1_767_225_600_000;

/** Seeds are fixed so every run replays the same sequences; fast-check prints the failing one. */
export const SEED = 20_260_601;

export interface Arrival {
  at: number;
  key: string;
  cost: number;
}

export interface ArrivalOptions {
  minLength?: number;
  maxLength?: number;
  keys?: readonly string[];
  maxCost?: number;
}

/**
 * Long arrival sequences: bursts (zero gaps), busy stretches (a few ms apart) and idle gaps long
 * enough for buckets to refill and windows to pass, spread over a few keys.
 */
export function arrivalsArbitrary(options: ArrivalOptions = {}): fc.Arbitrary<Arrival[]> {
  const keys = options.keys ?? ['alpha', 'beta', 'gamma'];
  const maxCost = options.maxCost ?? 3;
  const gap = fc.oneof(
    { arbitrary: fc.constant(0), weight: 3 },
    { arbitrary: fc.integer({ min: 1, max: 25 }), weight: 6 },
    { arbitrary: fc.integer({ min: 26, max: 400 }), weight: 2 },
    { arbitrary: fc.integer({ min: 401, max: 6000 }), weight: 1 },
  );
  const cost = fc.oneof(
    { arbitrary: fc.constant(1), weight: 6 },
    { arbitrary: fc.integer({ min: 1, max: maxCost }), weight: 1 },
  );
  const step = fc.record({ gap, key: fc.constantFrom(...keys), cost });
  return fc
    .integer({ min: options.minLength ?? 800, max: options.maxLength ?? 2500 })
    .chain((length) => fc.array(step, { minLength: length, maxLength: length }))
    .map((steps) => {
      let at = START + 7;
      return steps.map((item) => {
        at += item.gap;
        return { at, key: item.key, cost: item.cost };
      });
    });
}

/** Admitted (time, cost) pairs of one key, in arrival order. */
export interface Admissions {
  times: number[];
  costs: number[];
}

export function groupByKey(admitted: readonly Arrival[]): Map<string, Admissions> {
  const byKey = new Map<string, Admissions>();
  for (const arrival of admitted) {
    let entry = byKey.get(arrival.key);
    if (entry === undefined) {
      entry = { times: [], costs: [] };
      byKey.set(arrival.key, entry);
    }
    entry.times.push(arrival.at);
    entry.costs.push(arrival.cost);
  }
  return byKey;
}

/** Largest admitted cost in any half-open window [a, a + windowMs), wherever it starts. */
export function maxInSlidingWindow(admissions: Admissions, windowMs: number): number {
  const { times, costs } = admissions;
  let best = 0;
  let sum = 0;
  let tail = 0;
  // Two pointers: the maximum is reached by a window starting at some admission time.
  for (let head = 0; head < times.length; head += 1) {
    sum += costs[head]!;
    while (times[head]! >= times[tail]! + windowMs) {
      sum -= costs[tail]!;
      tail += 1;
    }
    best = Math.max(best, sum);
  }
  return best;
}

/** Largest admitted cost within one window aligned to multiples of `windowMs`. */
export function maxInAlignedWindow(admissions: Admissions, windowMs: number): number {
  const perWindow = new Map<number, number>();
  admissions.times.forEach((at, index) => {
    const window = Math.floor(at / windowMs);
    perWindow.set(window, (perWindow.get(window) ?? 0) + admissions.costs[index]!);
  });
  return Math.max(0, ...perWindow.values());
}

/**
 * max over admissions i ≤ j of (cost admitted in [t_i, t_j]) - ratePerMs · (t_j - t_i): how far
 * the admissions exceed a pure rate, i.e. the burst actually used. A token bucket must keep this
 * ≤ capacity over every interval. O(n) by keeping the best starting point seen so far.
 */
export function maxBurstOverRate(admissions: Admissions, ratePerMs: number): number {
  const { times, costs } = admissions;
  let best = Number.NEGATIVE_INFINITY;
  let cumulative = 0;
  let bestStart = Number.POSITIVE_INFINITY;
  for (let index = 0; index < times.length; index += 1) {
    // Start term for an interval beginning at admission `index`: cost before it, minus rate · t.
    bestStart = Math.min(bestStart, cumulative - ratePerMs * times[index]!);
    cumulative += costs[index]!;
    best = Math.max(best, cumulative - ratePerMs * times[index]! - bestStart);
  }
  return times.length === 0 ? 0 : best;
}

/**
 * max over admissions i ≤ j with t_j - t_i < windowMs of
 *   cost in [t_i, t_j] - limit · (t_j - t_i) / windowMs,
 * to compare with the sliding window counter's bound (≤ limit).
 */
export function maxOverLinearBound(admissions: Admissions, windowMs: number, limit: number): number {
  const { times, costs } = admissions;
  let best = 0;
  for (let start = 0; start < times.length; start += 1) {
    let sum = 0;
    for (let end = start; end < times.length && times[end]! - times[start]! < windowMs; end += 1) {
      sum += costs[end]!;
      best = Math.max(best, sum - (limit * (times[end]! - times[start]!)) / windowMs);
    }
  }
  return best;
}

/** Runs a pure algorithm directly over arrivals, one state per key (no store in between). */
export function runAlgorithm<State>(
  algorithm: LimiterAlgorithm<State>,
  arrivals: readonly Arrival[],
  onStep: (arrival: Arrival, state: State | undefined, next: State, allowed: boolean) => void,
): void {
  const states = new Map<string, State>();
  for (const arrival of arrivals) {
    const before = states.get(arrival.key);
    const step = algorithm.step(before, arrival.at, arrival.cost);
    states.set(arrival.key, step.state);
    onStep(arrival, before, step.state, step.decision.allowed);
  }
}
