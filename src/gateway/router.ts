/**
 * Choosing the upstream for one attempt. Tiers, best first:
 *  1. healthy (active checks), not ejected (outlier detection), breaker closed or with its
 *     half-open probe free, under its in-flight cap — the strategy picks among these;
 *  2. panic routing (Envoy's panic mode): when tier 1 is empty, the least bad of the rest
 *     whose breaker admits, ignoring health and ejection — a gateway that knows only sick
 *     upstreams serves what it can instead of failing every request;
 *  3. nothing: every upstream is at its in-flight cap (overloaded) or its breaker is open.
 * Upstreams already tried by this request are excluded, so a retry goes to another one.
 */
import type { BreakerPermit } from '../resilience/remote/index.ts';
import type { OutlierDetector } from './outlier-detector.ts';
import type { BalancingStrategy, Candidate } from './strategies/index.ts';
import type { Upstream } from './upstream.ts';
import type { UpstreamSet } from './upstream-set.ts';

export type Selection =
  | { kind: 'selected'; upstream: Upstream; permit: BreakerPermit; panic: boolean }
  | { kind: 'none'; reason: 'no-upstreams' | 'all-tried' | 'at-capacity' | 'circuit-open' };

export function selectUpstream(
  upstreams: UpstreamSet,
  strategy: BalancingStrategy,
  outlier: OutlierDetector,
  request: { exclude: ReadonlySet<string>; affinityKey?: string },
): Selection {
  const all = upstreams.active();
  if (all.length === 0) return { kind: 'none', reason: 'no-upstreams' };
  const untried =
    request.exclude.size === 0 ? all : all.filter((upstream) => !request.exclude.has(upstream.id));
  if (untried.length === 0) return { kind: 'none', reason: 'all-tried' };

  const admissible = untried.filter((upstream) => !upstream.atCapacity && upstream.breaker.state !== 'open');
  if (admissible.length === 0) {
    return {
      kind: 'none',
      reason: untried.some((upstream) => upstream.atCapacity) ? 'at-capacity' : 'circuit-open',
    };
  }
  const badness = (upstream: Upstream) =>
    (upstream.health.healthy ? 0 : 1) + (outlier.isEjected(upstream.id) ? 1 : 0);
  const members = upstreams.members();

  const healthy = admissible.filter((upstream) => badness(upstream) === 0);
  const chosen = pickWithPermit(healthy, strategy, members, request.affinityKey);
  if (chosen) return { kind: 'selected', ...chosen, panic: false };

  // Panic: the least bad tier first, then worse ones.
  for (const rank of [1, 2]) {
    const tier = admissible.filter((upstream) => badness(upstream) === rank);
    const fallback = pickWithPermit(tier, strategy, members, request.affinityKey);
    if (fallback) return { kind: 'selected', ...fallback, panic: true };
  }
  return { kind: 'none', reason: 'circuit-open' };
}

/** Picks by strategy; an upstream whose breaker refuses (half-open probe out) is dropped and the pick repeated. */
function pickWithPermit(
  upstreams: readonly Upstream[],
  strategy: BalancingStrategy,
  members: readonly Candidate[],
  affinityKey: string | undefined,
): { upstream: Upstream; permit: BreakerPermit } | undefined {
  let remaining = upstreams;
  while (remaining.length > 0) {
    const candidate = strategy.pick(remaining, { members, affinityKey });
    if (candidate === undefined) return undefined;
    const upstream = candidate as Upstream;
    const permit = upstream.breaker.tryAcquire();
    if (permit) return { upstream, permit };
    remaining = remaining.filter((other) => other !== upstream);
  }
  return undefined;
}
