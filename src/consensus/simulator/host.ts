/**
 * One simulated server: a RaftNode, the disk it persists to and the application it applies to.
 * The disk keeps only what was fsynced. A Ready's write goes to the disk as a sequence of records
 * (snapshot, then entries, then hard state, like a write-ahead log); until the simulated fsync
 * completes, a crash keeps only a random prefix of that sequence (a torn tail), and nothing of
 * the Ready has been sent or applied yet.
 */

import type { RaftOptions } from '../config.ts';
import { RaftNode } from '../raft.ts';
import type { Ready } from '../ready.ts';
import type { Entry, HardState, NodeId, PersistedState, Snapshot } from '../types.ts';
import type { SeededRandom } from './random.ts';
import type { ReplicatedStateMachine } from './state-machines.ts';

type WriteRecord =
  | { kind: 'snapshot'; snapshot: Snapshot }
  | { kind: 'entry'; entry: Entry; truncate: boolean }
  | { kind: 'hardState'; hardState: HardState };

export interface DurableState {
  hardState: HardState;
  snapshot: Snapshot | undefined;
  entries: Entry[];
}

export class SimulatedHost {
  readonly id: NodeId;
  node: RaftNode | undefined;
  readonly durable: DurableState = {
    hardState: { term: 0, vote: null, commit: 0 },
    snapshot: undefined,
    entries: [],
  };
  stateMachine: ReplicatedStateMachine;
  /** The Ready whose write is in flight (handed to the disk, fsync not yet complete). */
  pending: { ready: Ready; records: WriteRecord[] } | undefined;
  /** Index of the last entry applied to `stateMachine` (the snapshot's after a restore). */
  appliedIndex = 0;
  /** Simulated ms between ticks: hosts' clocks drift apart. */
  tickPeriod: number;
  /** Bumped on every crash so events scheduled for an earlier incarnation are ignored. */
  incarnation = 0;
  private readonly createStateMachine: () => ReplicatedStateMachine;
  private readonly nodeOptions: Omit<RaftOptions, 'id' | 'voters' | 'random' | 'storage'>;
  private readonly random: SeededRandom;
  private readonly bootstrapVoters: NodeId[];

  constructor(
    id: NodeId,
    bootstrapVoters: NodeId[],
    nodeOptions: Omit<RaftOptions, 'id' | 'voters' | 'random' | 'storage'>,
    createStateMachine: () => ReplicatedStateMachine,
    random: SeededRandom,
    tickPeriod: number,
  ) {
    this.id = id;
    this.bootstrapVoters = bootstrapVoters;
    this.nodeOptions = nodeOptions;
    this.createStateMachine = createStateMachine;
    this.random = random;
    this.tickPeriod = tickPeriod;
    this.stateMachine = createStateMachine();
    this.start();
  }

  get alive(): boolean {
    return this.node !== undefined;
  }

  /** Boots (or reboots) from what the disk holds. */
  start(): RaftNode {
    const storage: PersistedState = {
      hardState: { ...this.durable.hardState },
      entries: [...this.durable.entries],
    };
    if (this.durable.snapshot) storage.snapshot = this.durable.snapshot;
    this.stateMachine = this.createStateMachine();
    this.appliedIndex = this.durable.snapshot?.meta.index ?? 0;
    if (this.durable.snapshot) this.stateMachine.restore(this.durable.snapshot.data);
    this.node = new RaftNode({
      ...this.nodeOptions,
      id: this.id,
      voters: this.bootstrapVoters,
      random: () => this.random.next(),
      storage,
    });
    return this.node;
  }

  /** Power loss: the in-flight write survives only as a random prefix of its records. */
  crash(): { keptRecords: number; lostRecords: number } {
    let kept = 0;
    let lost = 0;
    if (this.pending) {
      const records = this.pending.records;
      kept = this.random.integer(0, records.length);
      this.write(records.slice(0, kept));
      lost = records.length - kept;
    }
    this.pending = undefined;
    this.node = undefined;
    this.incarnation += 1;
    return { keptRecords: kept, lostRecords: lost };
  }

  /** Hands a Ready's durable part to the disk; returns false when there is nothing to write. */
  beginWrite(ready: Ready): boolean {
    const records: WriteRecord[] = [];
    if (ready.snapshot) records.push({ kind: 'snapshot', snapshot: ready.snapshot });
    ready.entries.forEach((entry, position) => {
      records.push({ kind: 'entry', entry, truncate: position === 0 });
    });
    if (ready.hardState) records.push({ kind: 'hardState', hardState: ready.hardState });
    this.pending = { ready, records };
    return records.length > 0;
  }

  /** The fsync completed: everything handed over is now durable. */
  finishWrite(): Ready {
    const pending = this.pending!;
    this.write(pending.records);
    this.pending = undefined;
    return pending.ready;
  }

  /** Compaction: the snapshot write is atomic, then the covered entries are deleted. */
  persistSnapshot(snapshot: Snapshot): void {
    this.durable.snapshot = snapshot;
    this.durable.entries = this.durable.entries.filter((entry) => entry.index > snapshot.meta.index);
  }

  /** Whether the disk still holds the entry at (index, term) or a snapshot covering it. */
  durablyHolds(index: number, term: number): boolean {
    const snapshot = this.durable.snapshot;
    if (snapshot && index <= snapshot.meta.index)
      return index < snapshot.meta.index || snapshot.meta.term === term;
    if (index === 0) return true;
    const first = this.durable.entries[0];
    if (!first) return false;
    const entry = this.durable.entries[index - first.index];
    return entry !== undefined && entry.index === index && entry.term === term;
  }

  private write(records: WriteRecord[]): void {
    for (const record of records) {
      if (record.kind === 'snapshot') {
        this.persistSnapshot(record.snapshot);
      } else if (record.kind === 'entry') {
        if (record.truncate) {
          const from = record.entry.index;
          this.durable.entries = this.durable.entries.filter((entry) => entry.index < from);
        }
        this.durable.entries.push(record.entry);
      } else {
        this.durable.hardState = { ...record.hardState };
      }
    }
  }
}
