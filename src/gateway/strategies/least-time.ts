/**
 * Least time with the power of two random choices: sample two distinct candidates at random
 * and send to the one with the lower expected wait, latency EWMA × (in flight + 1) / weight.
 *
 * Why two random choices rather than the global minimum: every gateway (and every pick within
 * one latency sample) would otherwise herd onto the same "best" upstream until its EWMA catches
 * up; sampling two keeps most of the benefit (exponentially better maximum load than random)
 * without the herd. An upstream with no sample yet is costed at the mean of the others, so a
 * newcomer is tried soon but not flooded (and wins a tie against a known one: when the only known
 * upstream is slow, the mean is its own latency). Failures are observed as at least the current EWMA: a
 * fast error (a refused connection, a 503) must never make an upstream look faster.
 */
import type { BalancingStrategy, Candidate } from './types.ts';

export interface LeastTimeOptions {
  /** Weight of the newest sample in the EWMA (0 < α ≤ 1, default 0.3). */
  smoothing?: number;
  random?: () => number;
}

export class LeastTime implements BalancingStrategy {
  readonly name = 'least-time';
  readonly #inflight = new Map<string, number>();
  readonly #latencyEwma = new Map<string, number>();
  readonly #smoothing: number;
  readonly #random: () => number;

  constructor(options: LeastTimeOptions = {}) {
    const smoothing = options.smoothing ?? 0.3;
    if (!(smoothing > 0 && smoothing <= 1)) throw new RangeError('smoothing must be in (0, 1]');
    this.#smoothing = smoothing;
    this.#random = options.random ?? Math.random;
  }

  pick(candidates: readonly Candidate[]): Candidate | undefined {
    if (candidates.length <= 1) return candidates[0];
    const first = Math.floor(this.#random() * candidates.length) % candidates.length;
    // The second index is drawn from the other n-1 so the two choices are always distinct.
    let second = Math.floor(this.#random() * (candidates.length - 1)) % (candidates.length - 1);
    if (second >= first) second += 1;
    const a = candidates[first]!;
    const b = candidates[second]!;
    const fallback = this.#meanLatency(candidates);
    const costA = this.#cost(a, fallback);
    const costB = this.#cost(b, fallback);
    if (costA === costB) {
      // An upstream without a sample ties with any costing the mean: try the newcomer, so it gets
      // its first sample, rather than the one already known (which may be the slow one).
      const aKnown = this.#latencyEwma.has(a.id);
      if (aKnown !== this.#latencyEwma.has(b.id)) return aKnown ? b : a;
      return this.#random() < 0.5 ? a : b;
    }
    return costA < costB ? a : b;
  }

  /** The latency EWMA of `id` in ms, undefined before its first sample. */
  latencyEwmaMs(id: string): number | undefined {
    return this.#latencyEwma.get(id);
  }

  requestStarted(id: string): void {
    this.#inflight.set(id, (this.#inflight.get(id) ?? 0) + 1);
  }

  requestFinished(id: string, latencyMs: number, failed: boolean): void {
    const count = this.#inflight.get(id);
    if (count !== undefined) this.#inflight.set(id, Math.max(0, count - 1));
    if (!Number.isFinite(latencyMs) || latencyMs < 0) return;
    const previous = this.#latencyEwma.get(id);
    const sample = failed && previous !== undefined ? Math.max(latencyMs, previous) : latencyMs;
    this.#latencyEwma.set(
      id,
      previous === undefined ? sample : previous + this.#smoothing * (sample - previous),
    );
  }

  forget(id: string): void {
    this.#inflight.delete(id);
    this.#latencyEwma.delete(id);
  }

  #cost(candidate: Candidate, fallbackLatency: number): number {
    const latency = this.#latencyEwma.get(candidate.id) ?? fallbackLatency;
    // A floor keeps a 0 ms EWMA (sub-millisecond loopback) from ignoring the in-flight count.
    return (Math.max(latency, 0.001) * ((this.#inflight.get(candidate.id) ?? 0) + 1)) / candidate.weight;
  }

  #meanLatency(candidates: readonly Candidate[]): number {
    let sum = 0;
    let known = 0;
    for (const candidate of candidates) {
      const latency = this.#latencyEwma.get(candidate.id);
      if (latency !== undefined) {
        sum += latency;
        known += 1;
      }
    }
    return known === 0 ? 1 : sum / known;
  }
}
