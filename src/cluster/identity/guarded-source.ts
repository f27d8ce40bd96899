/**
 * The identity role's data-plane reads (what api servers' edge caches fetch on a miss) behind a
 * circuit breaker. With PostgreSQL frozen each read waits up to the store's data-plane timeout
 * (1 s) before failing; once a few have failed the breaker opens and reads fail at once with
 * PF_ERR_MANAGEMENT_UNAVAILABLE, so api servers fall back to their stale entries without waiting
 * and the pool is not filled with doomed queries. A half-open probe finds the database back.
 * "Not found" is an answer, not a failure; only unavailability counts.
 */
import { isPixelfleetError, PixelfleetError } from '../../errors/index.ts';
import type { CredentialSource } from '../../identity/index.ts';
import {
  type BreakerState,
  breakerStateValue,
  CircuitBreaker,
  type CircuitBreakerOptions,
  type RemoteMetrics,
} from '../../resilience/remote/index.ts';

export interface GuardedCredentialSourceOptions {
  source: CredentialSource;
  /** Default: 5 calls, 50 %, 10 s window, 5 s open — data-plane misses are few, so fewer than Hystrix's 20. */
  breaker?: CircuitBreakerOptions;
  /** The breaker's state and transitions, labelled with `dependency`. */
  metrics?: RemoteMetrics;
  /** Default `postgres`. */
  dependency?: string;
}

export class GuardedCredentialSource implements CredentialSource {
  readonly breaker: CircuitBreaker;
  readonly #source: CredentialSource;

  constructor(options: GuardedCredentialSourceOptions) {
    if (options?.source === undefined) throw new RangeError('source is required');
    this.#source = options.source;
    const dependency = options.dependency ?? 'postgres';
    const metrics = options.metrics;
    const userStateChange = options.breaker?.onStateChange;
    this.breaker = new CircuitBreaker({
      minimumRequests: 5,
      ...options.breaker,
      onStateChange: (from: BreakerState, to: BreakerState) => {
        metrics?.breakerState.set({ dependency }, breakerStateValue[to]);
        metrics?.breakerTransitions.inc({ dependency, to });
        userStateChange?.(from, to);
      },
    });
    metrics?.breakerState.set({ dependency }, breakerStateValue.closed);
  }

  findCredential(keyId: string): ReturnType<CredentialSource['findCredential']> {
    return this.#guarded(() => this.#source.findCredential(keyId));
  }

  getTier(name: string): ReturnType<CredentialSource['getTier']> {
    return this.#guarded(() => this.#source.getTier(name));
  }

  async #guarded<T>(read: () => Promise<T>): Promise<T> {
    const permit = this.breaker.tryAcquire();
    if (permit === undefined) {
      throw new PixelfleetError(
        'PF_ERR_MANAGEMENT_UNAVAILABLE',
        'the identity store is failing; its circuit breaker is open',
        { extensions: { retryAfterSeconds: 1 } },
      );
    }
    try {
      const answer = await read();
      permit.success();
      return answer;
    } catch (error) {
      if (isPixelfleetError(error, 'PF_ERR_MANAGEMENT_UNAVAILABLE')) permit.failure();
      else permit.release();
      throw error;
    }
  }
}
