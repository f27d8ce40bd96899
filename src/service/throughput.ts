/**
 * Recent completions per second over a sliding window of one-second buckets: an honest figure
 * for Retry-After estimates that adapts as the machine gets busier or quieter.
 */
export class ThroughputMeter {
  readonly #buckets: number[];
  readonly #now: () => number;
  #current = 0;

  constructor(windowSeconds = 10, now: () => number = Date.now) {
    this.#buckets = new Array(windowSeconds).fill(0);
    this.#now = now;
    this.#current = Math.floor(now() / 1000);
  }

  record(count = 1): void {
    this.#roll();
    this.#buckets[this.#current % this.#buckets.length]! += count;
  }

  perSecond(): number {
    this.#roll();
    let total = 0;
    for (const count of this.#buckets) total += count;
    return total / this.#buckets.length;
  }

  #roll(): void {
    const second = Math.floor(this.#now() / 1000);
    const steps = Math.min(second - this.#current, this.#buckets.length);
    for (let i = 1; i <= steps; i++) this.#buckets[(this.#current + i) % this.#buckets.length] = 0;
    if (second > this.#current) this.#current = second;
  }
}
