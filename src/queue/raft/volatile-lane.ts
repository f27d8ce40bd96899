/**
 * The leader's volatile lane: jobs enqueued with `durable: false` (synchronous requests, whose
 * input bytes and waiting client live in an api server and die with it) kept in a second queue
 * state machine on the leader only, never written to the Raft log. Enqueue, claim, ack, nack
 * and extend of such a job cost no log entry, no fsync and no round trip to the followers.
 *
 * What it gives up, on purpose: the lane lives for one leadership. When this node stops leading
 * the lane is dropped; the new leader starts an empty one. Clients learn it from the lane token
 * (a random name per lane) and re-send the volatile jobs they still wait for
 * (`RaftQueueClient`). A lease of the old lane can never fence a job of a new one: every lease
 * id handed out is prefixed with the lane token, and a lease id of another lane is refused with
 * PF_ERR_LEASE_LOST.
 */
import { randomBytes } from 'node:crypto';
import { PixelfleetError } from '../../errors/index.ts';
import type { CommandResult, QueueCommand } from '../commands.ts';
import { type QueueStateConfig, QueueStateMachine } from '../state-machine.ts';
import type { ClaimedJob } from '../types.ts';

/** Lease ids the volatile lanes hand out: `<lane token>.<state machine lease id>`. */
const volatileLeasePattern = /^[A-Za-z0-9_-]{12}\.lease-\d+$/;

/** Whether a lease id was handed out by a volatile lane (this one or an earlier leader's). */
export function isVolatileLease(leaseId: string): boolean {
  return volatileLeasePattern.test(leaseId);
}

export class VolatileLane {
  /** Names this lane: a client that sees another token knows its volatile jobs are gone. */
  readonly token: string;
  readonly machine: QueueStateMachine;
  readonly #leasePrefix: string;

  constructor(config: Partial<QueueStateConfig>) {
    this.token = randomBytes(9).toString('base64url');
    this.machine = new QueueStateMachine(config);
    this.#leasePrefix = `${this.token}.`;
  }

  has(id: string): boolean {
    return this.machine.has(id);
  }

  get claimable(): number {
    return this.machine.claimable;
  }

  apply<C extends QueueCommand>(command: C): CommandResult<C> {
    return this.machine.apply(command);
  }

  /** A claimed job as the caller sees it: its lease id names this lane. */
  exposed(job: ClaimedJob | undefined): ClaimedJob | undefined {
    if (job === undefined) return undefined;
    return { ...job, leaseId: this.#leasePrefix + job.leaseId };
  }

  /** The state machine's own lease id, or a PF_ERR_LEASE_LOST for a lease of another lane. */
  internalLeaseId(id: string, leaseId: string): string {
    if (!leaseId.startsWith(this.#leasePrefix)) {
      throw new PixelfleetError(
        'PF_ERR_LEASE_LOST',
        `the lease on job ${id} was granted by an earlier queue leader; the job was handed out again`,
      );
    }
    return leaseId.slice(this.#leasePrefix.length);
  }
}
