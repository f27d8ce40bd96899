/**
 * The bounded queue of payloads waiting for one peer. It never holds more than `maxBytes` of
 * framed payload, so a slow or partitioned peer costs the sender bounded memory; when full it
 * drops (oldest or newest, by policy) and reports how many, because consensus tolerates lost
 * messages but not an unbounded heap.
 */
import type { DropPolicy } from './types.ts';

/** Wire bytes a queued payload will occupy (its length prefix included). */
function accountedBytes(payload: Uint8Array): number {
  return 4 + payload.length;
}

export class OutboundQueue {
  readonly #maxBytes: number;
  readonly #policy: DropPolicy;
  #items: Array<Uint8Array | undefined> = [];
  #head = 0;
  #bytes = 0;

  constructor(maxBytes: number, policy: DropPolicy) {
    this.#maxBytes = maxBytes;
    this.#policy = policy;
  }

  get length(): number {
    return this.#items.length - this.#head;
  }

  get bytes(): number {
    return this.#bytes;
  }

  /** Enqueue; returns how many payloads were dropped (possibly this one) and whether it was kept. */
  push(payload: Uint8Array): { accepted: boolean; dropped: number } {
    const size = accountedBytes(payload);
    if (size > this.#maxBytes) return { accepted: false, dropped: 1 };
    if (this.#bytes + size > this.#maxBytes && this.#policy === 'newest')
      return { accepted: false, dropped: 1 };
    let dropped = 0;
    while (this.#bytes + size > this.#maxBytes) {
      this.#shift();
      dropped += 1;
    }
    this.#items.push(payload);
    this.#bytes += size;
    return { accepted: true, dropped };
  }

  /** Removes and returns the oldest payloads up to about `maxBytes` (always at least one). */
  takeBatch(maxBytes: number): Uint8Array[] {
    const batch: Uint8Array[] = [];
    let batchBytes = 0;
    while (this.length > 0) {
      const next = this.#items[this.#head]!;
      const size = accountedBytes(next);
      if (batch.length > 0 && batchBytes + size > maxBytes) break;
      batch.push(this.#shift());
      batchBytes += size;
    }
    return batch;
  }

  /** Empties the queue; returns how many payloads were discarded. */
  clear(): number {
    const discarded = this.length;
    this.#items = [];
    this.#head = 0;
    this.#bytes = 0;
    return discarded;
  }

  #shift(): Uint8Array {
    const payload = this.#items[this.#head]!;
    // Release the reference at once: a sent snapshot chunk must not linger until compaction.
    this.#items[this.#head] = undefined;
    this.#head += 1;
    this.#bytes -= accountedBytes(payload);
    // Compact now and then so a long-lived queue does not keep a growing dead prefix.
    if (this.#head >= 1024 && this.#head * 2 >= this.#items.length) {
      this.#items = this.#items.slice(this.#head);
      this.#head = 0;
    }
    return payload;
  }
}
