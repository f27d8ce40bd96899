/**
 * Public surface of the Raft consensus core: the pure `RaftNode`, its message and Ready shapes,
 * and the deterministic simulator that checks its safety properties under faults.
 */

export type { ConfChange } from './confchange.ts';
export { applyConfChangeTo, decodeConfChange, encodeConfChange } from './confchange.ts';
export type { RaftOptions, ReadOnlyMode } from './config.ts';
export { resolveRaftOptions } from './config.ts';
export type {
  AppendMessage,
  AppendResponseMessage,
  HeartbeatMessage,
  HeartbeatResponseMessage,
  Message,
  MessageType,
  ReadIndexMessage,
  ReadIndexResponseMessage,
  SnapshotMessage,
  TimeoutNowMessage,
  VoteMessage,
  VoteResponseMessage,
} from './messages.ts';
export { messageTypes, payloadSize } from './messages.ts';
export { RaftNode } from './raft.ts';
export type {
  FollowerStatus,
  ProposalTicket,
  RaftStatus,
  ReadState,
  Ready,
  Role,
  SoftState,
} from './ready.ts';
export {
  createRandom,
  type FaultKind,
  listWorkload,
  queueWorkloadFactory,
  type ReplicatedStateMachine,
  runSimulation,
  type SeededRandom,
  type SimulationOptions,
  type SimulationResult,
  type Workload,
} from './simulator/index.ts';
export type { Entry, HardState, NodeId, PersistedState, Snapshot, SnapshotMeta } from './types.ts';
