/**
 * Reconnect delays: exponential backoff with equal jitter. Doubling keeps a dead peer from
 * being hammered; the jitter keeps a whole cluster that lost the same peer from redialling in
 * lockstep; the half that is not random keeps a floor under the delay.
 */

export interface BackoffOptions {
  initialDelayMs: number;
  maxDelayMs: number;
  random: () => number;
}

/** Delay before reconnect attempt number `attempt` (0 for the first retry). */
export function reconnectDelay(attempt: number, options: BackoffOptions): number {
  const ceiling = Math.min(options.maxDelayMs, options.initialDelayMs * 2 ** Math.min(attempt, 30));
  return ceiling / 2 + options.random() * (ceiling / 2);
}
