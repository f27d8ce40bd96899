/**
 * Long-poll claims waiting for a job. Waiters are served first come, first served whenever the
 * queue may have something claimable (after an enqueue, a nack, a lease expiry or a backoff
 * ending); each leaves on its own timeout (resolving `undefined`) or abort (rejecting with the
 * signal's reason).
 */
import type { ClaimedJob } from '../types.ts';

export interface ClaimWaiter {
  consumer: string;
  leaseMs: number;
  resolve(job: ClaimedJob | undefined): void;
  reject(error: unknown): void;
}

interface Entry extends ClaimWaiter {
  timer: NodeJS.Timeout;
  cleanup(): void;
}

export class ClaimWaiters {
  /** A Set keeps arrival order and removes in O(1) on timeout or abort. */
  readonly #entries = new Set<Entry>();

  get size(): number {
    return this.#entries.size;
  }

  wait(request: {
    consumer: string;
    leaseMs: number;
    waitMs: number;
    signal?: AbortSignal;
  }): Promise<ClaimedJob | undefined> {
    return new Promise((resolve, reject) => {
      const { signal } = request;
      const onAbort = () => {
        entry.cleanup();
        reject(signal?.reason);
      };
      const entry: Entry = {
        consumer: request.consumer,
        leaseMs: request.leaseMs,
        resolve: (job) => {
          entry.cleanup();
          resolve(job);
        },
        reject: (error) => {
          entry.cleanup();
          reject(error);
        },
        timer: setTimeout(() => entry.resolve(undefined), request.waitMs),
        cleanup: () => {
          clearTimeout(entry.timer);
          signal?.removeEventListener('abort', onAbort);
          this.#entries.delete(entry);
        },
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      this.#entries.add(entry);
    });
  }

  /** The longest-waiting claim, still registered (the caller resolves or rejects it). */
  first(): ClaimWaiter | undefined {
    return this.#entries.values().next().value;
  }

  rejectAll(error: unknown): void {
    for (const entry of [...this.#entries]) entry.reject(error);
  }
}
