/**
 * The rate limiting contract: what a limiter answers (`Decision`), the two faces a caller uses
 * (`RateLimiter`, synchronous and in-process; `AsyncRateLimiter`, over any store), the shape of an
 * algorithm as a pure step function (`LimiterAlgorithm`), and the store that runs one step
 * atomically per key (`LimiterStore`).
 *
 * The split exists so the same algorithms can run in memory today and on Redis (Lua scripts)
 * later: an algorithm is data in, data out — no timers, no closures over mutable state — and a
 * store owns both the state and the clock. A remote store may read the clock on the server that
 * holds the state (Redis `TIME`), so every api server sharing a limit agrees on "now".
 */

/** A source of wall-clock time in milliseconds; injected so tests drive time by hand. */
export interface Clock {
  now(): number;
}

/** What a quota is counted in (the `qu` parameter of `RateLimit-Policy`). */
export type QuotaUnit = 'requests' | 'content-bytes' | 'concurrent-requests';

/**
 * The answer to one `take`. Carries everything needed to render the IETF `RateLimit`,
 * `RateLimit-Policy` and `Retry-After` header fields (see `headers.ts`).
 */
export interface Decision {
  /** True when the request is admitted (and its cost was consumed). */
  allowed: boolean;
  /** The quota of the policy: burst capacity, bucket capacity, or requests per window. */
  limit: number;
  /** Whole quota units still available right now, after this decision. */
  remaining: number;
  /**
   * The effective window: milliseconds until more than `remaining` becomes available, i.e. the
   * time within which the caller can use no more than `remaining`. 0 when the quota is full.
   */
  resetMs: number;
  /**
   * When denied: milliseconds until a request of the same cost would be admitted, assuming no
   * other traffic (`Infinity` when the cost exceeds the limit and never can be). 0 when allowed.
   */
  retryAfterMs: number;
  /** The policy name, as advertised in `RateLimit-Policy`. */
  policy: string;
  /**
   * The time window the quota refers to: the window length, or for buckets the time to refill an
   * empty bucket. Absent for quotas without a time window (concurrency).
   */
  windowMs?: number;
  /** Defaults to `requests` when absent. */
  quotaUnit?: QuotaUnit;
  /**
   * Leaky bucket used as a queue only: how long to hold this admitted request before processing
   * it so the output flows at the drain rate. 0 (or absent) for every other algorithm.
   */
  delayMs?: number;
}

/** Synchronous, in-process limiter: the fast path for one api server's local limits. */
export interface RateLimiter {
  /** Ask to spend `cost` (default 1) units of `key`'s quota; cost 0 only reports the state. */
  take(key: string, cost?: number): Decision;
  /** Forget `key`'s state, restoring its full quota. */
  reset(key: string): void;
}

/** The same limiter over a store that may be remote (Redis), so every call is a round trip. */
export interface AsyncRateLimiter {
  take(key: string, cost?: number): Promise<Decision>;
  reset(key: string): Promise<void>;
}

/** The result of one algorithm step for one key. */
export interface LimiterStep<State> {
  decision: Decision;
  /** The state to keep for the key. */
  state: State;
  /**
   * Epoch ms from which `state` is indistinguishable from no state at all (the bucket is full
   * again, the window has passed). A store may drop the key from then on without changing any
   * future decision; a Redis store sets it as the key's `PEXPIREAT`.
   */
  expiresAt: number;
}

/**
 * A rate limiting algorithm as a pure function of (previous state, now, cost).
 *
 * Rules every algorithm keeps, so a store can run it anywhere:
 * - `step` is deterministic and has no side effects; it never reads a clock.
 * - `State` is plain data (numbers, arrays of numbers): JSON-serialisable, no class instances.
 * - `undefined` state means "never seen or expired" and behaves as a full quota.
 * - `name` and `parameters` identify the algorithm completely, so a remote store can run an
 *   equivalent script (`name` selects the script, `parameters` are its arguments).
 */
export interface LimiterAlgorithm<State> {
  /** Stable algorithm identifier, e.g. `token-bucket`. */
  readonly name: string;
  /** Policy name advertised in headers; a store keeps state per (policy, key). */
  readonly policy: string;
  /** Numeric configuration, enough to rebuild the algorithm elsewhere. */
  readonly parameters: Readonly<Record<string, number>>;
  step(state: State | undefined, now: number, cost: number): LimiterStep<State>;
}

/**
 * Runs one algorithm step for one key atomically: read state, step, write state with its expiry,
 * return the decision — with no other step for the same key interleaved. State is kept per
 * (policy, key): the store lays out its own keys (a Redis store: `<prefix>:<policy>:<key>`), so
 * limiters with different policy names can share one store. The store chooses the clock.
 * Nothing in this interface assumes the state lives in this process.
 */
export interface LimiterStore {
  apply<State>(key: string, algorithm: LimiterAlgorithm<State>, cost: number): Promise<Decision>;
  /** Forget a key's state under `policy`, restoring its full quota (operator reset; Redis `DEL`). */
  reset(policy: string, key: string): Promise<void>;
}

/** A store that can also answer synchronously because its state is in this process. */
export interface SyncLimiterStore extends LimiterStore {
  applySync<State>(key: string, algorithm: LimiterAlgorithm<State>, cost: number): Decision;
  resetSync(policy: string, key: string): void;
}
