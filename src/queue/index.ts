/**
 * The job queue: the `JobQueue` contract, the pure queue state machine every implementation
 * applies (from a local log or the Raft log), the embedded implementation, the Raft-replicated
 * one (nodes, and the client that reaches a cluster of them), and the one on an existing NATS
 * JetStream cluster.
 */

export type {
  AckCommand,
  ClaimApplied,
  ClaimCommand,
  CommandRejection,
  CommandResult,
  CommandResults,
  ConfigureCommand,
  EnqueueApplied,
  EnqueueCommand,
  ExtendApplied,
  ExtendCommand,
  NackCommand,
  QueueCommand,
  ReleaseLeasesCommand,
  SettleApplied,
  TickApplied,
  TickCommand,
} from './commands.ts';
export {
  EmbeddedQueue,
  type EmbeddedQueueOptions,
  openEmbeddedQueue,
  type QueueLogger,
} from './embedded/index.ts';
export {
  NatsJobQueue,
  type NatsQueueDiagnostics,
  type NatsQueueOptions,
  openNatsQueue,
} from './nats/index.ts';
export {
  openRaftQueueNode,
  RaftQueue,
  RaftQueueClient,
  type RaftQueueClientOptions,
  type RaftQueueNode,
  type RaftQueueNodeOptions,
} from './raft/index.ts';
export {
  DEFAULT_MAX_ATTEMPTS,
  DEFAULT_RETENTION_MS,
  type QueueSnapshot,
  type QueueStateConfig,
  QueueStateMachine,
  rejectionError,
} from './state-machine.ts';
export type {
  ClaimedJob,
  ClaimRequest,
  EnqueueRequest,
  EnqueueResult,
  JobOutcome,
  JobPayload,
  JobQueue,
  JobRecord,
  JobState,
  NackOptions,
  QueueStats,
} from './types.ts';
export {
  checkDuration,
  validateClaim,
  validateEnqueue,
  validateFenced,
  validateNack,
  validateOutcome,
} from './validate.ts';
