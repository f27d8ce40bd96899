/**
 * Creates the queue's streams when they do not exist yet (every process opening the queue runs
 * this; creating an existing stream with the same configuration is a no-op, and one that exists
 * with another configuration is left as the operator set it):
 * - jobs: work-queue retention (a message lives until acked or terminated), file storage, R3,
 *   a duplicate window covering the enqueue retry horizon; subjects `<prefix>.jobs.<account>`;
 * - job records: the KV bucket layout (history 1, max age = retention, rollups allowed);
 * - dead letters: limits retention, one subject per dead job, max age = retention;
 * - events: limits retention; the per-subject counts are the queue's totals.
 */
import {
  DiscardPolicy,
  JetStreamApiError,
  type JetStreamManager,
  RetentionPolicy,
  StorageType,
  type StreamConfig,
} from '@nats-io/jetstream';
import type { QueueResourceNames } from './names.ts';
import type { ResolvedNatsQueueOptions } from './options.ts';
import { type RetryPolicy, withRetry } from './retry.ts';

const STREAM_NAME_IN_USE = 10058;

export const nanos = (ms: number): number => Math.round(ms * 1_000_000);

export async function ensureStreams(
  manager: JetStreamManager,
  names: QueueResourceNames,
  options: ResolvedNatsQueueOptions,
  retry: RetryPolicy,
): Promise<void> {
  const common = { storage: StorageType.File, num_replicas: options.replicas };
  const configs: Array<Partial<StreamConfig> & { name: string }> = [
    {
      ...common,
      name: names.jobsStream,
      subjects: [names.jobsSubjects],
      retention: RetentionPolicy.Workqueue,
      duplicate_window: nanos(options.duplicateWindowMs),
    },
    {
      ...common,
      name: names.recordsStream,
      subjects: [`$KV.${names.recordsBucket}.>`],
      retention: RetentionPolicy.Limits,
      max_msgs_per_subject: 1,
      max_age: nanos(options.retentionMs),
      allow_rollup_hdrs: true,
      deny_delete: true,
      discard: DiscardPolicy.New,
      duplicate_window: nanos(Math.min(options.duplicateWindowMs, options.retentionMs)),
    },
    {
      ...common,
      name: names.deadLetterStream,
      subjects: [names.deadLetterSubjects],
      retention: RetentionPolicy.Limits,
      max_age: nanos(options.retentionMs),
      duplicate_window: nanos(options.duplicateWindowMs),
    },
    {
      ...common,
      name: names.eventsStream,
      subjects: [`${names.subjectPrefix}.events.>`],
      retention: RetentionPolicy.Limits,
      max_age: nanos(options.retentionMs),
      duplicate_window: nanos(options.duplicateWindowMs),
    },
  ];
  await Promise.all(
    configs.map((config) =>
      withRetry(retry, `creating stream ${config.name}`, async () => {
        try {
          await manager.streams.add(config);
        } catch (error) {
          if (error instanceof JetStreamApiError && error.code === STREAM_NAME_IN_USE) return;
          throw error;
        }
      }),
    ),
  );
}

/** Deletes every stream of the queue (tests and decommissioning). */
export async function deleteStreams(manager: JetStreamManager, names: QueueResourceNames): Promise<void> {
  for (const stream of [names.jobsStream, names.recordsStream, names.deadLetterStream, names.eventsStream]) {
    try {
      await manager.streams.delete(stream);
    } catch (error) {
      if (!(error instanceof JetStreamApiError && error.status === 404)) throw error;
    }
  }
}
