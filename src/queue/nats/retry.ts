/**
 * Retrying NATS calls across a failover. While a stream's Raft group elects a new leader (a few
 * seconds after its leader dies) JetStream calls time out or find no responder; the client may
 * also be reconnecting to another server. Such failures are retried after an exponential backoff
 * with full jitter until the request's deadline, and the caller repeats exactly the same call —
 * a publish keeps its `Nats-Msg-Id`, a compare-and-set its expected revision — so a retry whose
 * first attempt did land is deduplicated or detected, never applied twice.
 */
import { JetStreamApiError, type JetStreamClient, type JetStreamManager } from '@nats-io/jetstream';
import { PixelfleetError } from '../../errors/index.ts';
import { sleep } from '../../resilience/remote/index.ts';
import type { QueueResourceNames } from './names.ts';

export interface RetryPolicy {
  requestTimeoutMs: number;
  retryInitialDelayMs: number;
  retryMaxDelayMs: number;
  random: () => number;
  /** Aborted when the queue closes: stop retrying at once. */
  closed: AbortSignal;
}

/** What every part of the NATS queue calls JetStream with: clients, names and the retry rules. */
export interface JetStreamAccess {
  client: JetStreamClient;
  manager: JetStreamManager;
  names: QueueResourceNames;
  retry: RetryPolicy;
  /** Timeout of one attempt of a JetStream request. */
  attemptTimeoutMs: number;
}

/** The failure says nothing final about the request: try again. */
export function isTransient(error: unknown): boolean {
  if (error instanceof JetStreamApiError) return error.status >= 500;
  if (!(error instanceof Error)) return false;
  switch (error.name) {
    case 'TimeoutError':
    case 'NoRespondersError':
    case 'RequestError':
    case 'ConnectionError':
    case 'JetStreamError':
    case 'JetStreamStatusError':
    // What nats.js makes of a 503 from a server whose JetStream lost its meta leader.
    case 'JetStreamNotEnabled':
      return true;
    default:
      // nats.js wraps some 503s and "no responders" in plain errors with these messages.
      return /timeout|no responders|503|not available|leader/i.test(error.message);
  }
}

/** Whether the attempt may have taken effect although it failed (a lost reply). */
export function outcomeUnknown(error: unknown): boolean {
  return error instanceof Error && (error.name === 'TimeoutError' || error.name === 'RequestError');
}

export async function withRetry<T>(
  policy: RetryPolicy,
  operation: string,
  attempt: (retry: number) => Promise<T>,
  options: { onUncertain?: () => void; timeoutMs?: number } = {},
): Promise<T> {
  const started = performance.now();
  const deadline = started + (options.timeoutMs ?? policy.requestTimeoutMs);
  for (let retry = 0; ; retry++) {
    if (policy.closed.aborted) throw policy.closed.reason;
    try {
      return await attempt(retry);
    } catch (error) {
      if (policy.closed.aborted) throw policy.closed.reason;
      if (!isTransient(error)) throw error;
      if (outcomeUnknown(error)) options.onUncertain?.();
      const ceiling = Math.min(policy.retryMaxDelayMs, policy.retryInitialDelayMs * 2 ** retry);
      const delay = policy.random() * ceiling;
      if (performance.now() + delay > deadline) {
        throw new PixelfleetError(
          'PF_ERR_QUEUE_UNAVAILABLE',
          `NATS did not complete ${operation} within ${Math.round(performance.now() - started)} ms`,
          { cause: error },
        );
      }
      await sleep(delay, policy.closed);
    }
  }
}
