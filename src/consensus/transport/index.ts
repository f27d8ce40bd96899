/**
 * The node-to-node transport of the consensus layer: authenticated, batched TCP links between
 * cluster nodes, with bounded per-peer queues and reconnect with backoff.
 */
export { createTransport } from './transport.ts';
export type {
  DropPolicy,
  PeerAddress,
  PeerState,
  PeerStats,
  Transport,
  TransportOptions,
  TransportStats,
} from './types.ts';
