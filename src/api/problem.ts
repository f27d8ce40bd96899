/**
 * RFC 9457 problem+json for every error the HTTP API returns. Fastify's own errors (body too
 * large, bad content type) are translated into Pixelfleet codes so clients see one vocabulary.
 */
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { isPixelfleetError, PixelfleetError, toProblem } from '../errors/index.ts';

export function toPixelfleetError(error: unknown): PixelfleetError {
  if (isPixelfleetError(error)) return error;
  const fastifyError = error as Partial<FastifyError>;
  switch (fastifyError.code) {
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return new PixelfleetError('PF_ERR_BODY_TOO_LARGE', 'the request body is larger than the limit', {
        cause: error,
      });
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
      return new PixelfleetError('PF_ERR_EMPTY_BODY', 'the request body is empty', { cause: error });
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
      return new PixelfleetError('PF_ERR_UNSUPPORTED_FORMAT', 'unsupported content type', { cause: error });
  }
  if (fastifyError.validation !== undefined || fastifyError.statusCode === 400) {
    return new PixelfleetError('PF_ERR_BAD_REQUEST', fastifyError.message ?? 'malformed request', {
      cause: error,
    });
  }
  if (fastifyError.statusCode === 413) {
    return new PixelfleetError('PF_ERR_BODY_TOO_LARGE', 'the request body is larger than the limit', {
      cause: error,
    });
  }
  return new PixelfleetError('PF_ERR_INTERNAL', 'an internal error occurred; it was logged', {
    cause: error,
  });
}

/** Response headers an error carries besides its body (e.g. RateLimit on a 429). */
const attachedHeaders = new WeakMap<PixelfleetError, Record<string, string>>();

export function withResponseHeaders(
  error: PixelfleetError,
  headers: Record<string, string>,
): PixelfleetError {
  attachedHeaders.set(error, { ...attachedHeaders.get(error), ...headers });
  return error;
}

export function sendProblem(
  request: FastifyRequest,
  reply: FastifyReply,
  error: PixelfleetError,
): FastifyReply {
  const problem = toProblem(error, request.url);
  const headers = attachedHeaders.get(error);
  if (headers) reply.headers(headers);
  // RFC 6750: a 401 names the scheme the client should use.
  if (error.status === 401) reply.header('www-authenticate', 'Bearer realm="pixelfleet"');
  const retryAfter = error.extensions.retryAfterSeconds;
  if (typeof retryAfter === 'number') reply.header('retry-after', String(Math.max(1, Math.ceil(retryAfter))));
  else if (error.status === 503) reply.header('retry-after', '1');
  // A Buffer body keeps fastify from appending a charset to the RFC 9457 media type.
  return reply
    .code(error.status)
    .type('application/problem+json')
    .send(Buffer.from(JSON.stringify(problem)));
}

/** Installs the problem+json error and not-found handlers on an instance. */
export function registerProblemHandlers(
  app: FastifyInstance,
  onError?: (request: FastifyRequest, error: PixelfleetError) => void,
): void {
  app.setErrorHandler((error, request, reply) => {
    const translated = toPixelfleetError(error);
    onError?.(request, translated);
    return sendProblem(request, reply, translated);
  });
  app.setNotFoundHandler((request, reply) =>
    sendProblem(
      request,
      reply,
      new PixelfleetError('PF_ERR_NOT_FOUND', `no route for ${request.method} ${request.url.split('?')[0]}`),
    ),
  );
}
