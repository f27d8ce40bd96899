/**
 * A server's share of a cluster-wide limit: the same algorithm with its quota divided by the
 * number of api servers, for deciding locally while the shared store is unreachable.
 *
 * Rounding: quotas must stay whole and at least 1, so a share's capacity or limit is rounded up
 * (ceil(limit / n)); rates are divided exactly. With N servers each holding its share, the
 * cluster admits at most N · ceil(limit / N) per window (or burst), plus the exact rate over time:
 * a little over the limit when it does not divide evenly, never less than one request per
 * server — a brief outage should not refuse a client that the shared limit would admit.
 * Algorithms without a quota to divide (the progressive lockout) are used as they are.
 */
import { FixedWindow } from '../fixed-window.ts';
import { LeakyBucket } from '../leaky-bucket.ts';
import { SlidingWindowCounter } from '../sliding-window-counter.ts';
import { SlidingWindowLog } from '../sliding-window-log.ts';
import { TokenBucket } from '../token-bucket.ts';
import type { LimiterAlgorithm } from '../types.ts';

type ShareBuilder = (
  parameters: Readonly<Record<string, number>>,
  servers: number,
  policy: string,
) => LimiterAlgorithm<unknown>;

const quotaShare = (quota: number, servers: number): number => Math.max(1, Math.ceil(quota / servers));

const shareBuilders: ReadonlyMap<string, ShareBuilder> = new Map<string, ShareBuilder>([
  [
    'token-bucket',
    (parameters, servers, policy) =>
      new TokenBucket({
        capacity: quotaShare(parameters.capacity!, servers),
        refillPerSecond: parameters.refillPerSecond! / servers,
        policy,
      }) as LimiterAlgorithm<unknown>,
  ],
  [
    'leaky-bucket',
    (parameters, servers, policy) =>
      new LeakyBucket({
        capacity: quotaShare(parameters.capacity!, servers),
        drainPerSecond: parameters.drainPerSecond! / servers,
        policy,
      }) as LimiterAlgorithm<unknown>,
  ],
  [
    'fixed-window',
    (parameters, servers, policy) =>
      new FixedWindow({
        limit: quotaShare(parameters.limit!, servers),
        windowMs: parameters.windowMs!,
        policy,
      }) as LimiterAlgorithm<unknown>,
  ],
  [
    'sliding-window-log',
    (parameters, servers, policy) =>
      new SlidingWindowLog({
        limit: quotaShare(parameters.limit!, servers),
        windowMs: parameters.windowMs!,
        policy,
      }) as LimiterAlgorithm<unknown>,
  ],
  [
    'sliding-window-counter',
    (parameters, servers, policy) =>
      new SlidingWindowCounter({
        limit: quotaShare(parameters.limit!, servers),
        windowMs: parameters.windowMs!,
        policy,
      }) as LimiterAlgorithm<unknown>,
  ],
]);

/** `algorithm` with its quota divided among `servers` api servers (≥ 1), same policy name. */
export function localShareOf<State>(
  algorithm: LimiterAlgorithm<State>,
  servers: number,
): LimiterAlgorithm<State> {
  const build = shareBuilders.get(algorithm.name);
  if (build === undefined || servers <= 1) return algorithm;
  return build(algorithm.parameters, servers, algorithm.policy) as LimiterAlgorithm<State>;
}
