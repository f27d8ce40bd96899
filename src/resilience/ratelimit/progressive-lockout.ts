/**
 * Progressive lockout: repeated failures from one client (failed API-key attempts from one
 * address) lock that client out for exponentially growing periods, capped, and the failure count
 * decays during quiet time.
 *
 * Guarantee: after `freeFailures` failures, the n-th further failure locks the client out for
 * min(maxLockoutMs, baseLockoutMs · multiplier^(n-1)); each full `decayMs` without a failure
 * forgives one failure, so an honest client that mistyped a key recovers on its own and a
 * guesser's attempts per hour fall geometrically. Trade-off: a lockout keyed by address can lock
 * out honest clients behind the same NAT; keep `freeFailures` generous.
 *
 * Use: `check` before verifying a key (refuse without verifying while locked, so a locked client
 * cannot keep guessing), `recordFailure` only when a verification ran and failed. There is
 * deliberately no "success resets" call: an attacker holding one valid key could interleave it to
 * wipe the count while guessing others. `reset` is for operators.
 *
 * Built as a `LimiterAlgorithm` so it runs on any `LimiterStore` (memory now, Redis later) with
 * the same bounded memory: a client's state expires once its lockout has ended and every failure
 * is forgiven.
 */
import { MemoryLimiterStore } from './memory-store.ts';
import type { Clock, Decision, LimiterAlgorithm, LimiterStep, SyncLimiterStore } from './types.ts';
import { requirePolicyName, requirePositiveFinite, requirePositiveInteger } from './validation.ts';

export interface ProgressiveLockoutOptions {
  /** Failures tolerated before the first lockout (default 5). */
  freeFailures?: number;
  /** The first lockout (default 1 s). */
  baseLockoutMs?: number;
  /** Growth factor from one lockout to the next, > 1 (default 2). */
  multiplier?: number;
  /** The longest lockout (default 15 min). */
  maxLockoutMs?: number;
  /** Quiet time that forgives one failure (default 10 min). */
  decayMs?: number;
  /** Policy name for headers and store keys (default `lockout`). */
  policy?: string;
}

export interface ProgressiveLockoutState {
  /** Failures counted as of `lastFailureAt` (before decay). */
  failures: number;
  lastFailureAt: number;
  /** Epoch ms the current lockout ends (0: never locked). */
  lockedUntil: number;
}

/** The lockout as a pure step: cost 0 checks, cost n records n failures. */
export class ProgressiveLockoutAlgorithm implements LimiterAlgorithm<ProgressiveLockoutState> {
  readonly name = 'progressive-lockout';
  readonly policy: string;
  readonly parameters: Readonly<{
    freeFailures: number;
    baseLockoutMs: number;
    multiplier: number;
    maxLockoutMs: number;
    decayMs: number;
  }>;
  /** Counting beyond the failure that reaches the cap changes nothing but recovery time. */
  readonly #maxFailures: number;

  constructor(options: ProgressiveLockoutOptions = {}) {
    const freeFailures = options.freeFailures ?? 5;
    if (!Number.isSafeInteger(freeFailures) || freeFailures < 0) {
      throw new RangeError(`freeFailures must be a non-negative integer, got ${String(freeFailures)}`);
    }
    const baseLockoutMs = requirePositiveFinite('baseLockoutMs', options.baseLockoutMs ?? 1000);
    const multiplier = requirePositiveFinite('multiplier', options.multiplier ?? 2);
    if (multiplier <= 1) throw new RangeError(`multiplier must be greater than 1, got ${multiplier}`);
    const maxLockoutMs = requirePositiveFinite('maxLockoutMs', options.maxLockoutMs ?? 15 * 60_000);
    if (maxLockoutMs < baseLockoutMs) {
      throw new RangeError(
        `maxLockoutMs (${maxLockoutMs}) must be at least baseLockoutMs (${baseLockoutMs})`,
      );
    }
    const decayMs = requirePositiveInteger('decayMs', options.decayMs ?? 10 * 60_000);
    this.policy = requirePolicyName(options.policy ?? 'lockout');
    this.parameters = Object.freeze({ freeFailures, baseLockoutMs, multiplier, maxLockoutMs, decayMs });
    let levels = 1;
    while (baseLockoutMs * multiplier ** (levels - 1) < maxLockoutMs) levels += 1;
    this.#maxFailures = freeFailures + levels;
  }

  /** The lockout that the `failures`-th failure starts (0 within the free allowance). */
  lockoutFor(failures: number): number {
    const { freeFailures, baseLockoutMs, multiplier, maxLockoutMs } = this.parameters;
    const level = failures - freeFailures;
    return level <= 0 ? 0 : Math.min(maxLockoutMs, baseLockoutMs * multiplier ** (level - 1));
  }

  step(
    state: ProgressiveLockoutState | undefined,
    now: number,
    cost: number,
  ): LimiterStep<ProgressiveLockoutState> {
    const { freeFailures, decayMs } = this.parameters;
    let failures = 0;
    let lastFailureAt = now;
    let lockedUntil = 0;
    if (state !== undefined) {
      const forgiven = Math.floor(Math.max(0, now - state.lastFailureAt) / decayMs);
      failures = Math.max(0, state.failures - forgiven);
      // Keep the decay clock's phase when nothing is recorded, so checks never delay forgiveness.
      lastFailureAt = state.lastFailureAt + forgiven * decayMs;
      lockedUntil = state.lockedUntil;
    }
    if (cost > 0) {
      failures = Math.min(this.#maxFailures, failures + Math.ceil(cost));
      lastFailureAt = Math.max(now, lastFailureAt);
      const lockout = this.lockoutFor(failures);
      if (lockout > 0) lockedUntil = Math.max(lockedUntil, now + lockout);
    }
    const locked = lockedUntil > now;
    const untilForgiven = failures > 0 ? Math.max(0, lastFailureAt + decayMs - now) : 0;
    const decision: Decision = {
      allowed: !locked,
      limit: freeFailures,
      remaining: Math.max(0, freeFailures - failures),
      resetMs: locked ? lockedUntil - now : untilForgiven,
      retryAfterMs: locked ? lockedUntil - now : 0,
      policy: this.policy,
      windowMs: decayMs,
    };
    const expiresAt = Math.max(lockedUntil, failures > 0 ? lastFailureAt + failures * decayMs : now);
    return { decision, state: { failures, lastFailureAt, lockedUntil }, expiresAt };
  }
}

export interface ProgressiveLockoutLimiterOptions extends ProgressiveLockoutOptions {
  clock?: Clock;
  /** Clients tracked at once in the default in-memory store (default 100 000). */
  maxKeys?: number;
  /** An in-process store to share; by default the lockout gets its own. */
  store?: SyncLimiterStore;
}

/** The in-process lockout: `check` before verifying, `recordFailure` after a failed one. */
export class ProgressiveLockout {
  readonly algorithm: ProgressiveLockoutAlgorithm;
  readonly #store: SyncLimiterStore;

  constructor(options: ProgressiveLockoutLimiterOptions = {}) {
    this.algorithm = new ProgressiveLockoutAlgorithm(options);
    this.#store =
      options.store ??
      new MemoryLimiterStore({
        ...(options.clock === undefined ? {} : { clock: options.clock }),
        ...(options.maxKeys === undefined ? {} : { maxKeys: options.maxKeys }),
      });
  }

  /** Whether `client` may attempt now; `allowed: false` carries the remaining lockout. */
  check(client: string): Decision {
    return this.#store.applySync(client, this.algorithm, 0);
  }

  /** Count one failed attempt; the decision says whether the client is now locked out. */
  recordFailure(client: string): Decision {
    return this.#store.applySync(client, this.algorithm, 1);
  }

  /** Forget `client`'s failures and lift any lockout (an operator action). */
  reset(client: string): void {
    this.#store.resetSync(this.algorithm.policy, client);
  }
}
