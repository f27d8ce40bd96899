/**
 * The contract between the pure Raft core and its host (the code that owns disk, network and
 * the application state machine).
 *
 * The host loop:
 *   1. Feed inputs: `tick()` on a timer, `step(message)` for each received message, and
 *      `propose` / `proposeConfChange` / `readIndex` / `transferLeadership` / `compact`.
 *   2. `const ready = node.ready()`; if undefined there is nothing to do.
 *   3. Persist, in this order, and fsync when `ready.mustSync`:
 *        a. `ready.snapshot`, if any: store it, discard every stored entry it covers, and restore
 *           the application state machine from `snapshot.data`;
 *        b. `ready.entries`: first delete every stored entry with index ≥ `entries[0].index`
 *           (a conflicting suffix the leader overwrote), then append them;
 *        c. `ready.hardState`, if any (term, vote, commit).
 *      Entries must reach the disk before the hard state that commits them: a torn write may
 *      lose a suffix of (snapshot, entries, hardState) but never keep a later part without the
 *      earlier ones.
 *   4. Only after step 3 is durable: send `ready.messages` (a vote or an append acknowledgement
 *      promises state that must survive a crash).
 *   5. Apply `ready.committedEntries` in order (after the snapshot of step 3a). Each is already
 *      durable locally and committed by a quorum. Serve `ready.readStates`: a read with context
 *      C is linearizable once the application has applied up to `index`.
 *   6. `node.advance(ready)`: tells the core steps 3–5 are done. Config entries take effect here.
 *
 * At most one Ready is outstanding: `ready()` returns undefined until `advance` is called. Inputs
 * may be fed between `ready()` and `advance()` (e.g. messages arriving during an fsync); what
 * they produce comes in the next Ready.
 *
 * On restart, hand the core exactly what was persisted (`PersistedState`): the last hard state,
 * the latest snapshot (from step 3a or from `compact`) and the entries after it.
 */
import type { Message } from './messages.ts';
import type { Entry, HardState, NodeId, Snapshot } from './types.ts';

export type Role = 'follower' | 'preCandidate' | 'candidate' | 'leader';

/** Volatile state worth reporting (metrics, redirects); never persisted. */
export interface SoftState {
  role: Role;
  leader: NodeId | null;
}

/** A confirmed linearizable read: serve `context` once applied index ≥ `index`. */
export interface ReadState {
  index: number;
  context: string;
}

export interface Ready {
  /** Present when role or known leader changed since the previous Ready. */
  softState?: SoftState;
  /** Present when term, vote or commit changed since the last persisted hard state. */
  hardState?: HardState;
  /** A snapshot received from the leader, to persist and restore before anything else. */
  snapshot?: Snapshot;
  /** Entries to persist; they replace any stored entry at or after `entries[0].index`. */
  entries: Entry[];
  /** To send only after everything above is durable. */
  messages: Message[];
  /** To apply in order, after persisting. */
  committedEntries: Entry[];
  readStates: ReadState[];
  /** True when term, vote, entries or a snapshot changed: the write must be fsynced. */
  mustSync: boolean;
}

/** What `propose` returns: the proposal is committed when an entry with this index AND term is applied. */
export interface ProposalTicket {
  index: number;
  term: number;
}

export interface FollowerStatus {
  match: number;
  next: number;
  state: 'probe' | 'replicate' | 'snapshot';
  recentActive: boolean;
  inflight: number;
}

export interface RaftStatus {
  id: NodeId;
  role: Role;
  term: number;
  vote: NodeId | null;
  leader: NodeId | null;
  commit: number;
  applied: number;
  firstIndex: number;
  lastIndex: number;
  lastTerm: number;
  snapshotIndex: number;
  voters: NodeId[];
  leadTransferee: NodeId | null;
  /** Leader only: what it knows of each voter's log. */
  progress: Record<NodeId, FollowerStatus>;
}
