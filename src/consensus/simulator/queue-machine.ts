/**
 * The job queue's pure state machine (src/queue/state-machine.ts) replicated by the simulated
 * Raft cluster, with queue invariants checked on every replica:
 * - replicas at the same applied index have identical queue state (digest of the snapshot);
 * - no acknowledged enqueue is lost (every acknowledged job id is known to the final state);
 * - no job is delivered twice concurrently (a claim never returns a job whose lease is live);
 * - the queue's own internal invariants hold after every command.
 * The queue module is loaded lazily so the simulator works before it exists.
 */
import type { Entry } from '../types.ts';
import { PropertyViolation } from './invariants.ts';
import type { SeededRandom } from './random.ts';
import { chainHash, type ReplicatedStateMachine } from './state-machines.ts';
import type { Workload } from './workload.ts';

type Command = { type: string; at: number; [field: string]: unknown };

interface QueueMachineLike {
  apply(command: Command): Record<string, unknown>;
  snapshot(): unknown;
  checkInvariants(): string[];
  get(id: string): unknown;
}

interface QueueMachineClass {
  new (config?: { maxAttempts?: number; retentionMs?: number }): QueueMachineLike;
  restore(snapshot: unknown): QueueMachineLike;
}

interface Lease {
  leaseId: string;
  expiresAt: number;
}

const decoder = new TextDecoder();
const accounts = ['acme', 'globex', 'initech'];

class ReplicatedQueue implements ReplicatedStateMachine {
  readonly digestEvery = 16;
  private readonly machineClass: QueueMachineClass;
  private machine: QueueMachineLike;
  /** Commands carry the proposer's clock; applying max(at, lastAt) keeps replicated time monotonic. */
  private lastAt = 0;
  /** Live leases as this replica sees them: the "delivered twice concurrently" check. */
  leases = new Map<string, Lease>();

  constructor(machineClass: QueueMachineClass) {
    this.machineClass = machineClass;
    this.machine = new machineClass({ maxAttempts: 3 });
  }

  apply(entry: Entry): void {
    if (entry.kind !== 'normal') return;
    const command = JSON.parse(decoder.decode(entry.data)) as Command;
    this.lastAt = Math.max(this.lastAt, command.at);
    command.at = this.lastAt;
    const result = this.machine.apply(command);
    const id = typeof command.id === 'string' ? command.id : undefined;
    if (command.type === 'claim') {
      const job = result.job as { id: string; leaseId: string; leaseExpiresAt: number } | undefined;
      if (!job) return;
      const previous = this.leases.get(job.id);
      if (previous && previous.expiresAt > command.at) {
        throw new PropertyViolation(
          'Queue: no concurrent redelivery',
          `job ${job.id} claimed at ${command.at} while lease ${previous.leaseId} is live until ${previous.expiresAt} (index ${entry.index})`,
        );
      }
      this.leases.set(job.id, { leaseId: job.leaseId, expiresAt: job.leaseExpiresAt });
    } else if ((command.type === 'ack' || command.type === 'nack') && id && result.rejection === undefined) {
      if (this.leases.get(id)?.leaseId === command.leaseId) this.leases.delete(id);
    } else if (command.type === 'extend' && id && result.rejection === undefined) {
      const lease = this.leases.get(id);
      if (lease && typeof result.leaseExpiresAt === 'number') lease.expiresAt = result.leaseExpiresAt;
    }
  }

  snapshot(): Uint8Array {
    const state = { queue: this.machine.snapshot(), lastAt: this.lastAt, leases: [...this.leases] };
    return new TextEncoder().encode(JSON.stringify(state));
  }

  restore(data: Uint8Array): void {
    const state = JSON.parse(decoder.decode(data)) as {
      queue: unknown;
      lastAt: number;
      leases: [string, Lease][];
    };
    this.machine = this.machineClass.restore(state.queue);
    this.lastAt = state.lastAt;
    this.leases = new Map(state.leases);
  }

  digest(): string {
    return chainHash(0, JSON.stringify(this.machine.snapshot())).toString(16);
  }

  checkInvariants(): void {
    const problems = this.machine.checkInvariants();
    if (problems.length > 0) throw new PropertyViolation('Queue invariants', problems.join('; '));
  }

  knows(id: string): boolean {
    return this.machine.get(id) !== undefined;
  }
}

function queueWorkload(machineClass: QueueMachineClass): Workload {
  let jobs = 0;
  return {
    name: 'job queue',
    createStateMachine: () => new ReplicatedQueue(machineClass),
    nextProposal(random: SeededRandom, now: number, replica: ReplicatedStateMachine): string {
      const queue = replica as ReplicatedQueue;
      const roll = random.integer(0, 99);
      const leased = [...queue.leases];
      let command: Command;
      if (roll < 40) {
        jobs += 1;
        command = {
          type: 'enqueue',
          at: now,
          id: `job-${jobs}`,
          account: random.pick(accounts),
          payload: { n: jobs },
        };
      } else if (roll < 65) {
        command = {
          type: 'claim',
          at: now,
          consumer: `worker-${random.integer(1, 3)}`,
          leaseMs: random.integer(30, 400),
        };
      } else if (roll < 80 && leased.length > 0) {
        const [id, lease] = random.pick(leased);
        command = {
          type: 'ack',
          at: now,
          id,
          leaseId: lease.leaseId,
          outcome: { bytes: random.integer(1, 999) },
        };
      } else if (roll < 88 && leased.length > 0) {
        const [id, lease] = random.pick(leased);
        command = {
          type: 'nack',
          at: now,
          id,
          leaseId: lease.leaseId,
          reason: 'simulated failure',
          retry: random.chance(0.7),
        };
      } else if (roll < 94 && leased.length > 0) {
        const [id, lease] = random.pick(leased);
        command = { type: 'extend', at: now, id, leaseId: lease.leaseId, leaseMs: random.integer(30, 400) };
      } else {
        command = { type: 'tick', at: now };
      }
      return JSON.stringify(command);
    },
    checkAcknowledged(replica, acknowledged) {
      const queue = replica as ReplicatedQueue;
      for (const [index, value] of acknowledged) {
        const command = JSON.parse(value) as Command;
        if (command.type === 'enqueue' && !queue.knows(String(command.id))) {
          throw new PropertyViolation(
            'Queue: no acknowledged enqueue lost',
            `job ${String(command.id)} (index ${index})`,
          );
        }
      }
    },
  };
}

/** The queue workload factory, or undefined when the queue state machine is not available. */
export async function queueWorkloadFactory(): Promise<(() => Workload) | undefined> {
  const specifier = new URL('../../queue/state-machine.ts', import.meta.url).href;
  let module: { QueueStateMachine?: QueueMachineClass };
  try {
    module = (await import(specifier)) as { QueueStateMachine?: QueueMachineClass };
  } catch {
    return undefined;
  }
  const machineClass = module.QueueStateMachine;
  if (typeof machineClass !== 'function') return undefined;
  return () => queueWorkload(machineClass);
}
