/**
 * Prometheus metrics of remote calls, one label `dependency` per called service. Created on a
 * registry the process already owns (e.g. `createServiceMetrics().registry`); creating them
 * twice on one registry returns the same metrics, so several components of one process may
 * each call `createRemoteMetrics` with the process's registry.
 */
import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import type { BreakerState } from './circuit-breaker.ts';

/** Outcome label of `pixelfleet_remote_calls_total`: one per attempt, or per rejected call. */
export type RemoteCallOutcome =
  | 'success'
  | 'failure'
  | 'rejected'
  | 'timeout'
  | 'cancelled'
  | 'circuit_open'
  | 'bulkhead_full'
  | 'deadline_exceeded';

export interface RemoteMetrics {
  readonly registry: Registry;
  readonly calls: Counter<'dependency' | 'outcome'>;
  readonly retries: Counter<'dependency'>;
  readonly retryBudgetExhausted: Counter<'dependency'>;
  /** 0 closed, 1 half-open, 2 open. */
  readonly breakerState: Gauge<'dependency'>;
  readonly breakerTransitions: Counter<'dependency' | 'to'>;
  readonly callSeconds: Histogram<'dependency'>;
}

export const breakerStateValue: Readonly<Record<BreakerState, number>> = {
  closed: 0,
  'half-open': 1,
  open: 2,
};

const latencyBuckets = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

function reuse<M>(registry: Registry, name: string, create: () => M): M {
  return (registry.getSingleMetric(name) as M | undefined) ?? create();
}

export function createRemoteMetrics(registry: Registry): RemoteMetrics {
  const registers = [registry];
  return {
    registry,
    calls: reuse(
      registry,
      'pixelfleet_remote_calls_total',
      () =>
        new Counter({
          name: 'pixelfleet_remote_calls_total',
          help: 'Remote call attempts (and calls rejected before any attempt) by dependency and outcome.',
          labelNames: ['dependency', 'outcome'],
          registers,
        }),
    ),
    retries: reuse(
      registry,
      'pixelfleet_remote_retries_total',
      () =>
        new Counter({
          name: 'pixelfleet_remote_retries_total',
          help: 'Retries of remote calls (attempts after the first).',
          labelNames: ['dependency'],
          registers,
        }),
    ),
    retryBudgetExhausted: reuse(
      registry,
      'pixelfleet_retry_budget_exhausted_total',
      () =>
        new Counter({
          name: 'pixelfleet_retry_budget_exhausted_total',
          help: 'Retries refused because the retry budget was spent.',
          labelNames: ['dependency'],
          registers,
        }),
    ),
    breakerState: reuse(
      registry,
      'pixelfleet_circuit_breaker_state',
      () =>
        new Gauge({
          name: 'pixelfleet_circuit_breaker_state',
          help: 'Circuit breaker state per dependency: 0 closed, 1 half-open, 2 open.',
          labelNames: ['dependency'],
          registers,
        }),
    ),
    breakerTransitions: reuse(
      registry,
      'pixelfleet_circuit_breaker_transitions_total',
      () =>
        new Counter({
          name: 'pixelfleet_circuit_breaker_transitions_total',
          help: 'Circuit breaker state changes by dependency and new state.',
          labelNames: ['dependency', 'to'],
          registers,
        }),
    ),
    callSeconds: reuse(
      registry,
      'pixelfleet_remote_call_seconds',
      () =>
        new Histogram({
          name: 'pixelfleet_remote_call_seconds',
          help: 'Duration of one remote call attempt.',
          labelNames: ['dependency'],
          buckets: latencyBuckets,
          registers,
        }),
    ),
  };
}
