/**
 * Chaos engineering tools: a fault-injecting TCP proxy to partition, slow down and reset the
 * links between real processes in tests.
 */
export { createFaultProxy } from './proxy.ts';
export type {
  DirectionFault,
  FaultDirection,
  FaultMode,
  FaultProxy,
  FaultProxyOptions,
  FaultProxyStats,
  ProxyAddress,
} from './types.ts';
