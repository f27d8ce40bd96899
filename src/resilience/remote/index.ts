/**
 * Resilience for remote calls between cluster roles (worker → api, api → identity,
 * api → api, gateway → api): `RemotePolicy` composes a bulkhead, a Hystrix-model circuit
 * breaker, retries with exponential backoff + jitter under a retry budget, and per-attempt
 * timeouts from observed p99 with the deadline propagated in `Pixelfleet-Deadline`.
 * Every part is a pure core with an injected clock and randomness, usable on its own.
 */
export { AdaptiveTimeout, type LatencyTrackerOptions } from './adaptive-timeout.ts';
export { Backoff, type BackoffOptions, type JitterKind } from './backoff.ts';
export { Bulkhead, type BulkheadOptions } from './bulkhead.ts';
export {
  type BreakerPermit,
  type BreakerState,
  CircuitBreaker,
  type CircuitBreakerOptions,
} from './circuit-breaker.ts';
export { deadlineHeader, deadlineHeaders, readDeadline } from './deadline.ts';
export {
  breakerStateValue,
  createRemoteMetrics,
  type RemoteCallOutcome,
  type RemoteMetrics,
} from './metrics.ts';
export {
  type CallContext,
  type ExecuteOptions,
  RemotePolicy,
  type RemotePolicyOptions,
} from './remote-policy.ts';
export { RetryBudget, type RetryBudgetOptions } from './retry-budget.ts';
export { sleep } from './sleep.ts';
export {
  errorFromResponse,
  isDependencyFailure,
  isTransientError,
  markNotSent,
  neverReachedServer,
  remoteStatus,
} from './transient.ts';
