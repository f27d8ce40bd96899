/**
 * Steady open-loop load for fault-injection tests and benchmarks: requests start at evenly spaced
 * times whatever the answers do (a closed loop would slow down with the system and hide a
 * fault), up to a cap of requests in flight so a hung target cannot pile up sockets without
 * bound. Every request is recorded with its start time, so a fault report can cut the run into
 * before, during and after the fault.
 *
 * The report's terms: yield = share of requests answered successfully (Fox and Brewer's yield,
 * not uptime); time to recover = from the fault to the start of the first request after the last
 * failure (every request from then on succeeded).
 */
import { Agent, request } from 'undici';
import { percentile } from './stats.ts';

export interface LoadRequest {
  method: 'GET' | 'POST' | 'PUT' | 'DELETE';
  path: string;
  headers?: Record<string, string>;
  body?: Buffer;
}

export interface LoadSample {
  index: number;
  /** ms since the run started */
  startedAt: number;
  latencyMs: number;
  /** 0 when no HTTP answer arrived (connection error, timeout, cap reached) */
  status: number;
  ok: boolean;
  error?: string;
  headers: Record<string, string>;
  body?: Buffer;
}

export interface SteadyLoadOptions {
  baseUrl: string;
  ratePerSecond: number;
  durationMs: number;
  build(index: number): LoadRequest;
  /** Default: any 2xx. */
  isSuccess?(status: number): boolean;
  /** A request that has not answered after this long counts as failed. Default 10 000. */
  timeoutMs?: number;
  /** Requests beyond this many in flight are recorded as failed at once ('overloaded'). Default 256. */
  maxInflight?: number;
  /** Keep response bodies (for checking outputs). Default false. */
  keepBodies?: boolean;
  /** Called with the ms since start at each tick; lets a test inject a fault on schedule. */
  onTick?(elapsedMs: number): void;
}

export async function runSteadyLoad(options: SteadyLoadOptions): Promise<LoadSample[]> {
  const timeoutMs = options.timeoutMs ?? 10_000;
  const maxInflight = options.maxInflight ?? 256;
  const isSuccess = options.isSuccess ?? ((status: number) => status >= 200 && status < 300);
  const dispatcher = new Agent({ connections: maxInflight, keepAliveTimeout: 4_000, pipelining: 1 });
  const samples: LoadSample[] = [];
  const pending = new Set<Promise<void>>();
  const interval = 1000 / options.ratePerSecond;
  const total = Math.floor((options.durationMs / 1000) * options.ratePerSecond);
  const origin = performance.now();
  try {
    for (let index = 0; index < total; index++) {
      const due = origin + index * interval;
      const wait = due - performance.now();
      if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
      const startedAt = performance.now() - origin;
      options.onTick?.(startedAt);
      if (pending.size >= maxInflight) {
        samples.push({
          index,
          startedAt,
          latencyMs: 0,
          status: 0,
          ok: false,
          error: 'overloaded',
          headers: {},
        });
        continue;
      }
      const call = send(index, startedAt).finally(() => pending.delete(call));
      pending.add(call);
    }
    await Promise.all(pending);
  } finally {
    await dispatcher.close().catch(() => {});
  }
  return samples.sort((a, b) => a.index - b.index);

  async function send(index: number, startedAt: number): Promise<void> {
    const spec = options.build(index);
    const began = performance.now();
    try {
      const response = await request(new URL(spec.path, options.baseUrl), {
        method: spec.method,
        ...(spec.headers ? { headers: spec.headers } : {}),
        ...(spec.body ? { body: spec.body } : {}),
        dispatcher,
        headersTimeout: timeoutMs,
        bodyTimeout: timeoutMs,
        signal: AbortSignal.timeout(timeoutMs),
      });
      const body = Buffer.from(await response.body.arrayBuffer());
      const headers: Record<string, string> = {};
      for (const [name, value] of Object.entries(response.headers)) {
        if (typeof value === 'string') headers[name] = value;
      }
      samples.push({
        index,
        startedAt,
        latencyMs: performance.now() - began,
        status: response.statusCode,
        ok: isSuccess(response.statusCode),
        headers,
        ...(options.keepBodies || !isSuccess(response.statusCode) ? { body } : {}),
      });
    } catch (error) {
      samples.push({
        index,
        startedAt,
        latencyMs: performance.now() - began,
        status: 0,
        ok: false,
        error: (error as Error).message,
        headers: {},
      });
    }
  }
}

export interface FaultReport {
  requests: number;
  /** Share of all requests answered successfully. */
  yield: number;
  /** Yield of the requests in flight during the fault window. */
  yieldDuringFault: number;
  /** p99 latency of the successful requests in flight during the fault window. */
  p99DuringFaultMs: number;
  /** p99 latency of the requests answered before the fault. */
  p99BeforeFaultMs: number;
  /** 0 when no request failed after the fault. */
  timeToRecoverMs: number;
  failures: Record<string, number>;
}

/**
 * The fault window holds the requests in flight between the fault and `windowEndMs` (default: recovery plus one second, or
 * one second after the fault when nothing failed). A fault that only slows requests down (a
 * paused process, a redelivery after a lease) fails nothing: give it a window long enough to
 * see the slow ones.
 */
export function faultReport(
  samples: readonly LoadSample[],
  faultAtMs: number,
  windowEndMs?: number,
): FaultReport {
  const failed = samples.filter((sample) => !sample.ok);
  const lastFailure = failed.filter((sample) => sample.startedAt >= faultAtMs).at(-1);
  const recoveredAt = lastFailure
    ? (samples.find((sample) => sample.startedAt > lastFailure.startedAt)?.startedAt ?? lastFailure.startedAt)
    : faultAtMs;
  const end = windowEndMs ?? Math.max(recoveredAt, faultAtMs) + 1000;
  // In the window: every request in flight at some point of it (one sent just before the fault
  // and caught by it counts).
  const during = samples.filter(
    (sample) => sample.startedAt <= end && sample.startedAt + sample.latencyMs >= faultAtMs,
  );
  const before = samples.filter((sample) => sample.startedAt + sample.latencyMs < faultAtMs);
  const failures: Record<string, number> = {};
  for (const sample of failed) {
    const key = sample.status === 0 ? (sample.error ?? 'error') : String(sample.status);
    failures[key] = (failures[key] ?? 0) + 1;
  }
  const latencies = (list: readonly LoadSample[]) =>
    list
      .filter((sample) => sample.ok)
      .map((sample) => sample.latencyMs)
      .sort((a, b) => a - b);
  return {
    requests: samples.length,
    yield: samples.length === 0 ? 1 : (samples.length - failed.length) / samples.length,
    yieldDuringFault: during.length === 0 ? 1 : during.filter((sample) => sample.ok).length / during.length,
    p99DuringFaultMs: Math.round(percentile(latencies(during), 0.99)),
    p99BeforeFaultMs: Math.round(percentile(latencies(before), 0.99)),
    timeToRecoverMs: lastFailure ? Math.round(recoveredAt - faultAtMs) : 0,
    failures,
  };
}
