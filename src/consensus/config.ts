/**
 * Options of a Raft node and their validation. Every option is checked when the node is built
 * and a bad one throws a `RangeError` naming it, so a misconfigured cluster fails at start-up
 * rather than electing strangely later.
 */
import type { NodeId, PersistedState } from './types.ts';

export type ReadOnlyMode = 'safe' | 'lease';

export interface RaftOptions {
  /** This node's id; must be non-empty. */
  id: NodeId;
  /**
   * Bootstrap membership, used only when `storage` holds no snapshot. A node joining an existing
   * cluster passes `[]`: it stays passive until the leader replicates a configuration naming it.
   */
  voters: readonly NodeId[];
  /**
   * Uniform random number in [0, 1): the only source of randomness (election timeout jitter).
   * Injected so a simulator can replay a run from a seed.
   */
  random: () => number;
  /** Ticks without hearing from a leader before campaigning (randomized in [n, 2n)). Default 10. */
  electionTick?: number;
  /** Ticks between leader heartbeats; must be below `electionTick`. Default 1. */
  heartbeatTick?: number;
  /** Run a non-binding pre-vote first, so a node back from a partition cannot bump terms. Default true. */
  preVote?: boolean;
  /** A leader that has not heard from a quorum within `electionTick` steps down. Default true. */
  checkQuorum?: boolean;
  /**
   * 'safe': every ReadIndex is confirmed by a quorum heartbeat round. 'lease': the leader answers
   * from its lease (needs `checkQuorum`; only safe when clocks drift less than the election timeout).
   */
  readOnly?: ReadOnlyMode;
  /** Upper bound of entry bytes per append message (one entry is always allowed). Default 1 MiB. */
  maxSizePerMessage?: number;
  /** Append messages in flight per follower before the leader waits for acknowledgements. Default 256. */
  maxInflightMessages?: number;
  /** Entry bytes in flight per follower; 0 means unlimited. Default 0. */
  maxInflightBytes?: number;
  /** Bytes of committed entries handed to the application per Ready. Default 4 MiB. */
  maxCommittedSizePerReady?: number;
  /** Proposals are refused while this many bytes are uncommitted; 0 means unlimited. Default 0. */
  maxUncommittedEntriesSize?: number;
  /** State recovered from disk after a restart; absent for a brand-new node. */
  storage?: PersistedState;
}

export interface ResolvedRaftOptions {
  id: NodeId;
  voters: NodeId[];
  random: () => number;
  electionTick: number;
  heartbeatTick: number;
  preVote: boolean;
  checkQuorum: boolean;
  readOnly: ReadOnlyMode;
  maxSizePerMessage: number;
  maxInflightMessages: number;
  maxInflightBytes: number;
  maxCommittedSizePerReady: number;
  maxUncommittedEntriesSize: number;
  storage: PersistedState | undefined;
}

function positiveInteger(name: string, value: unknown, fallback: number): number {
  const resolved = value === undefined ? fallback : value;
  if (typeof resolved !== 'number' || !Number.isSafeInteger(resolved) || resolved < 1) {
    throw new RangeError(`raft option ${name} must be a positive integer, got ${String(value)}`);
  }
  return resolved;
}

function nonNegativeInteger(name: string, value: unknown, fallback: number): number {
  const resolved = value === undefined ? fallback : value;
  if (typeof resolved !== 'number' || !Number.isSafeInteger(resolved) || resolved < 0) {
    throw new RangeError(`raft option ${name} must be a non-negative integer, got ${String(value)}`);
  }
  return resolved;
}

function flag(name: string, value: unknown, fallback: boolean): boolean {
  const resolved = value === undefined ? fallback : value;
  if (typeof resolved !== 'boolean') {
    throw new RangeError(`raft option ${name} must be a boolean, got ${String(value)}`);
  }
  return resolved;
}

export function resolveRaftOptions(options: RaftOptions): ResolvedRaftOptions {
  if (options === null || typeof options !== 'object') {
    throw new RangeError('raft options must be an object');
  }
  if (typeof options.id !== 'string' || options.id.length === 0) {
    throw new RangeError('raft option id must be a non-empty string');
  }
  if (!Array.isArray(options.voters)) {
    throw new RangeError('raft option voters must be an array of node ids');
  }
  const voters = [...options.voters];
  for (const voter of voters) {
    if (typeof voter !== 'string' || voter.length === 0) {
      throw new RangeError('raft option voters must hold non-empty string ids');
    }
  }
  if (new Set(voters).size !== voters.length) {
    throw new RangeError('raft option voters must not repeat a node id');
  }
  if (typeof options.random !== 'function') {
    throw new RangeError('raft option random must be a function returning a number in [0, 1)');
  }
  const electionTick = positiveInteger('electionTick', options.electionTick, 10);
  const heartbeatTick = positiveInteger('heartbeatTick', options.heartbeatTick, 1);
  if (heartbeatTick >= electionTick) {
    throw new RangeError(
      `raft option heartbeatTick (${heartbeatTick}) must be below electionTick (${electionTick})`,
    );
  }
  if (electionTick < 2) throw new RangeError('raft option electionTick must be at least 2');
  const readOnly = options.readOnly ?? 'safe';
  if (readOnly !== 'safe' && readOnly !== 'lease') {
    throw new RangeError(`raft option readOnly must be 'safe' or 'lease', got ${String(readOnly)}`);
  }
  const checkQuorum = flag('checkQuorum', options.checkQuorum, true);
  if (readOnly === 'lease' && !checkQuorum) {
    throw new RangeError("raft option readOnly 'lease' requires checkQuorum: true");
  }
  if (options.storage !== undefined && (options.storage === null || typeof options.storage !== 'object')) {
    throw new RangeError('raft option storage must be the persisted state object');
  }
  return {
    id: options.id,
    voters,
    random: options.random,
    electionTick,
    heartbeatTick,
    preVote: flag('preVote', options.preVote, true),
    checkQuorum,
    readOnly,
    maxSizePerMessage: positiveInteger('maxSizePerMessage', options.maxSizePerMessage, 1024 * 1024),
    maxInflightMessages: positiveInteger('maxInflightMessages', options.maxInflightMessages, 256),
    maxInflightBytes: nonNegativeInteger('maxInflightBytes', options.maxInflightBytes, 0),
    maxCommittedSizePerReady: positiveInteger(
      'maxCommittedSizePerReady',
      options.maxCommittedSizePerReady,
      4 * 1024 * 1024,
    ),
    maxUncommittedEntriesSize: nonNegativeInteger(
      'maxUncommittedEntriesSize',
      options.maxUncommittedEntriesSize,
      0,
    ),
    storage: options.storage,
  };
}
