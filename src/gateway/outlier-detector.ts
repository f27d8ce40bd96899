/**
 * Passive outlier detection (Envoy's consecutive-errors model) as a pure core with an injected
 * clock. Real traffic reports each upstream's outcomes; after `consecutiveFailures` failures in
 * a row the upstream is ejected for `baseEjectionMs × times ejected` (capped at
 * `maxEjectionMs`), so a repeat offender stays out longer. The multiplier decays by one for
 * every `baseEjectionMs × 2` an upstream spends back in rotation without being ejected.
 *
 * Guarantee: never more than `maxEjectionPercent` % of the known upstreams (rounded down) are
 * ejected at once — an outage of the shared dependency behind every upstream must not eject
 * them all and leave the gateway with nowhere to send anything.
 */

export interface OutlierDetectorOptions {
  /** Consecutive failures (5xx, connection error, timeout) that eject an upstream (default 5). */
  consecutiveFailures?: number;
  /** First ejection time, multiplied by the number of ejections so far (default 5000 ms). */
  baseEjectionMs?: number;
  /** Cap of the growing ejection time (default 300000 ms). */
  maxEjectionMs?: number;
  /** Most upstreams ejected at once, as a percentage of those known (default 50). */
  maxEjectionPercent?: number;
  now?: () => number;
}

interface OutlierRecord {
  consecutiveFailures: number;
  timesEjected: number;
  ejectedUntil: number | undefined;
  /** Start of the current in-rotation period, for the multiplier's decay. */
  inRotationSince: number;
}

export interface OutlierSnapshot {
  ejected: boolean;
  ejectedUntil?: number;
  timesEjected: number;
  consecutiveFailures: number;
}

export class OutlierDetector {
  readonly #threshold: number;
  readonly #baseEjectionMs: number;
  readonly #maxEjectionMs: number;
  readonly #maxEjectionPercent: number;
  readonly #now: () => number;
  readonly #records = new Map<string, OutlierRecord>();

  constructor(options: OutlierDetectorOptions = {}) {
    this.#threshold = options.consecutiveFailures ?? 5;
    this.#baseEjectionMs = options.baseEjectionMs ?? 5000;
    this.#maxEjectionMs = options.maxEjectionMs ?? 300_000;
    this.#maxEjectionPercent = options.maxEjectionPercent ?? 50;
    this.#now = options.now ?? Date.now;
    if (!Number.isInteger(this.#threshold) || this.#threshold < 1) {
      throw new RangeError('consecutiveFailures must be a positive integer');
    }
    if (!(this.#baseEjectionMs > 0)) throw new RangeError('baseEjectionMs must be positive');
    if (!(this.#maxEjectionMs >= this.#baseEjectionMs)) {
      throw new RangeError('maxEjectionMs must be at least baseEjectionMs');
    }
    if (!(this.#maxEjectionPercent >= 0 && this.#maxEjectionPercent <= 100)) {
      throw new RangeError('maxEjectionPercent must be within 0..100');
    }
  }

  add(id: string): void {
    if (!this.#records.has(id)) {
      this.#records.set(id, {
        consecutiveFailures: 0,
        timesEjected: 0,
        ejectedUntil: undefined,
        inRotationSince: this.#now(),
      });
    }
  }

  remove(id: string): void {
    this.#records.delete(id);
  }

  recordSuccess(id: string): void {
    const record = this.#records.get(id);
    if (record) record.consecutiveFailures = 0;
  }

  /** Records a failure; returns true when this failure ejected the upstream. */
  recordFailure(id: string): boolean {
    const record = this.#records.get(id);
    if (record === undefined) return false;
    const now = this.#now();
    this.#refresh(record, now);
    record.consecutiveFailures += 1;
    if (record.ejectedUntil !== undefined || record.consecutiveFailures < this.#threshold) return false;
    if (this.ejectedCount() + 1 > this.maxEjected()) return false;
    record.timesEjected += 1;
    record.ejectedUntil = now + Math.min(this.#maxEjectionMs, this.#baseEjectionMs * record.timesEjected);
    record.consecutiveFailures = 0;
    return true;
  }

  isEjected(id: string): boolean {
    const record = this.#records.get(id);
    if (record === undefined) return false;
    this.#refresh(record, this.#now());
    return record.ejectedUntil !== undefined;
  }

  ejectedCount(): number {
    const now = this.#now();
    let count = 0;
    for (const record of this.#records.values()) {
      this.#refresh(record, now);
      if (record.ejectedUntil !== undefined) count += 1;
    }
    return count;
  }

  /** How many upstreams may be ejected at once right now. */
  maxEjected(): number {
    return Math.floor((this.#records.size * this.#maxEjectionPercent) / 100);
  }

  snapshot(id: string): OutlierSnapshot | undefined {
    const record = this.#records.get(id);
    if (record === undefined) return undefined;
    this.#refresh(record, this.#now());
    return {
      ejected: record.ejectedUntil !== undefined,
      ...(record.ejectedUntil === undefined ? {} : { ejectedUntil: record.ejectedUntil }),
      timesEjected: record.timesEjected,
      consecutiveFailures: record.consecutiveFailures,
    };
  }

  /** Ends an expired ejection and decays the multiplier; expiry is evaluated lazily. */
  #refresh(record: OutlierRecord, now: number): void {
    if (record.ejectedUntil !== undefined) {
      if (now < record.ejectedUntil) return;
      record.inRotationSince = record.ejectedUntil;
      record.ejectedUntil = undefined;
    }
    const decayMs = this.#baseEjectionMs * 2;
    while (record.timesEjected > 0 && now - record.inRotationSince >= decayMs) {
      record.timesEjected -= 1;
      record.inRotationSince += decayMs;
    }
  }
}
