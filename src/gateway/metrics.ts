/**
 * Prometheus metrics of the gateway, on its own registry (served by the control listener).
 * Per-upstream attempt latency, breaker state and transitions, retries and budget exhaustion
 * come from the resilience kit's RemoteMetrics with `dependency` = the upstream id (retries and
 * the budget under `dependency="gateway"`: one budget covers all upstreams); the rest is here.
 */
import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import { registerProcessMetrics } from '../observability/metrics.ts';
import { createRemoteMetrics, type RemoteMetrics } from '../resilience/remote/index.ts';

export interface GatewayMetrics {
  registry: Registry;
  remote: RemoteMetrics;
  /** Client requests (or TCP connections) by final upstream ('none' for the gateway's own errors) and status class. */
  requests: Counter<'upstream' | 'status_class'>;
  requestDuration: Histogram<'status_class'>;
  ejections: Counter<'upstream'>;
  panicRouting: Counter;
  healthChecks: Counter<'upstream' | 'result'>;
  tcpConnections: Counter<'upstream'>;
  /** Reads health, ejection and in-flight counts of the upstreams at scrape time. */
  setUpstreamCollector(
    collect: () => Array<{ id: string; healthy: boolean; ejected: boolean; inflight: number }>,
  ): void;
}

const latencyBuckets = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];

export function createGatewayMetrics(options: { defaultMetrics?: boolean } = {}): GatewayMetrics {
  const registry = new Registry();
  if (options.defaultMetrics !== false) registerProcessMetrics(registry, 'pixelfleet_gateway_');
  const registers = [registry];
  let collect: Parameters<GatewayMetrics['setUpstreamCollector']>[0] = () => [];
  const upstreamGauge = (
    name: string,
    help: string,
    value: (u: ReturnType<typeof collect>[number]) => number,
  ) =>
    new Gauge({
      name,
      help,
      labelNames: ['upstream'],
      registers,
      collect() {
        this.reset();
        for (const upstream of collect()) this.set({ upstream: upstream.id }, value(upstream));
      },
    });
  upstreamGauge(
    'pixelfleet_gateway_upstream_healthy',
    'Active health per upstream (1 healthy, 0 not).',
    (u) => (u.healthy ? 1 : 0),
  );
  upstreamGauge('pixelfleet_gateway_upstream_ejected', 'Outlier ejection per upstream (1 ejected).', (u) =>
    u.ejected ? 1 : 0,
  );
  upstreamGauge(
    'pixelfleet_gateway_upstream_in_flight',
    'Requests (or connections) in flight per upstream.',
    (u) => u.inflight,
  );

  return {
    registry,
    remote: createRemoteMetrics(registry),
    requests: new Counter({
      name: 'pixelfleet_gateway_requests_total',
      help: 'Requests answered by the gateway, by the upstream that answered and status class.',
      labelNames: ['upstream', 'status_class'],
      registers,
    }),
    requestDuration: new Histogram({
      name: 'pixelfleet_gateway_request_duration_seconds',
      help: 'Client request duration through the gateway, first byte in to last byte out.',
      labelNames: ['status_class'],
      buckets: latencyBuckets,
      registers,
    }),
    ejections: new Counter({
      name: 'pixelfleet_gateway_ejections_total',
      help: 'Outlier ejections per upstream.',
      labelNames: ['upstream'],
      registers,
    }),
    panicRouting: new Counter({
      name: 'pixelfleet_gateway_panic_routing_total',
      help: 'Attempts sent to an unhealthy or ejected upstream because no healthy one was available.',
      registers,
    }),
    healthChecks: new Counter({
      name: 'pixelfleet_gateway_health_checks_total',
      help: 'Active health checks per upstream and result (pass, fail).',
      labelNames: ['upstream', 'result'],
      registers,
    }),
    tcpConnections: new Counter({
      name: 'pixelfleet_gateway_tcp_connections_total',
      help: 'TCP connections proxied per upstream (L4 mode).',
      labelNames: ['upstream'],
      registers,
    }),
    setUpstreamCollector(next) {
      collect = next;
    },
  };
}

export function statusClass(status: number): string {
  return `${Math.floor(status / 100)}xx`;
}
