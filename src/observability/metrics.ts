/**
 * Prometheus metrics of one Pixelfleet process. Percentiles come from histograms (with a bucket
 * at 0.5 s, the latency SLO), never from averages. Each process owns its own registry so that
 * several services can run in one test process without clashing.
 */
import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client';

/**
 * prom-client's default process metrics, with the event-loop delay sampled every 100 ms rather
 * than its default 10 ms. The sampler is a timer that wakes the process: at 10 ms that is a
 * hundred wake-ups a second in every process, idle or not, and on a small VM each costs tens of
 * microseconds of CPU (a cluster runs a dozen processes). A stall still shows in full: the
 * sample taken after it is late by the stall's length.
 */
export function registerProcessMetrics(registry: Registry, prefix: string): void {
  collectDefaultMetrics({ register: registry, prefix, eventLoopMonitoringPrecision: 100 });
}

const latencyBuckets = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];

export interface ServiceMetrics {
  registry: Registry;
  httpRequestDuration: Histogram<'route' | 'method' | 'status'>;
  queueWait: Histogram<'mode'>;
  conversionDuration: Histogram<'format'>;
  conversionCpuSeconds: Counter<'format'>;
  conversions: Counter<'outcome'>;
  bytesIn: Counter;
  bytesOut: Counter;
  shed: Counter<'code'>;
  rejected: Counter<'code'>;
  workerRestarts: Counter<'reason'>;
  workerBusySeconds: Counter;
  workerRss: Gauge<'worker'>;
  identityCache: Counter<'event'>;
  /** Gauges read at scrape time through collect callbacks. */
  setCollectors(collectors: {
    queue: () => Promise<{ depth: number; inflight: number; deadLetters: number }>;
    workers: () => { size: number; alive: number; busy: number };
    inflightRequests: () => number;
  }): void;
}

export function createServiceMetrics(options: { defaultMetrics?: boolean } = {}): ServiceMetrics {
  const registry = new Registry();
  if (options.defaultMetrics !== false) registerProcessMetrics(registry, 'pixelfleet_');
  let collectors: Parameters<ServiceMetrics['setCollectors']>[0] | undefined;

  const queueGauge = (name: string, help: string, pick: 'depth' | 'inflight' | 'deadLetters') =>
    new Gauge({
      name,
      help,
      registers: [registry],
      async collect() {
        if (collectors) this.set((await collectors.queue())[pick]);
      },
    });
  queueGauge('pixelfleet_queue_depth', 'Jobs waiting in the queue.', 'depth');
  queueGauge('pixelfleet_queue_inflight', 'Jobs leased by a worker.', 'inflight');
  queueGauge('pixelfleet_queue_dead_letters', 'Jobs in the dead-letter list.', 'deadLetters');
  new Gauge({
    name: 'pixelfleet_workers',
    help: 'Worker processes by state.',
    labelNames: ['state'],
    registers: [registry],
    collect() {
      if (!collectors) return;
      const w = collectors.workers();
      this.set({ state: 'configured' }, w.size);
      this.set({ state: 'alive' }, w.alive);
      this.set({ state: 'busy' }, w.busy);
    },
  });
  new Gauge({
    name: 'pixelfleet_worker_utilization_ratio',
    help: 'Share of worker processes converting an image right now.',
    registers: [registry],
    collect() {
      if (!collectors) return;
      const w = collectors.workers();
      this.set(w.size === 0 ? 0 : w.busy / w.size);
    },
  });
  new Gauge({
    name: 'pixelfleet_http_requests_in_flight',
    help: '/v1 requests being served.',
    registers: [registry],
    collect() {
      if (collectors) this.set(collectors.inflightRequests());
    },
  });

  return {
    registry,
    httpRequestDuration: new Histogram({
      name: 'pixelfleet_http_request_duration_seconds',
      help: 'HTTP request duration from first byte in to last byte out.',
      labelNames: ['route', 'method', 'status'],
      buckets: latencyBuckets,
      registers: [registry],
    }),
    queueWait: new Histogram({
      name: 'pixelfleet_queue_wait_seconds',
      help: 'Time a job waited in the queue before a worker claimed it.',
      labelNames: ['mode'],
      buckets: latencyBuckets,
      registers: [registry],
    }),
    conversionDuration: new Histogram({
      name: 'pixelfleet_conversion_duration_seconds',
      help: 'Wall time of one conversion in a worker.',
      labelNames: ['format'],
      buckets: latencyBuckets,
      registers: [registry],
    }),
    conversionCpuSeconds: new Counter({
      name: 'pixelfleet_conversion_cpu_seconds_total',
      help: 'CPU time (user + system) spent converting, the billed quantity.',
      labelNames: ['format'],
      registers: [registry],
    }),
    conversions: new Counter({
      name: 'pixelfleet_conversions_total',
      help: 'Conversions by outcome (succeeded, failed, retried, dead_lettered).',
      labelNames: ['outcome'],
      registers: [registry],
    }),
    bytesIn: new Counter({
      name: 'pixelfleet_bytes_in_total',
      help: 'Input image bytes converted.',
      registers: [registry],
    }),
    bytesOut: new Counter({
      name: 'pixelfleet_bytes_out_total',
      help: 'Output image bytes produced.',
      registers: [registry],
    }),
    shed: new Counter({
      name: 'pixelfleet_requests_shed_total',
      help: 'Requests refused with 503 to protect latency (load shedding, backpressure, shutdown).',
      labelNames: ['code'],
      registers: [registry],
    }),
    rejected: new Counter({
      name: 'pixelfleet_requests_rejected_total',
      help: 'Requests answered with an error, by PF_ERR code.',
      labelNames: ['code'],
      registers: [registry],
    }),
    workerRestarts: new Counter({
      name: 'pixelfleet_worker_restarts_total',
      help: 'Worker processes restarted, by reason (crash, timeout).',
      labelNames: ['reason'],
      registers: [registry],
    }),
    workerBusySeconds: new Counter({
      name: 'pixelfleet_worker_busy_seconds_total',
      help: 'Worker wall time spent converting; rate() over workers = utilisation.',
      registers: [registry],
    }),
    workerRss: new Gauge({
      name: 'pixelfleet_worker_rss_bytes',
      help: 'Resident memory of each worker process after its latest conversion (allocator creep shows here).',
      labelNames: ['worker'],
      registers: [registry],
    }),
    identityCache: new Counter({
      name: 'pixelfleet_identity_cache_events_total',
      help: 'Edge cache of API keys: hit, miss, refresh, invalidated, store-error, stale-served.',
      labelNames: ['event'],
      registers: [registry],
    }),
    setCollectors(next) {
      collectors = next;
    },
  };
}
