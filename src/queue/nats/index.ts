/**
 * The job queue on NATS JetStream: `openNatsQueue` returns a `JobQueue` backed by an R3
 * work-queue stream (one subject and pull consumer per account), a KV bucket of job records, a
 * dead-letter stream fed by nacks, lease expiries, MAX_DELIVERIES advisories and a sweeper.
 */
export { AccountRing } from './account-ring.ts';
export type { QueueResourceNames } from './names.ts';
export { NatsJobQueue, type NatsQueueDiagnostics, openNatsQueue } from './nats-queue.ts';
export type { NatsQueueOptions } from './options.ts';
