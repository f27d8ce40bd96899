/**
 * The in-memory Raft log of one node: a compaction point (the latest snapshot's index and term),
 * the entries after it, and the split between entries the host has acknowledged as persisted
 * (stable) and entries it still has to write (unstable). Entries before the compaction point
 * exist only inside the snapshot.
 *
 * Guarantees: committed entries are never truncated (an attempt throws PF_ERR_RAFT_STATE_CORRUPT,
 * because it means persisted state was lost or a peer broke the protocol); the log is contiguous.
 */
import { PixelfleetError } from '../errors/index.ts';
import type { Entry, NodeId, Snapshot } from './types.ts';

export class RaftLog {
  /** Index of the last entry covered by the snapshot (0 when nothing was ever compacted). */
  private offset: number;
  private offsetTerm: number;
  private entries: Entry[];
  /** Latest snapshot (what a lagging follower is sent), undefined before the first compaction. */
  snapshot: Snapshot | undefined;
  /** A snapshot received from the leader that the host has not persisted yet. */
  pendingSnapshot: Snapshot | undefined;
  committed: number;
  applied: number;
  /** Last index the host acknowledged as durable; entries after it are handed out in Ready. */
  stableIndex: number;

  constructor(snapshot: Snapshot | undefined, entries: readonly Entry[], committed: number, applied: number) {
    this.snapshot = snapshot;
    this.pendingSnapshot = undefined;
    this.offset = snapshot?.meta.index ?? 0;
    this.offsetTerm = snapshot?.meta.term ?? 0;
    this.entries = [];
    let expected = this.offset + 1;
    for (const entry of entries) {
      if (entry.index <= this.offset) continue; // covered by the snapshot; storage may keep a few
      if (entry.index !== expected) {
        throw new PixelfleetError(
          'PF_ERR_RAFT_STATE_CORRUPT',
          `persisted log has a gap: expected index ${expected}, found ${entry.index}`,
        );
      }
      this.entries.push(entry);
      expected += 1;
    }
    if (committed > this.lastIndex()) {
      throw new PixelfleetError(
        'PF_ERR_RAFT_STATE_CORRUPT',
        `persisted commit index ${committed} is beyond the last persisted entry ${this.lastIndex()}`,
      );
    }
    this.committed = Math.max(committed, this.offset);
    if (applied > this.committed) {
      throw new PixelfleetError(
        'PF_ERR_RAFT_STATE_CORRUPT',
        `applied index ${applied} is beyond the commit index ${this.committed}`,
      );
    }
    this.applied = Math.max(applied, this.offset);
    this.stableIndex = this.lastIndex();
  }

  firstIndex(): number {
    return this.offset + 1;
  }

  lastIndex(): number {
    return this.offset + this.entries.length;
  }

  lastTerm(): number {
    return this.term(this.lastIndex()) ?? 0;
  }

  /** Index and term of the compaction point. */
  snapshotIndex(): number {
    return this.offset;
  }

  /** Term of the entry at `index`, or undefined when it was compacted or does not exist yet. */
  term(index: number): number | undefined {
    if (index === this.offset) return this.offsetTerm;
    if (index < this.offset || index > this.lastIndex()) return undefined;
    return this.entries[index - this.offset - 1]!.term;
  }

  entry(index: number): Entry | undefined {
    if (index <= this.offset || index > this.lastIndex()) return undefined;
    return this.entries[index - this.offset - 1];
  }

  matchTerm(index: number, term: number): boolean {
    return this.term(index) === term;
  }

  /** Raft §5.4.1: a candidate's log is at least as up to date as ours. */
  isUpToDate(lastIndex: number, lastTerm: number): boolean {
    const ourTerm = this.lastTerm();
    return lastTerm > ourTerm || (lastTerm === ourTerm && lastIndex >= this.lastIndex());
  }

  /**
   * Entries in [low, high], cut so their data stays within `maxBytes` (at least one entry is
   * returned). Undefined when `low` was compacted away: the caller must send the snapshot.
   */
  slice(low: number, high: number, maxBytes: number): Entry[] | undefined {
    if (low <= this.offset) return undefined;
    const last = Math.min(high, this.lastIndex());
    const result: Entry[] = [];
    let bytes = 0;
    for (let index = low; index <= last; index++) {
      const entry = this.entries[index - this.offset - 1]!;
      bytes += entry.data.byteLength;
      if (result.length > 0 && bytes > maxBytes) break;
      result.push(entry);
    }
    return result;
  }

  /**
   * The largest index ≤ `index` whose term is ≤ `term`: every entry after it is known to
   * conflict with a log whose entry at `index` has term `term` (the fast back-off hint).
   */
  findConflictByTerm(index: number, term: number): number {
    let candidate = Math.min(index, this.lastIndex());
    while (candidate > this.offset) {
      const candidateTerm = this.term(candidate)!;
      if (candidateTerm <= term) break;
      candidate -= 1;
    }
    return candidate;
  }

  /**
   * AppendEntries on a follower: if our log holds (prevIndex, prevTerm), make it end with
   * `entries` (dropping only a conflicting suffix, never a matching one, so a stale or
   * duplicated message cannot shorten the log) and advance the commit index. Returns the last
   * index now known to match the leader, or undefined on a consistency-check failure.
   */
  maybeAppend(
    prevIndex: number,
    prevTerm: number,
    leaderCommit: number,
    entries: Entry[],
  ): number | undefined {
    if (!this.matchTerm(prevIndex, prevTerm)) return undefined;
    const lastNewIndex = prevIndex + entries.length;
    let firstNew = entries.length;
    for (let position = 0; position < entries.length; position++) {
      const entry = entries[position]!;
      if (entry.index <= this.offset) continue; // already inside our snapshot: committed, matches
      if (this.term(entry.index) !== entry.term) {
        firstNew = position;
        break;
      }
    }
    if (firstNew < entries.length) this.append(entries.slice(firstNew));
    this.commitTo(Math.min(leaderCommit, lastNewIndex));
    return lastNewIndex;
  }

  /** Appends entries, truncating any existing suffix from the first new index on. */
  append(entries: Entry[]): void {
    if (entries.length === 0) return;
    const first = entries[0]!.index;
    if (first <= this.committed) {
      throw new PixelfleetError(
        'PF_ERR_RAFT_STATE_CORRUPT',
        `refusing to overwrite committed entry ${first} (commit index ${this.committed})`,
      );
    }
    if (first > this.lastIndex() + 1) {
      throw new PixelfleetError(
        'PF_ERR_RAFT_STATE_CORRUPT',
        `append at ${first} would leave a gap after ${this.lastIndex()}`,
      );
    }
    this.entries.length = first - this.offset - 1;
    for (const entry of entries) this.entries.push(entry);
    if (this.stableIndex >= first) this.stableIndex = first - 1;
  }

  commitTo(index: number): boolean {
    if (index <= this.committed) return false;
    if (index > this.lastIndex()) {
      throw new PixelfleetError(
        'PF_ERR_RAFT_STATE_CORRUPT',
        `commit index ${index} is beyond the last entry ${this.lastIndex()}`,
      );
    }
    this.committed = index;
    return true;
  }

  /** Entries the host has not yet acknowledged as durable. */
  unstableEntries(): Entry[] {
    return this.entries.slice(this.stableIndex - this.offset);
  }

  /**
   * The host persisted entries up to (index, term). Ignored when that entry has since been
   * replaced (the next Ready re-sends the new suffix from the last index still known durable).
   */
  stableTo(index: number, term: number): void {
    if (index > this.stableIndex && this.term(index) === term) this.stableIndex = index;
  }

  /** Committed entries the application has not applied yet, within a byte budget. */
  nextCommittedEntries(maxBytes: number): Entry[] {
    const low = Math.max(this.applied, this.offset) + 1;
    if (low > this.committed) return [];
    return this.slice(low, this.committed, maxBytes) ?? [];
  }

  appliedTo(index: number): void {
    if (index > this.applied) this.applied = index;
  }

  /** Replaces the whole log with a snapshot received from the leader. */
  restore(snapshot: Snapshot): void {
    this.offset = snapshot.meta.index;
    this.offsetTerm = snapshot.meta.term;
    this.entries = [];
    this.committed = snapshot.meta.index;
    this.stableIndex = snapshot.meta.index;
    this.snapshot = snapshot;
    this.pendingSnapshot = snapshot;
  }

  /** The host persisted the received snapshot and restored its state machine from it. */
  snapshotPersisted(snapshot: Snapshot): void {
    if (this.pendingSnapshot === snapshot) this.pendingSnapshot = undefined;
    this.appliedTo(snapshot.meta.index);
  }

  /** Host-side compaction: drops entries up to `index`, which the new snapshot covers. */
  compact(index: number, data: Uint8Array, voters: NodeId[]): Snapshot {
    const term = this.term(index);
    if (term === undefined) {
      throw new RangeError(
        `cannot compact at ${index}: outside the log [${this.offset}, ${this.lastIndex()}]`,
      );
    }
    const snapshot: Snapshot = { meta: { index, term, voters: [...voters] }, data };
    this.entries = this.entries.slice(index - this.offset);
    this.offset = index;
    this.offsetTerm = term;
    this.snapshot = snapshot;
    return snapshot;
  }
}
