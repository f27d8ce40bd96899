/**
 * `FallbackLimiterStore`: cluster-wide limits that survive a Redis outage. Decisions go to the
 * shared store (Redis) through a circuit breaker with a short per-call timeout; when a call fails
 * or times out, or the breaker is open, this server decides from a local in-memory store holding
 * its share of each limit (limit / N, N = the number of api servers, read at decision time so it
 * follows discovery). Availability over exactness, as DESIGN.md asks of the api tier.
 *
 * Guarantees:
 * - Every call gets a decision within about `timeoutMs` (plus local work), whatever Redis does:
 *   refused connections fail at once, a paused server costs at most one timeout per call until
 *   the breaker opens, and then no call waits on Redis at all.
 * - While Redis is healthy it alone decides; local shares only ever see fallback traffic, and
 *   they are dropped when the breaker closes again, so Redis is authoritative from then on.
 * - During a fallback the cluster admits at most about N · ceil(limit / N) per window or burst
 *   (see local-share.ts) — each server enforces its share, nothing more is coordinated.
 * - Metrics say which backend decided (`pixelfleet_ratelimit_decisions_total{backend}`), whether
 *   the fallback is active now, and the breaker state (`pixelfleet_circuit_breaker_state`,
 *   dependency "redis").
 * A decision abandoned at the timeout may still reach Redis later and consume quota there: the
 * error is towards refusing, never towards over-admitting.
 */
import { Registry } from 'prom-client';
import { isPixelfleetError, PixelfleetError } from '../../../errors/index.ts';
import {
  type BreakerState,
  breakerStateValue,
  CircuitBreaker,
  type CircuitBreakerOptions,
} from '../../remote/index.ts';
import { MemoryLimiterStore } from '../memory-store.ts';
import type { Decision, LimiterAlgorithm, LimiterStore } from '../types.ts';
import { localShareOf } from './local-share.ts';
import { createLimiterStoreMetrics, type LimiterBackend, type LimiterStoreMetrics } from './metrics.ts';

/** A shared store that can say up front which algorithms it runs (RedisLimiterStore can). */
export interface SharedLimiterStore extends LimiterStore {
  supports?(algorithm: LimiterAlgorithm<unknown>): boolean;
}

export interface FallbackLimiterStoreOptions {
  /** The cluster-wide store, normally a `RedisLimiterStore`. */
  shared: SharedLimiterStore;
  /**
   * How many api servers share each limit: a number, or a function read at every local decision
   * (the cluster passes one backed by discovery). Values below 1 count as 1.
   */
  shareCount: number | (() => number);
  /** Give up on one shared decision after this long and decide locally (ms). Default 100. */
  timeoutMs?: number;
  /** The breaker in front of the shared store. Default: Hystrix (20 calls / 50 % / 10 s / 5 s open). */
  breaker?: CircuitBreakerOptions;
  /**
   * Holds the local shares' state; this store owns it and clears it whenever the breaker closes,
   * so do not share it with other limiters. Default: a new `MemoryLimiterStore`.
   */
  local?: MemoryLimiterStore;
  /** Where the metrics live. Default: a registry of its own (see `metrics`). */
  registry?: Registry;
  /** The `dependency` label of the breaker metrics. Default `redis`. */
  dependency?: string;
  /** Told about each shared-store failure that was answered locally. Default: ignored. */
  onFallback?: (error: unknown) => void;
}

/** Thrown internally when a shared call outlives `timeoutMs`. */
class SharedStoreTimeout extends PixelfleetError {}

export class FallbackLimiterStore implements LimiterStore {
  readonly breaker: CircuitBreaker;
  readonly metrics: LimiterStoreMetrics;
  readonly timeoutMs: number;
  readonly #shared: SharedLimiterStore;
  readonly #local: MemoryLimiterStore;
  readonly #shareCount: () => number;
  readonly #dependency: string;
  readonly #onFallback: (error: unknown) => void;
  /** Each algorithm's share for the server count it was last built for. */
  readonly #shares = new WeakMap<object, { servers: number; share: LimiterAlgorithm<unknown> }>();
  #lastBackend: LimiterBackend = 'redis';

  constructor(options: FallbackLimiterStoreOptions) {
    if (options.shared === undefined || typeof options.shared.apply !== 'function') {
      throw new RangeError('shared must be a LimiterStore');
    }
    const shareCount = options.shareCount;
    if (typeof shareCount === 'number') {
      if (!Number.isFinite(shareCount) || shareCount < 1) {
        throw new RangeError(`shareCount must be at least 1, got ${shareCount}`);
      }
      this.#shareCount = () => shareCount;
    } else if (typeof shareCount === 'function') {
      this.#shareCount = shareCount;
    } else {
      throw new RangeError('shareCount must be a number or a function returning one');
    }
    this.timeoutMs = options.timeoutMs ?? 100;
    if (!Number.isFinite(this.timeoutMs) || this.timeoutMs <= 0) {
      throw new RangeError(`timeoutMs must be a positive number, got ${this.timeoutMs}`);
    }
    this.#shared = options.shared;
    this.#local = options.local ?? new MemoryLimiterStore();
    this.#dependency = options.dependency ?? 'redis';
    this.#onFallback = options.onFallback ?? (() => {});
    this.metrics = createLimiterStoreMetrics(options.registry ?? new Registry());
    const userStateChange = options.breaker?.onStateChange;
    this.breaker = new CircuitBreaker({
      ...options.breaker,
      onStateChange: (from, to) => {
        this.#onBreakerChange(to);
        userStateChange?.(from, to);
      },
    });
    this.metrics.remote.breakerState.set({ dependency: this.#dependency }, breakerStateValue.closed);
    this.metrics.fallbackActive.set(0);
  }

  /** Which backend made the latest decision. */
  get lastBackend(): LimiterBackend {
    return this.#lastBackend;
  }

  /** The breaker state, as its gauge reports it. */
  get breakerState(): BreakerState {
    return this.breaker.state;
  }

  async apply<State>(key: string, algorithm: LimiterAlgorithm<State>, cost: number): Promise<Decision> {
    if (this.#shared.supports?.(algorithm as LimiterAlgorithm<unknown>) === false) {
      // A configuration mistake must surface, not hide behind local decisions.
      return this.#shared.apply(key, algorithm, cost);
    }
    const permit = this.breaker.tryAcquire();
    if (permit === undefined) return this.#decideLocally(key, algorithm, cost);
    let decision: Decision;
    try {
      decision = await this.#withTimeout(this.#shared.apply(key, algorithm, cost));
    } catch (error) {
      if (isPixelfleetError(error, 'PF_ERR_CONFIG') || error instanceof RangeError) {
        permit.release();
        throw error;
      }
      permit.failure();
      this.metrics.redisFailures.inc({ reason: error instanceof SharedStoreTimeout ? 'timeout' : 'error' });
      this.#onFallback(error);
      return this.#decideLocally(key, algorithm, cost);
    }
    permit.success();
    this.#record('redis', decision);
    return decision;
  }

  /** Resets both the shared and the local state; fails if the shared store cannot be reached. */
  async reset(policy: string, key: string): Promise<void> {
    this.#local.resetSync(policy, key);
    await this.#withTimeout(this.#shared.reset(policy, key));
  }

  #decideLocally<State>(key: string, algorithm: LimiterAlgorithm<State>, cost: number): Decision {
    const decision = this.#local.applySync(key, this.#shareOf(algorithm), cost);
    this.#record('local', decision);
    return decision;
  }

  #shareOf<State>(algorithm: LimiterAlgorithm<State>): LimiterAlgorithm<State> {
    const counted = Number(this.#shareCount());
    const servers = Number.isFinite(counted) && counted >= 1 ? Math.floor(counted) : 1;
    const cached = this.#shares.get(algorithm);
    if (cached !== undefined && cached.servers === servers) return cached.share as LimiterAlgorithm<State>;
    const share = localShareOf(algorithm, servers);
    this.#shares.set(algorithm, { servers, share: share as LimiterAlgorithm<unknown> });
    return share;
  }

  #record(backend: LimiterBackend, decision: Decision): void {
    this.metrics.decisions.inc({ backend, outcome: decision.allowed ? 'allowed' : 'denied' });
    if (backend !== this.#lastBackend) {
      this.#lastBackend = backend;
      this.metrics.fallbackActive.set(backend === 'local' ? 1 : 0);
    }
  }

  #onBreakerChange(to: BreakerState): void {
    this.metrics.remote.breakerState.set({ dependency: this.#dependency }, breakerStateValue[to]);
    this.metrics.remote.breakerTransitions.inc({ dependency: this.#dependency, to });
    // Redis is authoritative again: local shares must not linger to decide a later outage.
    if (to === 'closed') this.#local.clear();
  }

  #withTimeout<T>(call: Promise<T>): Promise<T> {
    // One promise and one timer per call, no Promise.race: this sits on every decision's path.
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        reject(
          new SharedStoreTimeout(
            'PF_ERR_REDIS_UNAVAILABLE',
            `the shared rate limit store did not answer within ${this.timeoutMs} ms`,
          ),
        );
      }, this.timeoutMs);
      // A call abandoned at the timeout still settles later; settling twice is a no-op.
      call.then(
        (value) => {
          clearTimeout(timer);
          resolve(value);
        },
        (error: unknown) => {
          clearTimeout(timer);
          reject(error);
        },
      );
    });
  }
}
