/**
 * The in-process limiter store: per-(policy, key) algorithm state in `Map`s, the default engine
 * and the synchronous fast path.
 *
 * Memory stays bounded two ways, for two different reasons:
 * - expiry (exact): every step reports when its state becomes indistinguishable from a fresh
 *   key; such state is ignored on read and swept away incrementally, so dropping it never changes
 *   a decision. Idle keys therefore cost nothing once their quota has fully recovered.
 * - LRU cap (lenient): beyond `maxKeys` live keys under one policy, the least recently used one is
 *   evicted even if its quota has not recovered, which forgives that client early. This is the
 *   price of a hard memory bound under a flood of distinct keys (key spraying); size `maxKeys`
 *   above the number of keys active within one window so it never bites in normal operation
 *   (`evictions` counts the times it did).
 * A `Map` iterates in insertion order, so re-inserting a key when it is used keeps the least
 * recently used keys at the front: LRU without a linked list, and the front is also where expired
 * keys collect, which is where the incremental sweep looks. Re-inserting on every hit costs a
 * hash-table delete and insert and churns the table, so a key is only moved once it has drifted
 * into the oldest quarter of the order (about one hit in four under uniform load): a key used at
 * least once per maxKeys / 4 insertions is never evicted, and the rest leave least recent first.
 */
import type { Clock, Decision, LimiterAlgorithm, SyncLimiterStore } from './types.ts';
import { requirePositiveInteger } from './validation.ts';

export interface MemoryLimiterStoreOptions {
  /** Time source (default: `Date`). */
  clock?: Clock;
  /** Most keys held per policy before the least recently used is evicted (default 100 000). */
  maxKeys?: number;
  /**
   * Keys inspected at the LRU end per step, on average (default 2): expired ones are dropped, the
   * first live one stops the sweep. Reclaims idle keys with no timer; `sweep()` does a full pass.
   */
  sweepPerStep?: number;
}

interface Entry {
  state: unknown;
  expiresAt: number;
  /** Value of the namespace's insertion counter when this entry was last (re)inserted. */
  position: number;
}

/** One policy's keys in LRU order, with the count of insertions that orders them. */
interface Namespace {
  entries: Map<string, Entry>;
  insertions: number;
}

/** Steps between incremental sweeps: batching amortises creating the Map iterator. */
const SWEEP_INTERVAL = 16;

export class MemoryLimiterStore implements SyncLimiterStore {
  readonly #clock: Clock;
  readonly #maxKeys: number;
  readonly #sweepBatch: number;
  readonly #namespaces = new Map<string, Namespace>();
  #steps = 0;
  #evictions = 0;

  constructor(options: MemoryLimiterStoreOptions = {}) {
    this.#clock = options.clock ?? Date;
    this.#maxKeys = requirePositiveInteger('maxKeys', options.maxKeys ?? 100_000);
    this.#sweepBatch = requirePositiveInteger('sweepPerStep', options.sweepPerStep ?? 2) * SWEEP_INTERVAL;
  }

  applySync<State>(key: string, algorithm: LimiterAlgorithm<State>, cost: number): Decision {
    const now = this.#clock.now();
    const namespace = this.#namespaceOf(algorithm.policy);
    const entries = namespace.entries;
    const entry = entries.get(key);
    const state = entry !== undefined && entry.expiresAt > now ? (entry.state as State) : undefined;
    const step = algorithm.step(state, now, cost);
    if (step.expiresAt <= now) {
      // Indistinguishable from a fresh key: hold nothing.
      if (entry !== undefined) entries.delete(key);
    } else if (entry !== undefined) {
      entry.state = step.state;
      entry.expiresAt = step.expiresAt;
      if (namespace.insertions - entry.position >= entries.size - (entries.size >>> 2)) {
        entries.delete(key);
        entry.position = namespace.insertions++;
        entries.set(key, entry);
      }
    } else {
      entries.set(key, { state: step.state, expiresAt: step.expiresAt, position: namespace.insertions++ });
      if (entries.size > this.#maxKeys) this.#evictLeastRecentlyUsed(entries, now);
    }
    this.#steps += 1;
    if (this.#steps % SWEEP_INTERVAL === 0) this.#sweepFront(entries, now, this.#sweepBatch);
    return step.decision;
  }

  apply<State>(key: string, algorithm: LimiterAlgorithm<State>, cost: number): Promise<Decision> {
    try {
      return Promise.resolve(this.applySync(key, algorithm, cost));
    } catch (error) {
      return Promise.reject(error);
    }
  }

  resetSync(policy: string, key: string): void {
    this.#namespaces.get(policy)?.entries.delete(key);
  }

  reset(policy: string, key: string): Promise<void> {
    this.resetSync(policy, key);
    return Promise.resolve();
  }

  /** Keys currently held over all policies (live, or expired and not yet swept). */
  get size(): number {
    let size = 0;
    for (const namespace of this.#namespaces.values()) size += namespace.entries.size;
    return size;
  }

  /** Live keys dropped by the LRU cap before their quota recovered (a sizing signal). */
  get evictions(): number {
    return this.#evictions;
  }

  /** Drop every expired key now (e.g. from a timer); returns how many were dropped. */
  sweep(): number {
    const now = this.#clock.now();
    let dropped = 0;
    for (const { entries } of this.#namespaces.values()) {
      for (const [key, entry] of entries) {
        if (entry.expiresAt <= now) {
          entries.delete(key);
          dropped += 1;
        }
      }
    }
    return dropped;
  }

  clear(): void {
    this.#namespaces.clear();
  }

  #namespaceOf(policy: string): Namespace {
    let namespace = this.#namespaces.get(policy);
    if (namespace === undefined) {
      namespace = { entries: new Map(), insertions: 0 };
      this.#namespaces.set(policy, namespace);
    }
    return namespace;
  }

  #evictLeastRecentlyUsed(entries: Map<string, Entry>, now: number): void {
    const oldest = entries.entries().next();
    if (oldest.done === true) return;
    const [key, entry] = oldest.value;
    entries.delete(key);
    if (entry.expiresAt > now) this.#evictions += 1;
  }

  #sweepFront(entries: Map<string, Entry>, now: number, budget: number): void {
    let inspected = 0;
    for (const [key, entry] of entries) {
      if (entry.expiresAt > now || inspected >= budget) return;
      entries.delete(key);
      inspected += 1;
    }
  }
}
