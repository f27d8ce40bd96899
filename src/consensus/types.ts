/**
 * Shapes shared by the Raft core, its storage and its transport (in the style of etcd's raft).
 * The core is pure: ticks, messages and proposals in; a `Ready` out. Storage persists what a
 * Ready says to persist; transport delivers what it says to send; the application applies what
 * it says is committed. Node ids are strings ("n1").
 */

export type NodeId = string;

export interface Entry {
  term: number;
  index: number;
  /** 'normal' carries application data; 'config' a membership change; 'noop' a new leader's first entry. */
  kind: 'normal' | 'config' | 'noop';
  data: Uint8Array;
}

/** What must be on disk before any message that depends on it is sent. */
export interface HardState {
  term: number;
  vote: NodeId | null;
  commit: number;
}

export interface SnapshotMeta {
  index: number;
  term: number;
  /** Voters as of the snapshot. */
  voters: NodeId[];
}

export interface Snapshot {
  meta: SnapshotMeta;
  data: Uint8Array;
}

/**
 * What a node's storage hands back on restart: exactly what earlier Readies told it to persist
 * and it fsynced. `entries` follow the snapshot (or index 0) without gaps.
 */
export interface PersistedState {
  hardState: HardState;
  snapshot?: Snapshot;
  entries: Entry[];
  /**
   * Highest index the application's own durable state already reflects (default: the snapshot
   * index, i.e. the application restored from the snapshot and replays the log after it).
   */
  applied?: number;
}
