/**
 * Operations endpoints: liveness (/healthz: the process answers), readiness (/readyz: the queue
 * accepts writes, at least one worker is alive, and we are not shutting down; in the cluster the
 * role decides: queue and identity reachable) and Prometheus metrics (/metrics).
 */
import type { FastifyInstance } from 'fastify';
import type { ApiDependencies } from '../context.ts';

export function registerOperationsRoutes(app: FastifyInstance, deps: ApiDependencies): void {
  const { queue, metrics, admission, workers } = deps;

  app.get('/healthz', async () => ({ status: 'ok' }));

  app.get('/readyz', async (_request, reply) => {
    if (deps.readiness !== undefined) {
      const { ready, checks } = deps.readiness();
      const accepting = ready && !admission.shuttingDown;
      return reply.code(accepting ? 200 : 503).send({
        status: accepting ? 'ready' : 'not ready',
        checks: { ...checks, acceptingRequests: !admission.shuttingDown },
      });
    }
    const pool = workers();
    const checks = {
      queueWritable: queue.writable(),
      workersAlive: pool.alive,
      acceptingRequests: !admission.shuttingDown,
    };
    const ready = checks.queueWritable && checks.workersAlive > 0 && checks.acceptingRequests;
    return reply.code(ready ? 200 : 503).send({ status: ready ? 'ready' : 'not ready', checks });
  });

  app.get('/metrics', async (_request, reply) => {
    return reply.type(metrics.registry.contentType).send(await metrics.registry.metrics());
  });
}
