/**
 * The policy every remote call goes through, outermost first:
 * bulkhead (one slot per logical call, retries included) → per attempt: circuit breaker permit
 * → timeout from observed p99, capped by the caller's deadline, forwarded as
 * `Pixelfleet-Deadline` → retry with backoff + jitter under a retry budget.
 *
 * Retry rules: only transient errors (`isTransient`), at most `maxAttempts` attempts, never
 * past the deadline, and a non-idempotent call only when the error proves the request never
 * reached the server (connection refused, the remote's admission refusal...): a retried
 * non-idempotent request that had reached the server could act twice.
 *
 * Guarantees: `execute` settles by the deadline plus timer latency even when `fn` ignores its
 * AbortSignal; every breaker permit is settled exactly once; rejection is the last error, or a
 * PixelfleetError PF_ERR_CIRCUIT_OPEN / PF_ERR_BULKHEAD_FULL / PF_ERR_DEADLINE_EXCEEDED (with
 * the last error as `cause`), or the caller's abort reason.
 */

import { PixelfleetError } from '../../errors/index.ts';
import { AdaptiveTimeout, type LatencyTrackerOptions } from './adaptive-timeout.ts';
import { Backoff, type BackoffOptions } from './backoff.ts';
import { Bulkhead } from './bulkhead.ts';
import { CircuitBreaker, type CircuitBreakerOptions } from './circuit-breaker.ts';
import { deadlineHeaders } from './deadline.ts';
import { breakerStateValue, type RemoteCallOutcome, type RemoteMetrics } from './metrics.ts';
import type { RetryBudget } from './retry-budget.ts';
import { sleep } from './sleep.ts';
import { isDependencyFailure, isTransientError, neverReachedServer } from './transient.ts';
import { requirePositiveInteger } from './validation.ts';

export interface RemotePolicyOptions {
  /** The called service, e.g. 'api', 'identity', 'queue': the metrics label and error prefix. */
  dependency: string;
  /** Attempts in all, the first included (default 3). */
  maxAttempts?: number;
  backoff?: BackoffOptions;
  /** Breaker options, or false for none (e.g. when a load balancer ejects hosts itself). */
  breaker?: CircuitBreakerOptions | false;
  /** Shareable between policies so that retries to one dependency share one budget. */
  retryBudget?: RetryBudget;
  timeout?: LatencyTrackerOptions;
  bulkhead?: { maxConcurrent: number; maxQueued?: number };
  metrics?: RemoteMetrics;
  /** Retryability of an error; default: network errors, timeouts, 502/503/504 and transient Pixelfleet codes. */
  isTransient?: (error: unknown) => boolean;
  now?: () => number;
  sleep?: (ms: number, signal?: AbortSignal) => Promise<void>;
}

export interface CallContext {
  /** Aborted when this attempt times out or the caller cancels; pass it to fetch/undici. */
  signal: AbortSignal;
  /** 1-based attempt number. */
  attempt: number;
  timeoutMs: number;
  /** Absolute deadline of this attempt on the local clock. */
  deadlineAt: number;
  /** The deadline header to forward to the remote. */
  headers: Record<string, string>;
}

export interface ExecuteOptions {
  /** Safe to repeat (GET, PUT of the same value, a request with an idempotency key). Default false. */
  idempotent?: boolean;
  /** Absolute deadline (local clock ms), e.g. from `readDeadline` of the incoming request. */
  deadlineAt?: number;
  /** Caller's cancellation: rejects with its reason and releases the breaker permit. */
  signal?: AbortSignal;
}

export class RemotePolicy {
  readonly dependency: string;
  readonly maxAttempts: number;
  readonly timeout: AdaptiveTimeout;
  readonly bulkhead: Bulkhead | undefined;
  readonly retryBudget: RetryBudget | undefined;
  readonly #breaker: CircuitBreaker | undefined;
  readonly #backoff: Backoff;
  readonly #metrics: RemoteMetrics | undefined;
  readonly #isTransient: (error: unknown) => boolean;
  readonly #now: () => number;
  readonly #sleep: (ms: number, signal?: AbortSignal) => Promise<void>;

  constructor(options: RemotePolicyOptions) {
    if (typeof options?.dependency !== 'string' || options.dependency.length === 0) {
      throw new RangeError('dependency must be a non-empty string');
    }
    this.dependency = options.dependency;
    this.maxAttempts = requirePositiveInteger('maxAttempts', options.maxAttempts ?? 3);
    this.#now = options.now ?? Date.now;
    this.#sleep = options.sleep ?? sleep;
    this.#backoff = new Backoff(options.backoff);
    this.timeout = new AdaptiveTimeout(options.timeout);
    this.bulkhead =
      options.bulkhead === undefined
        ? undefined
        : new Bulkhead({ ...options.bulkhead, name: options.dependency });
    this.retryBudget = options.retryBudget;
    this.#metrics = options.metrics;
    this.#isTransient = options.isTransient ?? isTransientError;
    if (options.breaker !== false) {
      const breakerOptions = options.breaker ?? {};
      const userListener = breakerOptions.onStateChange;
      this.#breaker = new CircuitBreaker({
        ...breakerOptions,
        now: breakerOptions.now ?? this.#now,
        onStateChange: (from, to) => {
          this.#metrics?.breakerState.set({ dependency: this.dependency }, breakerStateValue[to]);
          this.#metrics?.breakerTransitions.inc({ dependency: this.dependency, to });
          userListener?.(from, to);
        },
      });
      this.#metrics?.breakerState.set({ dependency: this.dependency }, breakerStateValue.closed);
    }
  }

  get breaker(): CircuitBreaker | undefined {
    return this.#breaker;
  }

  async execute<T>(fn: (context: CallContext) => Promise<T>, options: ExecuteOptions = {}): Promise<T> {
    options.signal?.throwIfAborted();
    if (this.bulkhead === undefined) return this.#attempts(fn, options);
    let admitted = false;
    try {
      return await this.bulkhead.run(() => {
        admitted = true;
        return this.#attempts(fn, options);
      }, options.signal);
    } catch (error) {
      if (!admitted && options.signal?.aborted !== true) this.#count('bulkhead_full');
      throw error;
    }
  }

  async #attempts<T>(fn: (context: CallContext) => Promise<T>, options: ExecuteOptions): Promise<T> {
    const { signal } = options;
    const deadlineAt = options.deadlineAt ?? Number.POSITIVE_INFINITY;
    const idempotent = options.idempotent ?? false;
    this.retryBudget?.recordRequest();
    let lastError: unknown;
    let previousDelayMs: number | undefined;
    for (let attempt = 1; ; attempt++) {
      signal?.throwIfAborted();
      const startedAt = this.#now();
      const remainingMs = deadlineAt - startedAt;
      if (remainingMs <= 0) {
        this.#count('deadline_exceeded');
        throw this.#deadlineExceeded(lastError);
      }
      const permit = this.#breaker?.tryAcquire();
      if (this.#breaker !== undefined && permit === undefined) {
        this.#count('circuit_open');
        throw new PixelfleetError('PF_ERR_CIRCUIT_OPEN', `${this.dependency}: circuit breaker is open`, {
          cause: lastError,
          extensions: { dependency: this.dependency },
        });
      }
      const adaptiveMs = this.timeout.timeoutMs();
      const limitedByDeadline = remainingMs <= adaptiveMs;
      const timeoutMs = Math.max(1, Math.ceil(limitedByDeadline ? remainingMs : adaptiveMs));
      const attemptDeadlineAt = startedAt + timeoutMs;
      const controller = new AbortController();
      const context: CallContext = {
        signal: controller.signal,
        attempt,
        timeoutMs,
        deadlineAt: attemptDeadlineAt,
        headers: deadlineHeaders(attemptDeadlineAt, startedAt),
      };
      const watch = { timedOut: false };
      try {
        const result = await this.#withTimeout(fn, context, controller, watch, signal);
        permit?.success();
        this.#observe(startedAt);
        this.#count('success');
        return result;
      } catch (caught) {
        let error = caught;
        if (signal?.aborted) {
          permit?.release();
          this.#count('cancelled');
          throw signal.reason;
        }
        if (watch.timedOut && limitedByDeadline) {
          // The caller's deadline, not the dependency, cut this attempt short: not its failure.
          permit?.release();
          this.#count('deadline_exceeded');
          throw this.#deadlineExceeded(error);
        }
        if (watch.timedOut) {
          permit?.failure();
          // Censored sample: the latency was at least the timeout; lets the timeout grow.
          this.timeout.observe(timeoutMs);
          this.#metrics?.callSeconds.observe({ dependency: this.dependency }, timeoutMs / 1000);
          this.#count('timeout');
        } else if (isDependencyFailure(error)) {
          permit?.failure();
          this.#metrics?.callSeconds.observe(
            { dependency: this.dependency },
            (this.#now() - startedAt) / 1000,
          );
          this.#count('failure');
        } else {
          // A 4xx-style answer: the dependency is healthy, the request was wrong.
          permit?.success();
          this.#observe(startedAt);
          this.#count('rejected');
        }
        if (watch.timedOut && !(error instanceof PixelfleetError && error.code === 'PF_ERR_REMOTE_TIMEOUT')) {
          error = this.#timeoutError(timeoutMs, error);
        }
        lastError = error;
        if (!this.#shouldRetry(error, attempt, idempotent)) throw error;
        const delayMs = this.#backoff.delay(attempt, previousDelayMs);
        previousDelayMs = delayMs;
        if (this.#now() + delayMs >= deadlineAt) throw error;
        if (this.retryBudget !== undefined && !this.retryBudget.tryRetry()) {
          this.#metrics?.retryBudgetExhausted.inc({ dependency: this.dependency });
          throw error;
        }
        await this.#sleep(delayMs, signal);
        this.#metrics?.retries.inc({ dependency: this.dependency });
      }
    }
  }

  #shouldRetry(error: unknown, attempt: number, idempotent: boolean): boolean {
    if (attempt >= this.maxAttempts) return false;
    if (!this.#isTransient(error)) return false;
    return idempotent || neverReachedServer(error);
  }

  /** Runs one attempt; settles at the timeout even if `fn` ignores its signal. */
  #withTimeout<T>(
    fn: (context: CallContext) => Promise<T>,
    context: CallContext,
    controller: AbortController,
    watch: { timedOut: boolean },
    signal: AbortSignal | undefined,
  ): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        watch.timedOut = true;
        const error = this.#timeoutError(context.timeoutMs);
        controller.abort(error);
        reject(error);
      }, context.timeoutMs);
      const onAbort = () => {
        controller.abort(signal?.reason);
        reject(signal?.reason);
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      let pending: Promise<T>;
      try {
        pending = Promise.resolve(fn(context));
      } catch (error) {
        pending = Promise.reject(error);
      }
      pending
        .finally(() => {
          clearTimeout(timer);
          signal?.removeEventListener('abort', onAbort);
        })
        .then(resolve, reject);
    });
  }

  #timeoutError(timeoutMs: number, cause?: unknown): PixelfleetError {
    return new PixelfleetError(
      'PF_ERR_REMOTE_TIMEOUT',
      `${this.dependency} did not answer within ${timeoutMs} ms`,
      {
        cause,
        extensions: { dependency: this.dependency, timeoutMs },
      },
    );
  }

  #deadlineExceeded(cause: unknown): PixelfleetError {
    return new PixelfleetError('PF_ERR_DEADLINE_EXCEEDED', `${this.dependency}: the call's deadline passed`, {
      cause,
      extensions: { dependency: this.dependency },
    });
  }

  #observe(startedAt: number): void {
    const elapsedMs = this.#now() - startedAt;
    this.timeout.observe(elapsedMs);
    this.#metrics?.callSeconds.observe({ dependency: this.dependency }, elapsedMs / 1000);
  }

  #count(outcome: RemoteCallOutcome): void {
    this.#metrics?.calls.inc({ dependency: this.dependency, outcome });
  }
}
