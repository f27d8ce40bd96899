/**
 * Long-poll claims waiting on the leader for a job. A waiter is either idle (waiting for the
 * queue to have something claimable) or proposing (a claim command for it is in the log). Idle
 * waiters are served first come, first served; a proposal that finds nothing (another claim won
 * the race) puts its waiter back at the front. A waiter leaves on its timeout (resolving
 * `undefined`) or abort (rejecting with the signal's reason); one that times out while proposing
 * gets the proposal's answer, so a job leased for it is never dropped on the floor.
 */
import type { ClaimedJob } from '../types.ts';

export interface ClaimWaiter {
  readonly consumer: string;
  readonly leaseMs: number;
}

interface Waiter extends ClaimWaiter {
  proposing: boolean;
  expired: boolean;
  settled: boolean;
  timer: NodeJS.Timeout;
  resolve(job: ClaimedJob | undefined): void;
  reject(error: unknown): void;
}

export class ClaimWaiters {
  /** Idle waiters in arrival order. */
  #idle: Waiter[] = [];
  readonly #all = new Set<Waiter>();

  get idleCount(): number {
    return this.#idle.length;
  }

  get size(): number {
    return this.#all.size;
  }

  wait(request: { consumer: string; leaseMs: number; waitMs: number; signal?: AbortSignal }): {
    promise: Promise<ClaimedJob | undefined>;
  } {
    let waiter!: Waiter;
    const promise = new Promise<ClaimedJob | undefined>((resolve, reject) => {
      const { signal } = request;
      const finish = () => {
        waiter.settled = true;
        clearTimeout(waiter.timer);
        signal?.removeEventListener('abort', onAbort);
        this.#all.delete(waiter);
        this.#idle = this.#idle.filter((candidate) => candidate !== waiter);
      };
      const onAbort = () => {
        if (waiter.settled) return;
        finish();
        reject(signal?.reason);
      };
      waiter = {
        consumer: request.consumer,
        leaseMs: request.leaseMs,
        proposing: false,
        expired: false,
        settled: false,
        timer: setTimeout(() => {
          waiter.expired = true;
          if (!waiter.proposing && !waiter.settled) {
            finish();
            resolve(undefined);
          }
        }, request.waitMs),
        resolve: (job) => {
          if (waiter.settled) return;
          finish();
          resolve(job);
        },
        reject: (error) => {
          if (waiter.settled) return;
          finish();
          reject(error);
        },
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      this.#all.add(waiter);
      this.#idle.push(waiter);
    });
    return { promise };
  }

  /** Takes the longest-waiting idle waiter to propose a claim for it. */
  takeFirst(): ClaimWaiter | undefined {
    const waiter = this.#idle.shift();
    if (waiter) waiter.proposing = true;
    return waiter;
  }

  /** The claim proposed for `handle` was applied. */
  settle(handle: ClaimWaiter, job: ClaimedJob | undefined): { orphaned: boolean } {
    const waiter = handle as Waiter;
    waiter.proposing = false;
    if (job !== undefined || waiter.expired) {
      const orphaned = job !== undefined && waiter.settled;
      waiter.resolve(job);
      return { orphaned };
    }
    if (!waiter.settled) this.#idle.unshift(waiter);
    return { orphaned: false };
  }

  fail(handle: ClaimWaiter, error: unknown): void {
    (handle as Waiter).proposing = false;
    (handle as Waiter).reject(error);
  }

  /** Rejects every idle waiter (proposing ones are settled by their proposal). */
  rejectIdle(error: unknown): void {
    for (const waiter of [...this.#idle]) waiter.reject(error);
  }

  rejectAll(error: unknown): void {
    for (const waiter of [...this.#all]) waiter.reject(error);
  }
}
