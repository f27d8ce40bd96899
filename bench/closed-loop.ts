/**
 * Closed-loop saturation load (autocannon): `connections` clients each send the next request as
 * soon as the previous one answers, so the figure is the server's capacity. For latency at a
 * given rate use the open-loop generator (open-loop.ts) instead.
 */
import autocannon from 'autocannon';

export interface LoadResult {
  perSecond: number;
  p50: number;
  p99: number;
  p999: number;
  errorRate: number;
  requests: number;
  /** Requests answered 2xx. */
  succeeded: number;
}

export async function closedLoop(options: {
  url: string;
  connections: number;
  durationS: number;
  overallRate?: number;
  amount?: number;
  request: (index: number) => { method: 'GET' | 'POST'; path: string; body?: Buffer };
  headers?: Record<string, string>;
}): Promise<LoadResult> {
  let counter = 0;
  const result = await autocannon({
    url: options.url,
    connections: options.connections,
    ...(options.amount ? { amount: options.amount } : { duration: options.durationS }),
    ...(options.overallRate ? { overallRate: options.overallRate } : {}),
    timeout: 30,
    requests: [
      {
        setupRequest: (request) => {
          const next = options.request(counter++);
          return {
            ...request,
            method: next.method,
            path: next.path,
            body: next.body,
            headers: { 'content-type': 'image/jpeg', ...options.headers },
          };
        },
      },
    ],
  });
  const total = result['2xx'] + result.non2xx + result.errors + result.timeouts;
  return {
    perSecond: result['2xx'] / result.duration,
    p50: result.latency.p50,
    p99: result.latency.p99,
    p999: result.latency.p99_9,
    errorRate: total === 0 ? 0 : (total - result['2xx']) / total,
    requests: total,
    succeeded: result['2xx'],
  };
}
