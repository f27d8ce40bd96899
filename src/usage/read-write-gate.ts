/**
 * A writer-preferring readers-writer gate for async work. Queries read the store and the pending
 * in-memory usage as two halves of one answer; a flush moves records from one half to the other.
 * Were a flush to run between a query's two reads, the query would count those records twice or
 * not at all. Readers therefore share the gate; a flush holds it alone. A waiting writer stops new
 * readers from entering, so a steady stream of queries cannot starve flushes.
 */
export class ReadWriteGate {
  #readers = 0;
  #readersDrained: (() => void) | undefined;
  /** Settles when the current (or queued) writer leaves. */
  #writer: Promise<void> | undefined;

  async read<T>(work: () => Promise<T>): Promise<T> {
    while (this.#writer !== undefined) await this.#writer;
    this.#readers++;
    try {
      return await work();
    } finally {
      this.#readers--;
      if (this.#readers === 0) this.#readersDrained?.();
    }
  }

  async write<T>(work: () => Promise<T>): Promise<T> {
    while (this.#writer !== undefined) await this.#writer;
    let leave!: () => void;
    this.#writer = new Promise<void>((resolve) => {
      leave = resolve;
    });
    try {
      if (this.#readers > 0) {
        await new Promise<void>((resolve) => {
          this.#readersDrained = resolve;
        });
        this.#readersDrained = undefined;
      }
      return await work();
    } finally {
      this.#writer = undefined;
      leave();
    }
  }
}
