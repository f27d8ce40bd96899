/**
 * The api role's side of a job: where a worker's input comes from and where its result goes.
 * In embedded mode the dispatcher calls this directly (an in-process seam); in the cluster the
 * api server's internal routes call the same functions for workers in other processes, so both
 * modes deliver, meter and settle jobs with one piece of code.
 *
 * Guarantees: an async result is durable before `deliverResult` resolves; usage is recorded
 * before the ack and deduplicated by job id, so a redelivered job (or a worker retrying its POST)
 * is billed exactly once; a sync waiter is answered from `settled`.
 */
import type { BlobStore } from '../api/blobs.ts';
import type { Completions } from '../api/completions.ts';
import { isPixelfleetError, type PixelfleetError } from '../errors/index.ts';
import type { Logger, ServiceMetrics } from '../observability/index.ts';
import type { ClaimedJob } from '../queue/types.ts';
import type { UsageMeter } from '../usage/usage-meter.ts';
import type { JobHost, JobResult, ResizeJobPayload } from '../worker/dispatcher.ts';
import type { ThroughputMeter } from './throughput.ts';

/** The parts of a claimed job the api side reads. */
export type JobIdentity = Pick<ClaimedJob, 'id' | 'attempt'>;

export interface LocalJobHost extends JobHost {
  fetchInput(job: JobIdentity, payload: ResizeJobPayload): Promise<Buffer | undefined>;
  deliverResult(job: JobIdentity, payload: ResizeJobPayload, result: JobResult): Promise<void>;
  settled(
    job: JobIdentity,
    payload: ResizeJobPayload,
    outcome: { result?: JobResult; error?: PixelfleetError },
  ): void;
}

export interface LocalJobHostOptions {
  blobs: BlobStore;
  usage: UsageMeter;
  completions: Completions;
  throughput: ThroughputMeter;
  metrics: ServiceMetrics;
  logger: Logger;
}

export function createLocalJobHost(options: LocalJobHostOptions): LocalJobHost {
  const { blobs, usage, completions, throughput, metrics, logger } = options;
  return {
    fetchInput: (job, payload) => blobs.getInput(job.id, payload.input.location),
    async deliverResult(job, payload, result) {
      if (payload.mode === 'async')
        await blobs.putResult(job.id, { bytes: result.output, contentType: result.contentType });
      // Metered before the ack: a crash in between redelivers the job, and the meter
      // deduplicates by job id, so the conversion is billed exactly once.
      const { outcome } = result;
      const finishedAt = Date.now();
      try {
        await usage.record({
          recordId: job.id,
          accountId: payload.tenant.accountId,
          keyId: payload.tenant.keyId,
          tier: payload.tenant.tier,
          bytesIn: outcome.bytesIn,
          bytesOut: outcome.bytesOut,
          pixelsIn: outcome.pixelsIn,
          pixelsOut: outcome.pixelsOut,
          cpuMicros: outcome.cpuMicros,
          inputFormat: payload.input.format,
          outputFormat: outcome.format,
          startedAt: Math.round(finishedAt - outcome.conversionMs),
          finishedAt,
        });
      } catch (error) {
        // A malformed record is a bug, not a transient failure: redelivering the job would
        // fail the same way until it is dead-lettered. Complete the job and say so loudly.
        if (!isPixelfleetError(error, 'PF_ERR_INVALID_USAGE_RECORD')) throw error;
        logger.error(
          { err: error, jobId: job.id },
          'usage record rejected as malformed; the job is completed unmetered',
        );
      }
    },
    settled(job, payload, { result, error }) {
      throughput.record();
      metrics.conversions.inc({ outcome: result ? 'succeeded' : 'failed' });
      if (payload.mode === 'sync') {
        if (result) completions.complete(job.id, result);
        else completions.fail(job.id, error);
      } else {
        blobs
          .deleteInput(job.id, 'disk')
          .catch((cause) => logger.error({ err: cause, jobId: job.id }, 'input cleanup failed'));
        logger.info(
          {
            jobId: job.id,
            requestId: payload.requestId,
            traceId: payload.traceparent.split('-')[1],
            accountId: payload.tenant.accountId,
            state: result ? 'succeeded' : 'failed',
            code: error?.code,
            attempt: job.attempt,
          },
          'job',
        );
      }
    },
  };
}
