/**
 * The gateway's control listener (fastify): the discovery registry routes, Prometheus
 * /metrics, /healthz (the process answers), /readyz (at least one healthy, non-ejected
 * upstream) and /status (JSON view of every upstream for operators and tests).
 */
import Fastify, { type FastifyInstance } from 'fastify';
import { registerProblemHandlers } from '../api/problem.ts';
import { type MemberRegistry, registerRegistryRoutes } from '../discovery/index.ts';
import type { Balancer } from './balancer.ts';

export interface GatewayStatus {
  mode: 'http' | 'tcp';
  strategy: string;
  ready: boolean;
  retryBudget: { requests: number; retries: number };
  upstreams: UpstreamStatus[];
  draining: Array<{ id: string; inflight: number }>;
}

export interface UpstreamStatus {
  id: string;
  url: string;
  source: 'static' | 'registry';
  weight: number;
  healthy: boolean;
  lastCheckedAt?: number;
  lastCheckError?: string;
  ejected: boolean;
  ejectedUntil?: number;
  timesEjected: number;
  consecutiveFailures: number;
  breaker: { state: string; requests: number; failures: number; openedAt?: number };
  inflight: number;
  latencyEwmaMs?: number;
}

export function gatewayStatus(balancer: Balancer, mode: 'http' | 'tcp'): GatewayStatus {
  const upstreams = balancer.upstreams.active().map((upstream): UpstreamStatus => {
    const health = upstream.health.snapshot();
    const outlier = balancer.outlier.snapshot(upstream.id);
    return {
      id: upstream.id,
      url: upstream.origin,
      source: upstream.source,
      weight: upstream.weight,
      healthy: health.healthy,
      ...(health.lastCheckedAt === undefined ? {} : { lastCheckedAt: health.lastCheckedAt }),
      ...(health.lastError === undefined ? {} : { lastCheckError: health.lastError }),
      ejected: outlier?.ejected ?? false,
      ...(outlier?.ejectedUntil === undefined ? {} : { ejectedUntil: outlier.ejectedUntil }),
      timesEjected: outlier?.timesEjected ?? 0,
      consecutiveFailures: outlier?.consecutiveFailures ?? 0,
      breaker: upstream.breaker.snapshot(),
      inflight: upstream.inflight,
      ...(upstream.latencyEwmaMs === undefined
        ? {}
        : { latencyEwmaMs: Math.round(upstream.latencyEwmaMs * 100) / 100 }),
    };
  });
  return {
    mode,
    strategy: balancer.strategy.name,
    ready: upstreams.some((upstream) => upstream.healthy && !upstream.ejected),
    retryBudget: balancer.retryBudget.snapshot(),
    upstreams,
    draining: balancer.upstreams
      .draining()
      .map((upstream) => ({ id: upstream.id, inflight: upstream.inflight })),
  };
}

export async function startControlServer(options: {
  host: string;
  port: number;
  balancer: Balancer;
  registry: MemberRegistry;
  clusterSecret: string;
  mode: 'http' | 'tcp';
  /** Refreshes gauges read at scrape time. */
  beforeScrape?: () => void;
}): Promise<FastifyInstance> {
  const { balancer } = options;
  const app = Fastify({ logger: false });
  registerProblemHandlers(app);
  registerRegistryRoutes(app, { registry: options.registry, clusterSecret: options.clusterSecret });
  app.get('/healthz', async () => ({ status: 'ok' }));
  app.get('/readyz', async (_request, reply) => {
    const status = gatewayStatus(balancer, options.mode);
    const healthy = status.upstreams.filter((upstream) => upstream.healthy && !upstream.ejected).length;
    return reply.code(status.ready ? 200 : 503).send({
      status: status.ready ? 'ready' : 'not ready',
      healthyUpstreams: healthy,
      upstreams: status.upstreams.length,
    });
  });
  app.get('/status', async () => gatewayStatus(balancer, options.mode));
  app.get('/metrics', async (_request, reply) => {
    options.beforeScrape?.();
    const registry = balancer.metrics.registry;
    return reply.type(registry.contentType).send(await registry.metrics());
  });
  await app.listen({ host: options.host, port: options.port });
  return app;
}
