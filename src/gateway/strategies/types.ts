/**
 * The balancing strategy interface: pick one upstream for a request (or a TCP connection) from
 * the set the gateway considers eligible right now. Strategies are pure cores: they see ids and
 * weights, keep their own per-upstream counters (told of request start and end), and take
 * randomness as a parameter so tests can drive them with a seeded source.
 */

export type StrategyName =
  | 'round-robin'
  | 'weighted-round-robin'
  | 'least-connections'
  | 'least-time'
  | 'consistent-hash';

export const strategyNames: readonly StrategyName[] = [
  'round-robin',
  'weighted-round-robin',
  'least-connections',
  'least-time',
  'consistent-hash',
];

/** What a strategy knows of an upstream. */
export interface Candidate {
  readonly id: string;
  /** Positive relative capacity (default 1). */
  readonly weight: number;
}

export interface PickRequest {
  /**
   * Every upstream the gateway knows (eligible or not). The consistent-hash ring is built from
   * these so that an upstream turning unhealthy does not reshuffle everyone else's keys.
   * Defaults to the candidates.
   */
  readonly members?: readonly Candidate[];
  /** Affinity key (an already hashed API key or the client address); only consistent-hash reads it. */
  readonly affinityKey?: string;
}

export interface BalancingStrategy {
  readonly name: StrategyName;
  /** One of `candidates`, or undefined when `candidates` is empty. */
  pick(candidates: readonly Candidate[], request?: PickRequest): Candidate | undefined;
  /** A request (or connection) was sent to `id`. */
  requestStarted(id: string): void;
  /**
   * The request to `id` ended after `latencyMs` (time to response headers, or to connect in TCP
   * mode). `failed` marks errors, so a fast failure never makes an upstream look attractive.
   */
  requestFinished(id: string, latencyMs: number, failed: boolean): void;
  /** The upstream left the set: drop its state. */
  forget(id: string): void;
}
