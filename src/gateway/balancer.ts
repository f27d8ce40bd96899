/**
 * The routing core shared by the HTTP and TCP front ends: selects an upstream for an attempt
 * and settles the attempt's outcome everywhere it matters — the upstream's breaker permit, the
 * outlier detector (ejection), the strategy's counters and latency, the in-flight count and
 * the metrics. Every attempt begun is settled exactly once.
 *
 * Outcomes: 'success' (any answer below 500), 'failure' (5xx, connection error, timeout),
 * 'shed' (503 with Retry-After: the upstream is alive and protecting itself — it counts as
 * neither success nor failure for the breaker and ejection, because ejecting an overloaded
 * upstream moves its load onto peers that are usually just as loaded, the start of a
 * cascade; the strategy still sees it as a failure so least-time does not favour a fast
 * refusal), 'cancelled' (the client went away: nothing is learnt about the upstream).
 */
import type { Logger } from '../observability/index.ts';
import type { BreakerPermit, RetryBudget } from '../resilience/remote/index.ts';
import type { GatewayMetrics } from './metrics.ts';
import type { OutlierDetector } from './outlier-detector.ts';
import { type Selection, selectUpstream } from './router.ts';
import type { BalancingStrategy } from './strategies/index.ts';
import type { Upstream } from './upstream.ts';
import type { UpstreamSet } from './upstream-set.ts';

export type AttemptOutcome = 'success' | 'failure' | 'shed' | 'cancelled';

export interface Attempt {
  readonly upstream: Upstream;
  readonly panic: boolean;
  readonly startedAt: number;
  /** Settles the attempt (idempotent: only the first call counts). */
  settle(outcome: AttemptOutcome, latencyMs?: number): void;
}

export class Balancer {
  readonly upstreams: UpstreamSet;
  readonly strategy: BalancingStrategy;
  readonly outlier: OutlierDetector;
  readonly retryBudget: RetryBudget;
  readonly metrics: GatewayMetrics;
  readonly logger: Logger;

  constructor(parts: {
    upstreams: UpstreamSet;
    strategy: BalancingStrategy;
    outlier: OutlierDetector;
    retryBudget: RetryBudget;
    metrics: GatewayMetrics;
    logger: Logger;
  }) {
    this.upstreams = parts.upstreams;
    this.strategy = parts.strategy;
    this.outlier = parts.outlier;
    this.retryBudget = parts.retryBudget;
    this.metrics = parts.metrics;
    this.logger = parts.logger;
  }

  /** Selects an upstream and begins an attempt on it, or says why none could be chosen. */
  begin(
    exclude: ReadonlySet<string>,
    affinityKey: string | undefined,
  ): Attempt | Extract<Selection, { kind: 'none' }> {
    const selection = selectUpstream(this.upstreams, this.strategy, this.outlier, { exclude, affinityKey });
    if (selection.kind === 'none') return selection;
    if (selection.panic) this.metrics.panicRouting.inc();
    return this.#attempt(selection.upstream, selection.permit, selection.panic);
  }

  /** True when an upstream not in `exclude` could take a retry (checked before giving up a response). */
  hasAlternative(exclude: ReadonlySet<string>): boolean {
    return this.upstreams.active().some((upstream) => !exclude.has(upstream.id) && !upstream.atCapacity);
  }

  /** Consumes a retry from the budget; counts the refusal when it is spent. */
  tryRetry(): boolean {
    if (this.retryBudget.tryRetry()) {
      this.metrics.remote.retries.inc({ dependency: 'gateway' });
      return true;
    }
    this.metrics.remote.retryBudgetExhausted.inc({ dependency: 'gateway' });
    return false;
  }

  #attempt(upstream: Upstream, permit: BreakerPermit, panic: boolean): Attempt {
    const startedAt = performance.now();
    upstream.inflight += 1;
    this.strategy.requestStarted(upstream.id);
    let settled = false;
    return {
      upstream,
      panic,
      startedAt,
      settle: (outcome, latencyMs = performance.now() - startedAt) => {
        if (settled) return;
        settled = true;
        upstream.inflight -= 1;
        this.strategy.requestFinished(upstream.id, latencyMs, outcome !== 'success');
        this.metrics.remote.calls.inc({
          dependency: upstream.id,
          outcome: outcome === 'shed' ? 'rejected' : outcome,
        });
        this.metrics.remote.callSeconds.observe({ dependency: upstream.id }, latencyMs / 1000);
        switch (outcome) {
          case 'success':
            permit.success();
            this.outlier.recordSuccess(upstream.id);
            upstream.observeLatency(latencyMs);
            break;
          case 'failure':
            permit.failure();
            if (this.outlier.recordFailure(upstream.id)) {
              this.metrics.ejections.inc({ upstream: upstream.id });
              const snapshot = this.outlier.snapshot(upstream.id);
              this.logger.warn(
                {
                  upstream: upstream.id,
                  timesEjected: snapshot?.timesEjected,
                  ejectedUntil: snapshot?.ejectedUntil,
                },
                'upstream ejected after consecutive failures',
              );
            }
            break;
          default:
            permit.release();
        }
      },
    };
  }
}
