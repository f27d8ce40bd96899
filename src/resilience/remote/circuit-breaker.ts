/**
 * Circuit breaker in the Hystrix model: closed → open when, over a rolling window of
 * `windowMs` split into `buckets`, at least `minimumRequests` calls completed and the share of
 * failures reached `errorRatio`; open rejects every call for `openMs`; then half-open admits
 * exactly one probe: success closes (with a fresh window), failure re-opens for another
 * `openMs`. Hystrix defaults: 20 requests / 50 % / 10 s window of 10 buckets / 5 s sleep.
 *
 * Why not cockatiel's SamplingBreaker: its minimum volume is a rate (requests per second),
 * not "at least 20 requests in the window"; it reads `Date.now()` so tests cannot drive it;
 * and its policy wraps execution instead of handing out permits the caller settles later.
 *
 * Guarantees: an open breaker admits nothing until `openMs` passed; half-open has at most one
 * call in flight; outcomes of calls admitted before a transition never count toward the next
 * state (a generation number fences them). Time is injected; expiry is evaluated lazily.
 */
import { requirePositiveFinite, requirePositiveInteger, requireRatio } from './validation.ts';

export type BreakerState = 'closed' | 'open' | 'half-open';

export interface CircuitBreakerOptions {
  /** Rolling window the error ratio is measured over (default 10 s). */
  windowMs?: number;
  /** Buckets the window is split into (default 10); the window rolls one bucket at a time. */
  buckets?: number;
  /** Minimum completed calls in the window before the ratio may trip it (default 20), so one failure of two does not open it. */
  minimumRequests?: number;
  /** Failure share that opens the breaker (default 0.5). */
  errorRatio?: number;
  /** How long it stays open before admitting a probe (default 5 s). */
  openMs?: number;
  now?: () => number;
  onStateChange?: (from: BreakerState, to: BreakerState) => void;
}

/** Handed out by `tryAcquire`; settle it exactly once (later calls are ignored). */
export interface BreakerPermit {
  success(): void;
  failure(): void;
  /** Neither success nor failure, e.g. the caller cancelled: frees a half-open probe slot. */
  release(): void;
}

interface Bucket {
  /** Index of the bucket-sized time slot this bucket holds counts for. */
  slot: number;
  requests: number;
  failures: number;
}

export class CircuitBreaker {
  readonly windowMs: number;
  readonly buckets: number;
  readonly minimumRequests: number;
  readonly errorRatio: number;
  readonly openMs: number;
  readonly #bucketMs: number;
  readonly #now: () => number;
  readonly #onStateChange: ((from: BreakerState, to: BreakerState) => void) | undefined;
  readonly #window: Bucket[];
  #state: BreakerState = 'closed';
  #openedAt: number | undefined;
  #probeOut = false;
  /** Bumped on every transition so that stale permits cannot change the new state. */
  #generation = 0;

  constructor(options: CircuitBreakerOptions = {}) {
    this.windowMs = requirePositiveFinite('windowMs', options.windowMs ?? 10_000);
    this.buckets = requirePositiveInteger('buckets', options.buckets ?? 10);
    this.minimumRequests = requirePositiveInteger('minimumRequests', options.minimumRequests ?? 20);
    this.errorRatio = requireRatio('errorRatio', options.errorRatio ?? 0.5);
    this.openMs = requirePositiveFinite('openMs', options.openMs ?? 5000);
    this.#bucketMs = this.windowMs / this.buckets;
    this.#now = options.now ?? Date.now;
    this.#onStateChange = options.onStateChange;
    this.#window = Array.from({ length: this.buckets }, () => ({ slot: -1, requests: 0, failures: 0 }));
  }

  get state(): BreakerState {
    this.#expireOpen();
    return this.#state;
  }

  /** A permit to call the dependency, or undefined: open, or the single half-open probe is out. */
  tryAcquire(): BreakerPermit | undefined {
    this.#expireOpen();
    if (this.#state === 'open') return undefined;
    if (this.#state === 'half-open') {
      if (this.#probeOut) return undefined;
      this.#probeOut = true;
    }
    return this.#permit(this.#generation, this.#state === 'half-open');
  }

  snapshot(): { state: BreakerState; requests: number; failures: number; openedAt?: number } {
    const state = this.state;
    const { requests, failures } = this.#totals();
    return {
      state,
      requests,
      failures,
      ...(this.#openedAt === undefined ? {} : { openedAt: this.#openedAt }),
    };
  }

  #permit(generation: number, probe: boolean): BreakerPermit {
    let settled = false;
    const settle = (outcome: 'success' | 'failure' | 'release') => {
      if (settled) return;
      settled = true;
      if (generation !== this.#generation) return;
      if (probe) {
        this.#probeOut = false;
        if (outcome === 'success') this.#transition('closed');
        else if (outcome === 'failure') this.#transition('open');
        return;
      }
      if (outcome === 'release') return;
      this.#record(outcome === 'failure');
    };
    return {
      success: () => settle('success'),
      failure: () => settle('failure'),
      release: () => settle('release'),
    };
  }

  #record(failed: boolean): void {
    const bucket = this.#currentBucket();
    bucket.requests += 1;
    if (failed) bucket.failures += 1;
    const { requests, failures } = this.#totals();
    // Hystrix evaluates on the counts; only a failure can tip the ratio over.
    if (failed && requests >= this.minimumRequests && failures / requests >= this.errorRatio) {
      this.#transition('open');
    }
  }

  #currentBucket(): Bucket {
    const slot = Math.floor(this.#now() / this.#bucketMs);
    const bucket = this.#window[slot % this.buckets] as Bucket;
    if (bucket.slot !== slot) {
      bucket.slot = slot;
      bucket.requests = 0;
      bucket.failures = 0;
    }
    return bucket;
  }

  /** Counts of the buckets still inside the window (older slots are ignored, not cleared). */
  #totals(): { requests: number; failures: number } {
    const slot = Math.floor(this.#now() / this.#bucketMs);
    let requests = 0;
    let failures = 0;
    for (const bucket of this.#window) {
      if (bucket.slot > slot - this.buckets && bucket.slot <= slot) {
        requests += bucket.requests;
        failures += bucket.failures;
      }
    }
    return { requests, failures };
  }

  #expireOpen(): void {
    if (
      this.#state === 'open' &&
      this.#openedAt !== undefined &&
      this.#now() - this.#openedAt >= this.openMs
    ) {
      this.#transition('half-open');
    }
  }

  #transition(to: BreakerState): void {
    const from = this.#state;
    if (from === to) return;
    this.#state = to;
    this.#generation += 1;
    this.#probeOut = false;
    if (to === 'open') this.#openedAt = this.#now();
    if (to === 'closed') {
      this.#openedAt = undefined;
      for (const bucket of this.#window) {
        bucket.slot = -1;
        bucket.requests = 0;
        bucket.failures = 0;
      }
    }
    this.#onStateChange?.(from, to);
  }
}
