/** Builds a strategy by name (the `strategy` option of the gateway). */
import { ConsistentHash } from './consistent-hash.ts';
import { LeastConnections } from './least-connections.ts';
import { LeastTime } from './least-time.ts';
import { RoundRobin } from './round-robin.ts';
import type { BalancingStrategy, StrategyName } from './types.ts';
import { SmoothWeightedRoundRobin } from './weighted-round-robin.ts';

export interface StrategyOptions {
  random?: () => number;
  /** Least time: EWMA smoothing factor (default 0.3). */
  latencySmoothing?: number;
  /** Consistent hash: ring points per unit of weight (default 160). */
  virtualNodesPerWeight?: number;
}

export function createStrategy(name: StrategyName, options: StrategyOptions = {}): BalancingStrategy {
  switch (name) {
    case 'round-robin':
      return new RoundRobin();
    case 'weighted-round-robin':
      return new SmoothWeightedRoundRobin();
    case 'least-connections':
      return new LeastConnections({ random: options.random });
    case 'least-time':
      return new LeastTime({ random: options.random, smoothing: options.latencySmoothing });
    case 'consistent-hash':
      return new ConsistentHash({ virtualNodesPerWeight: options.virtualNodesPerWeight });
    default:
      throw new RangeError(`unknown balancing strategy ${JSON.stringify(name)}`);
  }
}
