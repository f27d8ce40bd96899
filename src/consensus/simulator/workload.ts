/**
 * What the simulated clients do and which application the cluster replicates. A workload makes
 * the replicas (pluggable state machines), generates each client proposal, and checks at the end
 * that every acknowledged proposal survived in the final replicated state.
 */
import type { SeededRandom } from './random.ts';
import { AppendOnlyList, type ReplicatedStateMachine } from './state-machines.ts';

export interface Workload {
  readonly name: string;
  createStateMachine(): ReplicatedStateMachine;
  /** The data of the next client proposal; `replica` is the target node's own replica. */
  nextProposal(random: SeededRandom, now: number, replica: ReplicatedStateMachine): string;
  /** Throws when an acknowledged proposal is missing from the final state of `replica`. */
  checkAcknowledged(replica: ReplicatedStateMachine, acknowledged: ReadonlyMap<number, string>): void;
}

/** Clients append unique values to a list. */
export function listWorkload(): Workload {
  let counter = 0;
  return {
    name: 'append-only list',
    createStateMachine: () => new AppendOnlyList(),
    nextProposal: () => `v${++counter}`,
    checkAcknowledged(replica, acknowledged) {
      const values = new Set((replica as AppendOnlyList).values);
      for (const [index, value] of acknowledged) {
        if (!values.has(value)) throw new Error(`acknowledged proposal ${value} (index ${index}) is missing`);
      }
    },
  };
}
