/**
 * The Raft-replicated job queue: nodes that agree on one ordered log of queue commands, elect a
 * new leader automatically when the leader dies, and acknowledge a job only once a majority has
 * fsynced it; and the client that API servers and workers use to reach such a cluster.
 */
export {
  RaftQueueClient,
  type RaftQueueClientOptions,
  type RaftQueueClientStats,
} from './client.ts';
export { formatAddress, parseAddress } from './client-protocol.ts';
export {
  type FollowerLag,
  type HostListener,
  type HostStatus,
  RaftHost,
  type RaftHostOptions,
  type ReplicatedApplication,
  type RoleChange,
  startRaftHost,
} from './node.ts';
export { QueueApplication } from './queue-application.ts';
export { openRaftQueueNode, type RaftQueueNode, type RaftQueueNodeOptions } from './queue-node.ts';
export { type QueueServer, type QueueServerOptions, startQueueServer } from './queue-server.ts';
export { RaftQueue, type RaftQueueOptions } from './raft-queue.ts';
export {
  openRaftStorage,
  RaftStorage,
  type RaftStorageOptions,
  type RaftStorageRecovery,
} from './storage.ts';
