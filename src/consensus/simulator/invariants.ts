/**
 * The safety properties of Raft (Figure 3 of the paper), checked incrementally as a simulation
 * runs, so each check costs little and can run after every step:
 * - Election Safety: at most one leader per term (seen from roles and from leader-only messages).
 * - Log Matching: an (index, term) pair always names the same entry with the same predecessor
 *   term, so logs sharing an entry share the whole prefix.
 * - Leader Completeness: a node that becomes leader holds every entry committed so far.
 * - State Machine Safety: no two nodes apply different entries at one index, and replicas at the
 *   same applied index have the same state digest.
 * - Durability: a committed entry never changes, even across crashes.
 */
import type { RaftNode } from '../raft.ts';
import type { Entry, NodeId, Snapshot } from '../types.ts';
import { chainHash } from './state-machines.ts';

export class PropertyViolation extends Error {
  readonly property: string;

  constructor(property: string, detail: string) {
    super(`${property}: ${detail}`);
    this.name = 'PropertyViolation';
    this.property = property;
  }
}

export function entryDigest(entry: Entry): string {
  let hash = 0;
  const data = entry.data;
  hash = 0x811c9dc5;
  for (let position = 0; position < data.length; position++) {
    hash ^= data[position]!;
    hash = Math.imul(hash, 0x01000193) >>> 0;
  }
  return `${entry.kind}/${entry.term}/${data.length}/${chainHash(hash, entry.kind).toString(16)}`;
}

interface CommittedRecord {
  term: number;
  digest: string | undefined;
}

export class SafetyChecker {
  readonly leaderOfTerm = new Map<number, NodeId>();
  private readonly entryIdentity = new Map<string, { digest: string; previousTerm: number | undefined }>();
  private readonly committed = new Map<number, CommittedRecord>();
  private highestCommitted = 0;
  private readonly appliedEntries = new Map<number, string>();
  private readonly stateDigests = new Map<number, { digest: string; by: NodeId }>();
  private readonly commitSeen = new Map<NodeId, number>();

  get commitIndex(): number {
    return this.highestCommitted;
  }

  /** Election Safety. */
  observeLeader(term: number, id: NodeId, how: string): boolean {
    const known = this.leaderOfTerm.get(term);
    if (known === undefined) {
      this.leaderOfTerm.set(term, id);
      return true;
    }
    if (known !== id) {
      throw new PropertyViolation(
        'Election Safety',
        `term ${term} has two leaders: ${known} and ${id} (${how})`,
      );
    }
    return false;
  }

  /** Log Matching, over every entry any node is about to persist. */
  observeEntries(id: NodeId, node: RaftNode, entries: readonly Entry[]): void {
    for (const entry of entries) {
      const key = `${entry.index}/${entry.term}`;
      const digest = entryDigest(entry);
      const previousTerm = node.termAt(entry.index - 1);
      const known = this.entryIdentity.get(key);
      if (!known) {
        this.entryIdentity.set(key, { digest, previousTerm });
        continue;
      }
      if (known.digest !== digest) {
        throw new PropertyViolation('Log Matching', `${id} holds a different entry at index/term ${key}`);
      }
      if (
        known.previousTerm !== undefined &&
        previousTerm !== undefined &&
        known.previousTerm !== previousTerm
      ) {
        throw new PropertyViolation(
          'Log Matching',
          `${id} has entry ${key} after term ${previousTerm}; another node has it after term ${known.previousTerm}`,
        );
      }
    }
  }

  /** Records what a node now considers committed; a committed index must never change. */
  observeCommit(id: NodeId, node: RaftNode, commit: number): void {
    const seen = this.commitSeen.get(id) ?? 0;
    if (commit <= seen) return;
    for (let index = seen + 1; index <= commit; index++) {
      const term = node.termAt(index);
      if (term === undefined) continue; // inside this node's snapshot: checked when applied
      const entry = node.entryAt(index);
      this.recordCommitted(id, index, term, entry ? entryDigest(entry) : undefined);
    }
    this.commitSeen.set(id, commit);
  }

  /** A snapshot stands for committed entries up to its index. */
  observeSnapshot(id: NodeId, snapshot: Snapshot): void {
    this.recordCommitted(id, snapshot.meta.index, snapshot.meta.term, undefined);
  }

  private recordCommitted(id: NodeId, index: number, term: number, digest: string | undefined): void {
    if (index === 0) return;
    const known = this.committed.get(index);
    if (!known) {
      this.committed.set(index, { term, digest });
      if (index > this.highestCommitted) this.highestCommitted = index;
      return;
    }
    if (
      known.term !== term ||
      (digest !== undefined && known.digest !== undefined && known.digest !== digest)
    ) {
      throw new PropertyViolation(
        'Durability of committed entries',
        `${id} considers index ${index} committed with term ${term}, but term ${known.term} was committed there`,
      );
    }
    if (known.digest === undefined && digest !== undefined) known.digest = digest;
  }

  /** Leader Completeness, checked when a node is first seen leading a term. */
  checkLeaderCompleteness(id: NodeId, node: RaftNode, term: number): void {
    const status = node.status();
    if (status.lastIndex < this.highestCommitted) {
      throw new PropertyViolation(
        'Leader Completeness',
        `${id} leads term ${term} with last index ${status.lastIndex} < committed index ${this.highestCommitted}`,
      );
    }
    for (const [index, record] of this.committed) {
      if (index < status.snapshotIndex) continue;
      const held = node.termAt(index);
      if (held !== record.term) {
        throw new PropertyViolation(
          'Leader Completeness',
          `${id} leads term ${term} but holds term ${String(held)} at committed index ${index} (term ${record.term})`,
        );
      }
    }
  }

  /** State Machine Safety: every node applies the same entry at each index. */
  observeApplied(id: NodeId, entry: Entry): void {
    const digest = entryDigest(entry);
    const known = this.appliedEntries.get(entry.index);
    if (known === undefined) this.appliedEntries.set(entry.index, digest);
    else if (known !== digest) {
      throw new PropertyViolation(
        'State Machine Safety',
        `${id} applied a different entry at index ${entry.index}`,
      );
    }
    const committed = this.committed.get(entry.index);
    if (committed && committed.term !== entry.term) {
      throw new PropertyViolation(
        'State Machine Safety',
        `${id} applied term ${entry.term} at ${entry.index}, committed term is ${committed.term}`,
      );
    }
  }

  /** Replicas at the same applied index must hold the same application state. */
  observeStateDigest(id: NodeId, index: number, digest: string): void {
    const known = this.stateDigests.get(index);
    if (!known) this.stateDigests.set(index, { digest, by: id });
    else if (known.digest !== digest) {
      throw new PropertyViolation(
        'State Machine Safety',
        `${id} has state ${digest} at applied index ${index}; ${known.by} had ${known.digest}`,
      );
    }
  }
}
