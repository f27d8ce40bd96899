/**
 * Idempotency keys on the POST routes: the first response to (account, Idempotency-Key) is kept
 * for `idempotencyTtl` and replayed byte for byte with `Idempotent-Replayed: true`; the same key
 * with other parameters is 422, a duplicate while the first runs is 409. Errors are not stored,
 * so a client can fix its request, or retry a transient failure, under the same key.
 */
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { ApiDependencies } from '../context.ts';
import {
  digestBody,
  fingerprintRequest,
  parseIdempotencyKeyHeader,
  type StoredResponse,
  withIdempotency,
} from '../idempotency/index.ts';

export async function respondIdempotently(
  request: FastifyRequest,
  reply: FastifyReply,
  deps: ApiDependencies,
  body: Buffer,
  produce: () => Promise<StoredResponse & { store: boolean }>,
): Promise<FastifyReply> {
  const key = parseIdempotencyKeyHeader(request.headers['idempotency-key']);
  const fingerprint =
    key === undefined
      ? ''
      : fingerprintRequest({
          method: request.method,
          path: request.routeOptions.url ?? request.url,
          query: request.query as Record<string, string | string[] | undefined>,
          // format=auto makes the output depend on Accept.
          headers: { accept: request.headers.accept },
          bodyDigest: digestBody(body),
        });
  const { response } = await withIdempotency(
    deps.idempotency,
    {
      scope: request.principal.accountId,
      key,
      fingerprint,
      deadlineMs: Date.now() + deps.config.syncTimeout,
      onStoreError: (error) =>
        deps.logger.error({ err: error, reqId: request.id }, 'idempotency store failed'),
    },
    produce,
  );
  return reply.code(response.status).headers(response.headers).send(response.body);
}
