/**
 * Options of the NATS JetStream queue, with their defaults and checks (`RangeError` on a bad
 * value). Why each exists is said next to it; the trade-offs are in README-style comments of the
 * modules that use them.
 */
import type { NatsConnection } from '@nats-io/transport-node';
import { DEFAULT_MAX_ATTEMPTS, DEFAULT_RETENTION_MS } from '../state-machine.ts';

export interface NatsQueueOptions {
  /** Server URLs (`nats://host:port`); any subset of the cluster works. */
  servers: string[];
  /** Name of the jobs stream; the other resources are named after it. Default `PIXELFLEET_JOBS`. */
  stream?: string;
  /** First subject tokens of every subject the queue uses. Default `pixelfleet`. */
  subjectPrefix?: string;
  /** Stream and consumer replicas: 3 for a cluster (survives one server), 1 for a lone server. Default 3. */
  replicas?: number;
  /**
   * The consumers' AckWait: how soon a delivery whose process died is redelivered. Leases of any
   * length are kept alive by in-progress heartbeats every third of it. Default 10 000.
   */
  ackWaitMs?: number;
  /**
   * Deliveries before dead-lettering when a job does not say, and the consumers' MaxDeliver: a
   * job may ask for fewer attempts, never more. Default 3.
   */
  maxAttempts?: number;
  /** How long job records, dead letters and totals are kept. Default 24 h. */
  retentionMs?: number;
  /** The jobs stream's duplicate window; must cover the enqueue retry horizon. Default 120 000. */
  duplicateWindowMs?: number;
  /** Give up a call (PF_ERR_QUEUE_UNAVAILABLE) after retrying this long across a failover. Default 30 000. */
  requestTimeoutMs?: number;
  /** One NATS request may take this long before it is retried. Default 2000. */
  attemptTimeoutMs?: number;
  /** First retry delay ceiling; doubles per retry (full jitter). Default 25. */
  retryInitialDelayMs?: number;
  /** Ceiling of the retry delay. Default 500. */
  retryMaxDelayMs?: number;
  /** A waiting claim looks again this often even without a wake-up (nak delays end on the server). Default 250. */
  pollIntervalMs?: number;
  /** How stale the claim's list of accounts with jobs may get. Default 1000. */
  accountRefreshMs?: number;
  /** Period of the dead-letter sweeper (messages the advisory missed); 0 disables it. Default 30 000. */
  sweepIntervalMs?: number;
  /** Listen to MAX_DELIVERIES advisories and dead-letter at once. Default true. */
  deadLetterAdvisories?: boolean;
  /** Per-account consumer MaxAckPending: at most this many jobs of one account leased at once. Default 10 000. */
  maxInflightPerAccount?: number;
  /** Connection name shown by the server's monitoring. Default `pixelfleet-queue`. */
  name?: string;
  /** Use this connection instead of opening one (it is not closed by `close()`). */
  connection?: NatsConnection;
  /** Uniform random source in [0, 1) for the retry jitter. */
  random?: () => number;
}

export interface ResolvedNatsQueueOptions extends Required<Omit<NatsQueueOptions, 'connection' | 'random'>> {
  connection: NatsConnection | undefined;
  random: () => number;
}

export function resolveOptions(options: NatsQueueOptions): ResolvedNatsQueueOptions {
  if (!Array.isArray(options?.servers) || options.servers.length === 0) {
    if (options?.connection === undefined)
      throw new RangeError('servers must list at least one NATS server URL');
  }
  const duration = (name: string, value: number | undefined, fallback: number, zeroAllowed = false) => {
    const resolved = value ?? fallback;
    if (!Number.isFinite(resolved) || resolved < 0 || (!zeroAllowed && resolved === 0)) {
      throw new RangeError(
        `${name} must be a ${zeroAllowed ? 'non-negative' : 'positive'} number of milliseconds, got ${value}`,
      );
    }
    return resolved;
  };
  const integer = (name: string, value: number | undefined, fallback: number, min: number) => {
    const resolved = value ?? fallback;
    if (!Number.isInteger(resolved) || resolved < min) {
      throw new RangeError(`${name} must be an integer >= ${min}, got ${value}`);
    }
    return resolved;
  };
  const resolved: ResolvedNatsQueueOptions = {
    servers: options.servers ?? [],
    stream: options.stream ?? 'PIXELFLEET_JOBS',
    subjectPrefix: options.subjectPrefix ?? 'pixelfleet',
    replicas: integer('replicas', options.replicas, 3, 1),
    ackWaitMs: duration('ackWaitMs', options.ackWaitMs, 10_000),
    maxAttempts: integer('maxAttempts', options.maxAttempts, DEFAULT_MAX_ATTEMPTS, 1),
    retentionMs: duration('retentionMs', options.retentionMs, DEFAULT_RETENTION_MS),
    duplicateWindowMs: duration('duplicateWindowMs', options.duplicateWindowMs, 120_000),
    requestTimeoutMs: duration('requestTimeoutMs', options.requestTimeoutMs, 30_000),
    attemptTimeoutMs: duration('attemptTimeoutMs', options.attemptTimeoutMs, 2_000),
    retryInitialDelayMs: duration('retryInitialDelayMs', options.retryInitialDelayMs, 25),
    retryMaxDelayMs: duration('retryMaxDelayMs', options.retryMaxDelayMs, 500),
    pollIntervalMs: duration('pollIntervalMs', options.pollIntervalMs, 250),
    accountRefreshMs: duration('accountRefreshMs', options.accountRefreshMs, 1_000),
    sweepIntervalMs: duration('sweepIntervalMs', options.sweepIntervalMs, 30_000, true),
    deadLetterAdvisories: options.deadLetterAdvisories ?? true,
    maxInflightPerAccount: integer('maxInflightPerAccount', options.maxInflightPerAccount, 10_000, 1),
    name: options.name ?? 'pixelfleet-queue',
    connection: options.connection,
    random: options.random ?? Math.random,
  };
  if (resolved.retryMaxDelayMs < resolved.retryInitialDelayMs) {
    throw new RangeError('retryMaxDelayMs must be at least retryInitialDelayMs');
  }
  if (resolved.duplicateWindowMs < resolved.requestTimeoutMs) {
    // A retried publish must still meet the first one's id in the window, or it is stored twice.
    throw new RangeError('duplicateWindowMs must be at least requestTimeoutMs (the retry horizon)');
  }
  if (resolved.retentionMs < resolved.duplicateWindowMs) {
    throw new RangeError('retentionMs must be at least duplicateWindowMs');
  }
  return resolved;
}
