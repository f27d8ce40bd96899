/**
 * The set of upstreams the gateway routes to: static ones from the options plus those the
 * discovery registry reports (role 'api', alive, ready, with a url). `sync` replaces one
 * source's upstreams at a time. An upstream that leaves (or changes address) drains: it takes
 * no new requests, its in-flight requests finish on its pool, then the pool closes.
 * Guarantee: `members()` returns the same array object until membership or a weight changes,
 * so the consistent-hash ring is rebuilt only then.
 */
import type { BreakerState, CircuitBreakerOptions } from '../resilience/remote/index.ts';
import type { HealthThresholds } from './health-state.ts';
import type { OutlierDetector } from './outlier-detector.ts';
import type { Candidate } from './strategies/index.ts';
import {
  Upstream,
  type UpstreamLimits,
  type UpstreamSource,
  type UpstreamSpec,
  validWeight,
} from './upstream.ts';

export interface UpstreamSetOptions {
  limits: UpstreamLimits;
  breaker: CircuitBreakerOptions;
  health: HealthThresholds;
  outlier: OutlierDetector;
  onBreakerStateChange?: (upstream: Upstream, from: BreakerState, to: BreakerState) => void;
  /** An upstream joined or started draining. */
  onMembershipChange?: (event: { type: 'added' | 'draining'; upstream: Upstream }) => void;
}

export class UpstreamSet {
  readonly #options: UpstreamSetOptions;
  readonly #active = new Map<string, Upstream>();
  readonly #draining = new Set<Upstream>();
  #members: readonly Candidate[] = [];
  #activeList: readonly Upstream[] = [];

  constructor(options: UpstreamSetOptions) {
    this.#options = options;
  }

  /** Replaces the upstreams of `source` with `specs` (ids already held by the other source win). */
  sync(source: UpstreamSource, specs: readonly UpstreamSpec[]): void {
    const wanted = new Map<string, UpstreamSpec>();
    for (const spec of specs) {
      const holder = this.#active.get(spec.id);
      if (holder !== undefined && holder.source !== source) continue;
      wanted.set(spec.id, spec);
    }
    let changed = false;
    for (const upstream of [...this.#active.values()]) {
      if (upstream.source !== source) continue;
      const spec = wanted.get(upstream.id);
      if (spec === undefined || new URL(spec.url).host !== new URL(upstream.origin).host) {
        this.#drain(upstream);
        changed = true;
      } else if (validWeight(spec.weight) !== upstream.weight) {
        upstream.weight = validWeight(spec.weight);
        changed = true;
      }
    }
    for (const spec of wanted.values()) {
      if (this.#active.has(spec.id)) continue;
      const upstream = new Upstream(spec, source, {
        limits: this.#options.limits,
        breaker: this.#options.breaker,
        health: this.#options.health,
        onBreakerStateChange: this.#options.onBreakerStateChange,
      });
      this.#active.set(upstream.id, upstream);
      this.#options.outlier.add(upstream.id);
      this.#options.onMembershipChange?.({ type: 'added', upstream });
      changed = true;
    }
    if (changed) {
      this.#activeList = [...this.#active.values()];
      this.#members = this.#activeList.map((upstream) => ({ id: upstream.id, weight: upstream.weight }));
    }
  }

  get(id: string): Upstream | undefined {
    return this.#active.get(id);
  }

  /** Upstreams taking new requests (not draining). */
  active(): readonly Upstream[] {
    return this.#activeList;
  }

  draining(): readonly Upstream[] {
    return [...this.#draining];
  }

  /** Ids and weights of the active upstreams; the same array until they change. */
  members(): readonly Candidate[] {
    return this.#members;
  }

  /** Drains everything; resolves when in-flight requests finished or `graceMs` passed. */
  async close(graceMs: number): Promise<void> {
    for (const upstream of [...this.#active.values()]) this.#drain(upstream);
    this.#activeList = [];
    this.#members = [];
    const draining = [...this.#draining];
    let timer: NodeJS.Timeout | undefined;
    const graceful = Promise.allSettled(draining.map((upstream) => upstream.close()));
    const expired = new Promise<'expired'>((resolve) => {
      timer = setTimeout(() => resolve('expired'), graceMs);
      timer.unref();
    });
    const result = await Promise.race([graceful, expired]);
    clearTimeout(timer);
    if (result === 'expired') await Promise.allSettled(draining.map((upstream) => upstream.destroy()));
  }

  #drain(upstream: Upstream): void {
    this.#active.delete(upstream.id);
    this.#options.outlier.remove(upstream.id);
    upstream.draining = true;
    this.#draining.add(upstream);
    this.#options.onMembershipChange?.({ type: 'draining', upstream });
    // The pool's close waits for the requests it holds; TCP connections end on their own.
    void upstream.close().finally(() => this.#draining.delete(upstream));
  }
}
