/**
 * The api role's HTTP server (fastify): the public /v1 API, health, readiness and metrics.
 * Request bodies are raw image bytes (any content type), capped at `maxBodyBytes`.
 * Every /v1 request passes admission control (load shedding) and tenancy (authentication,
 * token buckets) before its body is read, gets an X-Request-Id and a W3C trace context, and
 * produces exactly one JSON access-log line.
 */
import { randomUUID } from 'node:crypto';
import Fastify, { type FastifyInstance } from 'fastify';
import type { PixelfleetError } from '../errors/index.ts';
import { presentedKeyFromHeaders } from '../identity/index.ts';
import { continueTrace, formatTraceparent } from '../observability/index.ts';
import type { ApiDependencies } from './context.ts';
import { registerProblemHandlers, sendProblem } from './problem.ts';
import { registerJobRoutes } from './routes/jobs.ts';
import { registerOperationsRoutes } from './routes/operations.ts';
import { registerResizeRoutes } from './routes/resize.ts';
import { registerUsageRoutes } from './routes/usage.ts';

export function buildApiServer(deps: ApiDependencies): FastifyInstance {
  const { config, metrics, logger, admission } = deps;
  const app = Fastify({
    logger: false,
    bodyLimit: config.maxBodyBytes,
    requestIdHeader: 'x-request-id',
    genReqId: () => randomUUID(),
    // A request that cannot finish within its deadline plus slack is cut off.
    requestTimeout: config.syncTimeout + 5000,
    return503OnClosing: false,
  });

  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', { parseAs: 'buffer' }, (_request, body, done) => done(null, body));
  app.decorateRequest('facts', null as never);
  app.decorateRequest('principal', null as never);

  app.addHook('onRequest', async (request, reply) => {
    request.facts = { trace: continueTrace(request.headers.traceparent as string | undefined) };
    reply.header('x-request-id', request.id);
    reply.header('traceparent', formatTraceparent(request.facts.trace));
    if (!request.url.startsWith('/v1/')) return;
    try {
      admission.admit();
    } catch (error) {
      const shed = error as PixelfleetError;
      metrics.shed.inc({ code: shed.code });
      request.facts.code = shed.code;
      // Refused before the body was read: tell the client not to send more on this connection.
      reply.header('connection', 'close');
      return sendProblem(request, reply, shed);
    }
    request.facts.admitted = true;
    // 'close' fires once whether the response finished or the client went away.
    reply.raw.once('close', () => admission.release());
    const admitted = await deps.tenancy.admit(presentedKeyFromHeaders(request.headers), request.ip);
    request.principal = admitted.principal;
    request.facts.accountId = admitted.principal.accountId;
    request.facts.keyId = admitted.principal.keyId;
    reply.headers(admitted.headers);
  });

  // While draining, every response ends its connection so keep-alive clients move elsewhere
  // and the listener can close as soon as the last in-flight request is answered.
  app.addHook('onSend', async (_request, reply) => {
    if (admission.shuttingDown) reply.header('connection', 'close');
  });

  registerProblemHandlers(app, (request, error) => {
    request.facts.code = error.code;
    if (error.code === 'PF_ERR_INTERNAL')
      logger.error({ err: error.cause ?? error, reqId: request.id }, 'internal error');
  });

  app.addHook('onResponse', async (request, reply) => {
    const route = request.routeOptions.url ?? 'unmatched';
    const seconds = reply.elapsedTime / 1000;
    const status = reply.statusCode;
    metrics.httpRequestDuration.observe({ route, method: request.method, status: String(status) }, seconds);
    const facts = request.facts;
    if (status >= 400 && facts.code !== undefined && status !== 503)
      metrics.rejected.inc({ code: facts.code });
    if (route === '/metrics' || route === '/healthz' || route === '/readyz') return;
    logger.info(
      {
        reqId: request.id,
        traceId: facts.trace.traceId,
        method: request.method,
        route,
        status,
        code: facts.code,
        durationMs: Math.round(reply.elapsedTime * 100) / 100,
        jobId: facts.jobId,
        accountId: facts.accountId,
        keyId: facts.keyId,
        bytesIn: facts.bytesIn,
        bytesOut: facts.bytesOut,
        queueWaitMs: facts.queueWaitMs,
        conversionMs: facts.conversionMs,
        cpuMicros: facts.cpuMicros,
      },
      'request',
    );
  });

  registerResizeRoutes(app, deps);
  registerJobRoutes(app, deps);
  registerUsageRoutes(app, deps);
  registerOperationsRoutes(app, deps);
  return app;
}
