/**
 * The messages Raft nodes exchange. Every message carries the sender's term, which is how stale
 * leaders and candidates learn they are behind. The transport only has to deliver these values
 * (it may lose, delay, duplicate or reorder them: the protocol tolerates all four).
 */
import type { Entry, NodeId, Snapshot } from './types.ts';

interface Envelope {
  from: NodeId;
  to: NodeId;
  term: number;
}

/** AppendEntries: replicate `entries` after (prevIndex, prevTerm); also carries the commit index. */
export interface AppendMessage extends Envelope {
  type: 'append';
  prevIndex: number;
  prevTerm: number;
  entries: Entry[];
  commit: number;
}

/**
 * Answer to `append` and `snapshot`. Accepted: `index` is the last index now known to match the
 * leader. Rejected: `index` is the rejected prevIndex and `hint` lets the leader skip a whole
 * conflicting term at once (fast back-off) instead of one index per round trip.
 */
export interface AppendResponseMessage extends Envelope {
  type: 'appendResponse';
  index: number;
  reject: boolean;
  hint?: { index: number; term: number };
}

/** Leader liveness plus the commit index the follower may use (never beyond what it matched). */
export interface HeartbeatMessage extends Envelope {
  type: 'heartbeat';
  commit: number;
  /** Set when the heartbeat also confirms leadership for a ReadIndex request. */
  context?: string;
}

export interface HeartbeatResponseMessage extends Envelope {
  type: 'heartbeatResponse';
  context?: string;
}

/** RequestVote (and the non-binding pre-vote, sent with the term the candidate would use). */
export interface VoteMessage extends Envelope {
  type: 'vote' | 'preVote';
  lastIndex: number;
  lastTerm: number;
  /** True when the election follows a leadership transfer: voters bypass their leader lease. */
  transfer: boolean;
}

export interface VoteResponseMessage extends Envelope {
  type: 'voteResponse' | 'preVoteResponse';
  reject: boolean;
}

/** InstallSnapshot, sent whole: the follower needs entries the leader has compacted away. */
export interface SnapshotMessage extends Envelope {
  type: 'snapshot';
  snapshot: Snapshot;
}

/** Leadership transfer: the receiver campaigns at once, skipping pre-vote. */
export interface TimeoutNowMessage extends Envelope {
  type: 'timeoutNow';
}

/** A follower forwards a linearizable read to its leader. */
export interface ReadIndexMessage extends Envelope {
  type: 'readIndex';
  context: string;
}

/** The leader's answer: the read is linearizable once the follower has applied `index`. */
export interface ReadIndexResponseMessage extends Envelope {
  type: 'readIndexResponse';
  context: string;
  index: number;
}

export type Message =
  | AppendMessage
  | AppendResponseMessage
  | HeartbeatMessage
  | HeartbeatResponseMessage
  | VoteMessage
  | VoteResponseMessage
  | SnapshotMessage
  | TimeoutNowMessage
  | ReadIndexMessage
  | ReadIndexResponseMessage;

export type MessageType = Message['type'];

export const messageTypes: readonly MessageType[] = [
  'append',
  'appendResponse',
  'heartbeat',
  'heartbeatResponse',
  'vote',
  'preVote',
  'voteResponse',
  'preVoteResponse',
  'snapshot',
  'timeoutNow',
  'readIndex',
  'readIndexResponse',
];

/** Bytes of application data a message carries (what batching limits count). */
export function payloadSize(entries: readonly Entry[]): number {
  let size = 0;
  for (const entry of entries) size += entry.data.byteLength;
  return size;
}
