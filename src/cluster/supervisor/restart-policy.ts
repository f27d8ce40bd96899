/**
 * When to restart a crashed process: exponential backoff with jitter, reset once the process
 * stayed up long enough to count as healthy, so a crash loop slows down and a rare crash is
 * repaired at once. Pure: the caller passes the clock readings.
 */
import { Backoff } from '../../resilience/remote/index.ts';

export interface RestartPolicyOptions {
  initialDelayMs?: number;
  maxDelayMs?: number;
  /** Uptime after which the crash count starts again from zero (default 30 s). */
  healthyAfterMs?: number;
  random?: () => number;
}

export class RestartPolicy {
  readonly #backoff: Backoff;
  readonly #healthyAfterMs: number;
  #consecutiveCrashes = 0;

  constructor(options: RestartPolicyOptions = {}) {
    this.#backoff = new Backoff({
      initialDelayMs: options.initialDelayMs ?? 250,
      maxDelayMs: options.maxDelayMs ?? 10_000,
      jitter: 'equal',
      ...(options.random === undefined ? {} : { random: options.random }),
    });
    this.#healthyAfterMs = options.healthyAfterMs ?? 30_000;
    if (this.#healthyAfterMs < 0) throw new RangeError('healthyAfterMs must be >= 0');
  }

  /** A process that ran for `uptimeMs` crashed: how long to wait before starting it again. */
  crashed(uptimeMs: number): number {
    if (uptimeMs >= this.#healthyAfterMs) this.#consecutiveCrashes = 0;
    this.#consecutiveCrashes++;
    return this.#backoff.delay(this.#consecutiveCrashes);
  }

  get consecutiveCrashes(): number {
    return this.#consecutiveCrashes;
  }
}
