/**
 * Timeouts from observed latency: the per-attempt timeout is `multiplier` × the observed
 * `percentile` (p99 by default) of the last `samples` latencies, clamped to [minMs, maxMs].
 * A fixed timeout is either too tight (spurious failures when the dependency is merely slow
 * today) or too loose (a dead dependency holds callers for seconds); following p99 keeps it
 * just above what healthy calls need.
 *
 * Callers should `observe` the timeout itself when an attempt times out: the true latency is
 * unknown but at least that long, and recording it lets the timeout grow when the dependency
 * slows down instead of timing out every call forever.
 *
 * The percentile is a sort of the ring, so it is cached: a sample above the cached value
 * recomputes it at once (a slowdown raises the timeout on the next call), lower ones only every
 * `samples / 100` samples (a timeout may stay a little high for a few calls, never too low).
 * Sorting on every call cost a worker about 2 % of its CPU.
 *
 * Guarantee: `timeoutMs()` is always a finite number in [minMs, maxMs].
 */
import {
  requireNonNegativeFinite,
  requirePositiveFinite,
  requirePositiveInteger,
  requireRatio,
} from './validation.ts';

export interface LatencyTrackerOptions {
  /** Percentile the timeout follows (default 0.99). */
  percentile?: number;
  /** Ring of most recent latencies kept (default 1000). */
  samples?: number;
  /** Headroom over the percentile (default 2). */
  multiplier?: number;
  /** Floor (default 10 ms) so a fast dependency's hiccup (GC, scheduling) is not a timeout. */
  minMs?: number;
  /** Ceiling (default 10 000 ms). */
  maxMs?: number;
  /** Timeout before `minSamples` latencies were seen (default 1000 ms). */
  initialMs?: number;
  /** Samples needed before the percentile is trusted (default 10). */
  minSamples?: number;
}

export class AdaptiveTimeout {
  readonly percentile: number;
  readonly multiplier: number;
  readonly minMs: number;
  readonly maxMs: number;
  readonly initialMs: number;
  readonly minSamples: number;
  readonly #ring: Float64Array;
  #count = 0;
  #next = 0;
  /** Cached percentile; undefined when it must be computed again. */
  #cached: number | undefined;
  /** Samples below the cached percentile since it was computed. */
  #staleSamples = 0;
  readonly #refreshEvery: number;

  constructor(options: LatencyTrackerOptions = {}) {
    this.percentile = requireRatio('percentile', options.percentile ?? 0.99);
    this.#ring = new Float64Array(requirePositiveInteger('samples', options.samples ?? 1000));
    this.multiplier = requirePositiveFinite('multiplier', options.multiplier ?? 2);
    this.minMs = requireNonNegativeFinite('minMs', options.minMs ?? 10);
    this.maxMs = requirePositiveFinite('maxMs', options.maxMs ?? 10_000);
    if (this.maxMs < this.minMs)
      throw new RangeError(`maxMs (${this.maxMs}) must be ≥ minMs (${this.minMs})`);
    this.initialMs = requirePositiveFinite('initialMs', options.initialMs ?? 1000);
    this.minSamples = requirePositiveInteger('minSamples', options.minSamples ?? 10);
    this.#refreshEvery = Math.max(1, Math.floor(this.#ring.length / 100));
  }

  /** Records one latency in milliseconds; non-finite or negative values are ignored. */
  observe(ms: number): void {
    if (!Number.isFinite(ms) || ms < 0) return;
    this.#ring[this.#next] = ms;
    this.#next = (this.#next + 1) % this.#ring.length;
    this.#count = Math.min(this.#count + 1, this.#ring.length);
    if (this.#cached === undefined) return;
    if (ms > this.#cached || ++this.#staleSamples >= this.#refreshEvery) this.#cached = undefined;
  }

  /** The observed percentile (nearest rank), or undefined before `minSamples` latencies. */
  percentileMs(): number | undefined {
    if (this.#count < this.minSamples) return undefined;
    if (this.#cached === undefined) {
      const sorted = this.#ring.slice(0, this.#count).sort();
      const rank = Math.max(1, Math.ceil(this.percentile * this.#count));
      this.#cached = sorted[rank - 1] as number;
      this.#staleSamples = 0;
    }
    return this.#cached;
  }

  timeoutMs(): number {
    const observed = this.percentileMs();
    const raw = observed === undefined ? this.initialMs : observed * this.multiplier;
    return Math.min(this.maxMs, Math.max(this.minMs, raw));
  }
}
