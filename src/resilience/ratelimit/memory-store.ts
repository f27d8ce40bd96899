/**
 * The in-process limiter store: per-key algorithm state in one `Map`, the default engine and the
 * synchronous fast path.
 *
 * Memory stays bounded two ways, for two different reasons:
 * - expiry (exact): every step reports when its state becomes indistinguishable from a fresh
 *   key; such state is ignored on read and swept away incrementally, so dropping it never changes
 *   a decision. Idle keys therefore cost nothing once their quota has fully recovered.
 * - LRU cap (lenient): beyond `maxKeys` live keys the least recently used one is evicted even if
 *   its quota has not recovered, which forgives that client early. This is the price of a hard
 *   memory bound under a flood of distinct keys (key spraying); size `maxKeys` above the number of
 *   keys active within one window so it never bites in normal operation.
 * A `Map` iterates in insertion order, so deleting and re-inserting a key on every use keeps the
 * least recently used keys at the front: O(1) LRU without a linked list, and the front is also
 * where expired keys collect, which is where the incremental sweep looks.
 */
import type { Clock, Decision, LimiterAlgorithm, SyncLimiterStore } from './types.ts';
import { requirePositiveInteger } from './validation.ts';

export interface MemoryLimiterStoreOptions {
  /** Time source (default: `Date`). */
  clock?: Clock;
  /** Most keys held at once before the least recently used is evicted (default 100 000). */
  maxKeys?: number;
  /**
   * Keys inspected at the LRU end on every step (default 2): expired ones are dropped, the first
   * live one stops the sweep. Keeps reclaiming idle keys at O(1) per step with no timer; call
   * `sweep()` for a full pass.
   */
  sweepPerStep?: number;
}

interface Entry {
  state: unknown;
  expiresAt: number;
}

export class MemoryLimiterStore implements SyncLimiterStore {
  readonly #clock: Clock;
  readonly #maxKeys: number;
  readonly #sweepPerStep: number;
  readonly #entries = new Map<string, Entry>();
  #evictions = 0;

  constructor(options: MemoryLimiterStoreOptions = {}) {
    this.#clock = options.clock ?? Date;
    this.#maxKeys = requirePositiveInteger('maxKeys', options.maxKeys ?? 100_000);
    this.#sweepPerStep = requirePositiveInteger('sweepPerStep', options.sweepPerStep ?? 2);
  }

  applySync<State>(key: string, algorithm: LimiterAlgorithm<State>, cost: number): Decision {
    const now = this.#clock.now();
    const entries = this.#entries;
    const entry = entries.get(key);
    const state = entry !== undefined && entry.expiresAt > now ? (entry.state as State) : undefined;
    const step = algorithm.step(state, now, cost);
    if (entry !== undefined) entries.delete(key);
    if (step.expiresAt > now) {
      if (entry !== undefined) {
        entry.state = step.state;
        entry.expiresAt = step.expiresAt;
        entries.set(key, entry);
      } else {
        entries.set(key, { state: step.state, expiresAt: step.expiresAt });
        if (entries.size > this.#maxKeys) this.#evictLeastRecentlyUsed(now);
      }
    }
    this.#sweep(now, this.#sweepPerStep);
    return step.decision;
  }

  apply<State>(key: string, algorithm: LimiterAlgorithm<State>, cost: number): Promise<Decision> {
    try {
      return Promise.resolve(this.applySync(key, algorithm, cost));
    } catch (error) {
      return Promise.reject(error);
    }
  }

  /** Keys currently held (live or not yet swept). */
  get size(): number {
    return this.#entries.size;
  }

  /** Live keys dropped by the LRU cap before their quota recovered (a sizing signal). */
  get evictions(): number {
    return this.#evictions;
  }

  /** Drop every expired key now (e.g. from a timer); returns how many were dropped. */
  sweep(): number {
    const now = this.#clock.now();
    let dropped = 0;
    for (const [key, entry] of this.#entries) {
      if (entry.expiresAt <= now) {
        this.#entries.delete(key);
        dropped += 1;
      }
    }
    return dropped;
  }

  resetSync(key: string): void {
    this.#entries.delete(key);
  }

  reset(key: string): Promise<void> {
    this.#entries.delete(key);
    return Promise.resolve();
  }

  clear(): void {
    this.#entries.clear();
  }

  #evictLeastRecentlyUsed(now: number): void {
    const oldest = this.#entries.entries().next();
    if (oldest.done === true) return;
    const [key, entry] = oldest.value;
    this.#entries.delete(key);
    if (entry.expiresAt > now) this.#evictions += 1;
  }

  #sweep(now: number, budget: number): void {
    const iterator = this.#entries.entries();
    for (let inspected = 0; inspected < budget; inspected += 1) {
      const next = iterator.next();
      if (next.done === true) return;
      const [key, entry] = next.value;
      if (entry.expiresAt > now) return;
      this.#entries.delete(key);
    }
  }
}
