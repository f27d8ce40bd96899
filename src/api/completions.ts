/**
 * Synchronous requests wait here for their job to finish. The dispatcher settles a waiter when
 * the job is acked (or fails for good); a waiter that outlives its deadline rejects with 504 and
 * is forgotten, so a late result is simply dropped.
 */
import { PixelfleetError } from '../errors/index.ts';
import type { JobResult } from '../worker/dispatcher.ts';

interface Waiter {
  resolve(result: JobResult): void;
  reject(error: unknown): void;
  timer: NodeJS.Timeout;
}

export class Completions {
  readonly #waiters = new Map<string, Waiter>();

  /** Registers interest in job `id` before it is enqueued, so no completion can be missed. */
  wait(id: string, timeoutMs: number): Promise<JobResult> {
    return new Promise<JobResult>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#waiters.delete(id);
        reject(
          new PixelfleetError(
            'PF_ERR_DEADLINE_EXCEEDED',
            `the image was not converted within the request deadline of ${timeoutMs} ms; retry later`,
          ),
        );
      }, timeoutMs);
      this.#waiters.set(id, { resolve, reject, timer });
    });
  }

  complete(id: string, result: JobResult): void {
    const waiter = this.#waiters.get(id);
    if (!waiter) return;
    this.#waiters.delete(id);
    clearTimeout(waiter.timer);
    waiter.resolve(result);
  }

  fail(id: string, error: unknown): void {
    const waiter = this.#waiters.get(id);
    if (!waiter) return;
    this.#waiters.delete(id);
    clearTimeout(waiter.timer);
    waiter.reject(error);
  }

  /** Forget a waiter whose request ended another way (enqueue failed, client gone). */
  cancel(id: string): void {
    const waiter = this.#waiters.get(id);
    if (!waiter) return;
    this.#waiters.delete(id);
    clearTimeout(waiter.timer);
  }

  get size(): number {
    return this.#waiters.size;
  }
}
