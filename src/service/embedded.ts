/**
 * The embedded service: every role in one process — api and queue here, conversion workers as
 * child processes — with no external server. This is what `pixelfleet start` runs. The roles
 * talk only through their interfaces (JobQueue, JobHost, Converter), the same seams the cluster
 * mode puts a network behind.
 */
import { mkdirSync } from 'node:fs';
import { resolve } from 'node:path';
import { Admission, BlobStore, buildApiServer, Completions } from '../api/index.ts';
import type { Config } from '../config/index.ts';
import { createLogger, createServiceMetrics, type Logger } from '../observability/index.ts';
import { openEmbeddedQueue } from '../queue/index.ts';
import { Dispatcher, type JobHost } from '../worker/dispatcher.ts';
import { type InputFormat, WorkerPool } from '../worker/index.ts';
import { ThroughputMeter } from './throughput.ts';

export interface EmbeddedService {
  /** Base URL of the public API, e.g. http://127.0.0.1:8080 */
  url: string;
  port: number;
  config: Config;
  logger: Logger;
  /** Graceful stop: refuse new work, drain in-flight requests (up to shutdownTimeout), close. */
  close(): Promise<void>;
}

const dayMs = 86_400_000;

export async function startEmbeddedService(
  config: Config,
  options: { logger?: Logger } = {},
): Promise<EmbeddedService> {
  const logger = options.logger ?? createLogger({ level: config.logLevel });
  const dataDir = resolve(config.dataDir);
  mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  const metrics = createServiceMetrics();

  const queue = await openEmbeddedQueue({
    dataDir,
    maxAttempts: config.maxAttempts,
    // Job records must outlive their results so an expired result reads 410, not 404.
    retentionMs: Math.max(config.resultTtl * 2, dayMs),
  });
  const pool = new WorkerPool({
    size: config.workers,
    jobTimeoutMs: config.jobTimeout,
    limits: {
      allowedFormats: new Set(config.inputFormats as InputFormat[]),
      maxInputPixels: config.maxInputPixels,
      maxFrames: config.maxFrames,
      maxOutputDimension: config.maxOutputDimension,
    },
    onEvent: (event) => {
      if (event.type === 'restart') metrics.workerRestarts.inc({ reason: event.reason ?? 'unknown' });
      logger.warn({ event }, 'worker event');
    },
  });
  try {
    await pool.start();
  } catch (error) {
    await queue.close();
    throw error;
  }

  const blobs = new BlobStore(dataDir);
  const completions = new Completions();
  const throughput = new ThroughputMeter();
  const admission = new Admission({
    maxInflight: config.maxInflight,
    queueHighWater: config.queueHighWater,
    throughput: () => throughput.perSecond(),
  });
  const refreshDepth = async () => {
    try {
      admission.observeQueueDepth((await queue.stats()).depth);
    } catch {
      // Keep the last known depth; readiness reports the queue's health.
    }
  };
  await refreshDepth();
  const depthTimer = setInterval(refreshDepth, 100);
  depthTimer.unref();

  const host: JobHost = {
    fetchInput: (job, payload) => blobs.getInput(job.id, payload.input.location),
    async deliverResult(job, payload, result) {
      if (payload.mode === 'async')
        await blobs.putResult(job.id, { bytes: result.output, contentType: result.contentType });
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
            state: result ? 'succeeded' : 'failed',
            code: error?.code,
            attempt: job.attempt,
          },
          'job',
        );
      }
    },
  };

  const dispatcher = new Dispatcher({
    queue,
    converter: pool,
    host,
    concurrency: config.workers,
    jobTimeoutMs: config.jobTimeout,
    consumerName: `embedded-${process.pid}`,
    onError: (error) => logger.error({ err: error }, 'dispatcher error'),
    events: {
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
    },
  });

  const app = buildApiServer({
    config,
    queue,
    blobs,
    completions,
    admission,
    metrics,
    logger,
    workers: () => pool.stats(),
  });
  metrics.setCollectors({
    queue: async () => {
      const stats = await queue.stats();
      return { depth: stats.depth, inflight: stats.inflight, deadLetters: stats.deadLetters };
    },
    workers: () => pool.stats(),
    inflightRequests: () => admission.inflight,
  });

  dispatcher.start();
  const sweepTimer = setInterval(
    () => {
      blobs
        .sweepResults(config.resultTtl)
        .catch((error) => logger.error({ err: error }, 'result sweep failed'));
    },
    Math.min(60_000, config.resultTtl),
  );
  sweepTimer.unref();

  try {
    await app.listen({ host: config.httpHost, port: config.httpPort });
  } catch (error) {
    await dispatcher.stop();
    await pool.close();
    await queue.close();
    throw error;
  }
  const address = app.server.address();
  const port = typeof address === 'object' && address !== null ? address.port : config.httpPort;
  const hostForUrl = config.httpHost.includes(':') ? `[${config.httpHost}]` : config.httpHost;
  const url = `http://${hostForUrl}:${port}`;
  logger.info({ url, workers: config.workers, dataDir }, 'pixelfleet listening');

  let closing: Promise<void> | undefined;
  const close = () => {
    closing ??= (async () => {
      logger.info({ inflight: admission.inflight }, 'shutting down: draining in-flight requests');
      admission.beginShutdown();
      let timer: NodeJS.Timeout | undefined;
      const deadline = new Promise<'timeout'>((resolve) => {
        timer = setTimeout(() => resolve('timeout'), config.shutdownTimeout);
      });
      // Connections that turn idle during the drain are closed at once, not at the deadline.
      const idleSweep = setInterval(() => app.server.closeIdleConnections(), 50);
      const drained = await Promise.race([app.close().then(() => 'drained' as const), deadline]);
      clearTimeout(timer);
      clearInterval(idleSweep);
      if (drained === 'timeout') {
        logger.warn(
          { inflight: admission.inflight },
          'shutdown deadline passed: closing remaining connections',
        );
        app.server.closeAllConnections();
      }
      clearInterval(depthTimer);
      clearInterval(sweepTimer);
      await dispatcher.stop();
      await pool.close();
      await queue.close();
      logger.info('shut down');
    })();
    return closing;
  };

  return { url, port, config, logger, close };
}
