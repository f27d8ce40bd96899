/**
 * Progressive lockout of clients (by address) that keep presenting bad credentials: after
 * `maxFailures` failures within `failureWindowMs` the client is locked out for `baseLockoutMs`,
 * and each further lockout multiplies that by `multiplier` up to `maxLockoutMs`. A client quiet
 * for `forgetAfterMs` starts over. Keys are 256-bit random, so this is not what stops guessing;
 * it stops a misconfigured or hostile client from turning every request into a store lookup, and
 * the growing penalty means persistent offenders cost less and less.
 *
 * A pure core: the clock is injected, nothing runs in the background, memory is bounded by
 * `maxTrackedClients` (oldest unlocked clients are forgotten first).
 */
import { PixelfleetError } from '../errors/index.ts';

export interface ProgressiveLockoutOptions {
  clock?: () => number;
  /** Failures within the window that trigger a lockout. */
  maxFailures?: number;
  failureWindowMs?: number;
  /** Length of the first lockout. */
  baseLockoutMs?: number;
  /** Growth of each subsequent lockout. */
  multiplier?: number;
  maxLockoutMs?: number;
  /** Quiet time after which a client's lockout history is forgotten. */
  forgetAfterMs?: number;
  maxTrackedClients?: number;
}

export type LockoutVerdict = { locked: false } | { locked: true; retryAfterMs: number };

interface ClientRecord {
  /** Times of recent failures, oldest first, at most `maxFailures` kept. */
  failures: number[];
  lockedUntil: number;
  /** Lockouts served so far: the exponent of the next one. */
  level: number;
  lastSeen: number;
}

function check(name: string, value: number, minimum: number, integer = true): number {
  if (!Number.isFinite(value) || value < minimum || (integer && !Number.isInteger(value))) {
    throw new RangeError(
      `${name} must be ${integer ? 'an integer' : 'a number'} >= ${minimum}, got ${value}`,
    );
  }
  return value;
}

export class ProgressiveLockout {
  readonly #clock: () => number;
  readonly #maxFailures: number;
  readonly #failureWindowMs: number;
  readonly #baseLockoutMs: number;
  readonly #multiplier: number;
  readonly #maxLockoutMs: number;
  readonly #forgetAfterMs: number;
  readonly #maxTrackedClients: number;
  readonly #clients = new Map<string, ClientRecord>();

  constructor(options: ProgressiveLockoutOptions = {}) {
    this.#clock = options.clock ?? Date.now;
    this.#maxFailures = check('maxFailures', options.maxFailures ?? 10, 1);
    this.#failureWindowMs = check('failureWindowMs', options.failureWindowMs ?? 60_000, 1);
    this.#baseLockoutMs = check('baseLockoutMs', options.baseLockoutMs ?? 1_000, 1);
    this.#multiplier = check('multiplier', options.multiplier ?? 2, 1, false);
    this.#maxLockoutMs = check('maxLockoutMs', options.maxLockoutMs ?? 15 * 60_000, this.#baseLockoutMs);
    this.#forgetAfterMs = check('forgetAfterMs', options.forgetAfterMs ?? 60 * 60_000, 1);
    this.#maxTrackedClients = check('maxTrackedClients', options.maxTrackedClients ?? 100_000, 1);
  }

  /** Whether the client may try now. */
  check(client: string): LockoutVerdict {
    const record = this.#current(client, this.#clock());
    if (record === undefined) return { locked: false };
    const remaining = record.lockedUntil - this.#clock();
    return remaining > 0 ? { locked: true, retryAfterMs: remaining } : { locked: false };
  }

  /** Records one failed attempt; returns the verdict after it (locked when this one tipped it). */
  recordFailure(client: string): LockoutVerdict {
    const now = this.#clock();
    let record = this.#current(client, now);
    if (record === undefined) {
      record = { failures: [], lockedUntil: 0, level: 0, lastSeen: now };
      this.#track(client, record);
    }
    record.lastSeen = now;
    if (record.lockedUntil > now) return { locked: true, retryAfterMs: record.lockedUntil - now };
    record.failures = record.failures.filter((at) => now - at < this.#failureWindowMs);
    record.failures.push(now);
    if (record.failures.length < this.#maxFailures) return { locked: false };
    const lockoutMs = Math.min(this.#maxLockoutMs, this.#baseLockoutMs * this.#multiplier ** record.level);
    record.level++;
    record.failures = [];
    record.lockedUntil = now + lockoutMs;
    return { locked: true, retryAfterMs: lockoutMs };
  }

  /**
   * A success clears the failure count but not the escalation level: interleaving one good key
   * with many bad ones must not reset the penalty for the next lockout.
   */
  recordSuccess(client: string): void {
    const record = this.#clients.get(client);
    if (record !== undefined) record.failures = [];
  }

  /** Clients currently tracked (for metrics). */
  get trackedClients(): number {
    return this.#clients.size;
  }

  #current(client: string, now: number): ClientRecord | undefined {
    const record = this.#clients.get(client);
    if (record === undefined) return undefined;
    if (record.lockedUntil <= now && now - record.lastSeen >= this.#forgetAfterMs) {
      this.#clients.delete(client);
      return undefined;
    }
    return record;
  }

  #track(client: string, record: ClientRecord): void {
    this.#clients.set(client, record);
    if (this.#clients.size <= this.#maxTrackedClients) return;
    const now = this.#clock();
    for (const [other, otherRecord] of this.#clients) {
      if (this.#clients.size <= this.#maxTrackedClients) break;
      if (other !== client && otherRecord.lockedUntil <= now) this.#clients.delete(other);
    }
    // Every tracked client is locked: forget the oldest rather than grow without bound.
    while (this.#clients.size > this.#maxTrackedClients) {
      this.#clients.delete(this.#clients.keys().next().value as string);
    }
  }
}

export function lockedOutError(retryAfterMs: number): PixelfleetError {
  const retryAfterSeconds = Math.max(1, Math.ceil(retryAfterMs / 1000));
  return new PixelfleetError(
    'PF_ERR_AUTH_LOCKED_OUT',
    `too many failed authentication attempts from this address; retry in ${retryAfterSeconds} s`,
    { extensions: { retryAfterSeconds } },
  );
}
