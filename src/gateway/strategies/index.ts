export { ConsistentHash } from './consistent-hash.ts';
export { createStrategy, type StrategyOptions } from './create.ts';
export { HashRing, ringPosition } from './hash-ring.ts';
export { LeastConnections } from './least-connections.ts';
export { LeastTime, type LeastTimeOptions } from './least-time.ts';
export { RoundRobin } from './round-robin.ts';
export {
  type BalancingStrategy,
  type Candidate,
  type PickRequest,
  type StrategyName,
  strategyNames,
} from './types.ts';
export { SmoothWeightedRoundRobin } from './weighted-round-robin.ts';
