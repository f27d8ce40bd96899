/**
 * An open-loop load generator: requests start at evenly spaced times (rate per second) whatever
 * the server's pace, and each latency is measured from the request's scheduled start, so a slow
 * server cannot hide its queueing (no coordinated omission). autocannon's `overallRate` sends
 * each second's quota in a burst at the start of the second, which measures burst queueing
 * rather than steady load; this is for the "p99 at 80 % of saturation" figure.
 */
import { Pool } from 'undici';
import { percentile } from '../test/support/stats.ts';

export interface OpenLoopResult {
  perSecond: number;
  p50: number;
  p99: number;
  p999: number;
  errorRate: number;
  requests: number;
}

export async function openLoop(options: {
  url: string;
  rate: number;
  durationS: number;
  request: (index: number) => {
    method: 'GET' | 'POST';
    path: string;
    body?: Buffer;
    headers?: Record<string, string>;
  };
}): Promise<OpenLoopResult> {
  const pool = new Pool(options.url, { connections: 256, pipelining: 1 });
  const total = Math.round(options.rate * options.durationS);
  const interval = 1000 / options.rate;
  const latencies: number[] = [];
  let errors = 0;
  let ok = 0;
  const start = performance.now() + 50;
  const inflight: Promise<void>[] = [];
  for (let i = 0; i < total; i++) {
    const scheduled = start + i * interval;
    const wait = scheduled - performance.now();
    if (wait > 1) await new Promise((resolve) => setTimeout(resolve, wait));
    const next = options.request(i);
    inflight.push(
      pool
        .request({ method: next.method, path: next.path, body: next.body, headers: next.headers })
        .then(async (response) => {
          await response.body.arrayBuffer();
          if (response.statusCode >= 200 && response.statusCode < 300) ok++;
          else errors++;
        })
        .catch(() => {
          errors++;
        })
        .finally(() => latencies.push(performance.now() - scheduled)),
    );
  }
  await Promise.all(inflight);
  const elapsed = (performance.now() - start) / 1000;
  await pool.close();
  latencies.sort((a, b) => a - b);
  return {
    perSecond: ok / elapsed,
    p50: Math.round(percentile(latencies, 0.5)),
    p99: Math.round(percentile(latencies, 0.99)),
    p999: Math.round(percentile(latencies, 0.999)),
    errorRate: errors / Math.max(1, total),
    requests: total,
  };
}
