/**
 * The conversion worker pool as configured by the settings, with its restarts counted and
 * logged: one definition for the embedded service and the cluster's worker role.
 */
import type { Config } from '../config/index.ts';
import type { Logger, ServiceMetrics } from '../observability/index.ts';
import { type InputFormat, WorkerPool } from '../worker/index.ts';

export function configuredWorkerPool(config: Config, metrics: ServiceMetrics, logger: Logger): WorkerPool {
  return new WorkerPool({
    size: config.workers,
    jobTimeoutMs: config.jobTimeout,
    // Each child gets its next input while it converts, so it never waits on the parent.
    prefetch: 1,
    limits: {
      allowedFormats: new Set(config.inputFormats as InputFormat[]),
      maxInputPixels: config.maxInputPixels,
      maxFrames: config.maxFrames,
      maxOutputDimension: config.maxOutputDimension,
    },
    onEvent: (event) => {
      if (event.type === 'restart') metrics.workerRestarts.inc({ reason: event.reason });
      logger.warn({ event }, 'worker event');
    },
  });
}
