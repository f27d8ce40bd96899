/**
 * Active health of one upstream as a pure state machine over check results: unhealthy after
 * `unhealthyThreshold` consecutive failed checks, healthy again after `healthyThreshold`
 * consecutive passes. Thresholds above one keep a single lost probe (a GC pause, a dropped SYN)
 * from flapping an upstream in and out of rotation.
 */

export interface HealthThresholds {
  /** Consecutive failed checks that mark a healthy upstream unhealthy (default 2). */
  unhealthyThreshold?: number;
  /** Consecutive passed checks that mark an unhealthy upstream healthy (default 2). */
  healthyThreshold?: number;
}

export class HealthState {
  readonly #unhealthyThreshold: number;
  readonly #healthyThreshold: number;
  #healthy: boolean;
  #streak = 0;
  #lastCheckedAt: number | undefined;
  #lastError: string | undefined;

  constructor(options: HealthThresholds & { initiallyHealthy?: boolean } = {}) {
    this.#unhealthyThreshold = positiveInteger('unhealthyThreshold', options.unhealthyThreshold ?? 2);
    this.#healthyThreshold = positiveInteger('healthyThreshold', options.healthyThreshold ?? 2);
    this.#healthy = options.initiallyHealthy ?? true;
  }

  get healthy(): boolean {
    return this.#healthy;
  }

  /** Records one check; returns true when the health state changed. */
  record(passed: boolean, now: number, error?: string): boolean {
    this.#lastCheckedAt = now;
    this.#lastError = passed ? undefined : error;
    // The streak counts results that disagree with the current state; an agreeing one resets it.
    if (passed === this.#healthy) {
      this.#streak = 0;
      return false;
    }
    this.#streak += 1;
    if (this.#streak < (this.#healthy ? this.#unhealthyThreshold : this.#healthyThreshold)) return false;
    this.#healthy = passed;
    this.#streak = 0;
    return true;
  }

  snapshot(): { healthy: boolean; lastCheckedAt?: number; lastError?: string } {
    return {
      healthy: this.#healthy,
      ...(this.#lastCheckedAt === undefined ? {} : { lastCheckedAt: this.#lastCheckedAt }),
      ...(this.#lastError === undefined ? {} : { lastError: this.#lastError }),
    };
  }
}

function positiveInteger(name: string, value: number): number {
  if (!Number.isInteger(value) || value < 1) throw new RangeError(`${name} must be a positive integer`);
  return value;
}
