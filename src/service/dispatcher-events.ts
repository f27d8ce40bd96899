/**
 * The dispatcher's events as metrics and log lines: one definition for the embedded service and
 * the cluster's worker role, so both report conversions the same way.
 */
import type { Logger, ServiceMetrics } from '../observability/index.ts';
import type { DispatcherEvents } from '../worker/dispatcher.ts';

export function dispatcherEvents(metrics: ServiceMetrics, logger: Logger): DispatcherEvents {
  return {
    claimed: (_job, queueWaitMs, payload) =>
      metrics.queueWait.observe({ mode: payload.mode }, queueWaitMs / 1000),
    converted: (_job, result) => {
      metrics.conversionDuration.observe({ format: result.format }, result.wallMs / 1000);
      metrics.conversionCpuSeconds.inc(
        { format: result.format },
        (result.cpuUserMicros + result.cpuSystemMicros) / 1e6,
      );
      metrics.bytesIn.inc(result.bytesIn);
      metrics.bytesOut.inc(result.bytesOut);
      metrics.workerBusySeconds.inc(result.wallMs / 1000);
      metrics.workerRss.set({ worker: String(result.workerId) }, result.workerRss);
    },
    failed: (job, error, willRetry) => {
      metrics.conversions.inc({ outcome: willRetry ? 'retried' : 'dead_lettered' });
      logger.warn(
        { jobId: job.id, attempt: job.attempt, code: error.code, detail: error.message, willRetry },
        'job attempt failed',
      );
    },
    released: (count) => {
      if (count > 0) {
        logger.warn({ released: count }, 'leases held by this worker before it restarted handed back');
      }
    },
  };
}
