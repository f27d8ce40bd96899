/**
 * Bulkhead: at most `maxConcurrent` calls to one dependency run at once and at most
 * `maxQueued` wait; the rest are rejected at once with PF_ERR_BULKHEAD_FULL. A slow
 * dependency can then tie up only its own compartment of sockets and memory, not every
 * request the process serves. Waiters are served first-in first-out and may be cancelled.
 */
import { PixelfleetError } from '../../errors/index.ts';
import { requireNonNegativeInteger, requirePositiveInteger } from './validation.ts';

export interface BulkheadOptions {
  maxConcurrent: number;
  /** Calls allowed to wait for a slot (default 0: reject as soon as all slots are busy). */
  maxQueued?: number;
  /** Names the compartment in rejection messages. */
  name?: string;
}

interface Waiter {
  start: () => void;
}

export class Bulkhead {
  readonly maxConcurrent: number;
  readonly maxQueued: number;
  readonly name: string;
  #active = 0;
  readonly #queue: Waiter[] = [];

  constructor(options: BulkheadOptions) {
    this.maxConcurrent = requirePositiveInteger('maxConcurrent', options?.maxConcurrent);
    this.maxQueued = requireNonNegativeInteger('maxQueued', options.maxQueued ?? 0);
    this.name = options.name ?? 'bulkhead';
  }

  get active(): number {
    return this.#active;
  }

  get queued(): number {
    return this.#queue.length;
  }

  /** Runs `fn` in a slot; rejects PF_ERR_BULKHEAD_FULL when slots and queue are full. */
  async run<T>(fn: () => Promise<T>, signal?: AbortSignal): Promise<T> {
    signal?.throwIfAborted();
    if (this.#active >= this.maxConcurrent) {
      if (this.#queue.length >= this.maxQueued) {
        throw new PixelfleetError(
          'PF_ERR_BULKHEAD_FULL',
          `${this.name}: ${this.#active} calls in progress and ${this.#queue.length} waiting`,
          { extensions: { dependency: this.name } },
        );
      }
      await this.#wait(signal);
    } else {
      this.#active += 1;
    }
    try {
      return await fn();
    } finally {
      this.#releaseSlot();
    }
  }

  /** Resolves once a slot was handed over (the slot is already counted as active). */
  #wait(signal: AbortSignal | undefined): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      const onAbort = () => {
        const index = this.#queue.indexOf(waiter);
        if (index >= 0) this.#queue.splice(index, 1);
        reject(signal?.reason);
      };
      const waiter: Waiter = {
        start: () => {
          signal?.removeEventListener('abort', onAbort);
          resolve();
        },
      };
      this.#queue.push(waiter);
      signal?.addEventListener('abort', onAbort, { once: true });
    });
  }

  #releaseSlot(): void {
    const next = this.#queue.shift();
    // Hand the slot straight to the next waiter so a newcomer cannot overtake the queue.
    if (next) next.start();
    else this.#active -= 1;
  }
}
