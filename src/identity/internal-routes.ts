/**
 * The identity role's internal API for the data plane (fastify plugin on the cluster-internal
 * listener; the gateway never routes here). Every route needs `Authorization: Bearer <cluster
 * secret>` (compared in constant time).
 *
 *   GET /internal/credentials/:keyId   what EdgeCache needs to verify a key (404 unknown)
 *   GET /internal/tiers/:name          one tier (404 unknown)
 *   GET /internal/changes?after&incarnation&waitMs
 *                                      long poll of the change feed (see change-feed.ts)
 *
 * Long polling rather than SSE: each poll is an ordinary idempotent GET that goes through the
 * same RemotePolicy (timeouts, breaker, retries) as every other remote call, the cursor makes
 * resumption explicit after any failure, and a gap answer is just a field of the page.
 */
import type { FastifyInstance } from 'fastify';
import { PixelfleetError } from '../errors/index.ts';
import { tokenMatcher } from './admin-token.ts';
import type { ChangeFeed } from './change-feed.ts';
import { credentialToWire } from './remote/wire.ts';
import type { CredentialSource } from './types.ts';

export interface IdentityInternalRoutesOptions {
  source: CredentialSource;
  feed: ChangeFeed;
  clusterSecret: string;
  /** Longest long poll a reader may ask for (default 25 s). */
  maxWaitMs?: number;
}

/** Throws PF_ERR_CLUSTER_UNAUTHORIZED unless the headers carry the cluster secret as a bearer token. */
export function clusterSecretCheck(clusterSecret: string) {
  const matches = tokenMatcher(clusterSecret);
  return (headers: Record<string, string | string[] | undefined>): void => {
    const header = headers.authorization;
    const presented = typeof header === 'string' && header.startsWith('Bearer ') ? header.slice(7) : '';
    if (presented === '' || !matches(presented)) {
      throw new PixelfleetError('PF_ERR_CLUSTER_UNAUTHORIZED', 'missing or wrong cluster secret');
    }
  };
}

/** `clusterSecretCheck` as a fastify onRequest hook. */
export function clusterSecretGuard(clusterSecret: string) {
  const check = clusterSecretCheck(clusterSecret);
  return async (request: { headers: Record<string, string | string[] | undefined> }): Promise<void> =>
    check(request.headers);
}

export function registerIdentityInternalRoutes(
  app: FastifyInstance,
  options: IdentityInternalRoutesOptions,
): void {
  const maxWaitMs = options.maxWaitMs ?? 25_000;
  const guard = clusterSecretGuard(options.clusterSecret);
  app.get<{ Params: { keyId: string } }>(
    '/internal/credentials/:keyId',
    { onRequest: guard },
    async (request) => {
      const credential = await options.source.findCredential(request.params.keyId);
      if (credential === undefined) {
        throw new PixelfleetError('PF_ERR_NOT_FOUND', `no key ${request.params.keyId}`);
      }
      return credentialToWire(credential);
    },
  );
  app.get<{ Params: { name: string } }>('/internal/tiers/:name', { onRequest: guard }, async (request) => {
    const tier = await options.source.getTier(request.params.name);
    if (tier === undefined) throw new PixelfleetError('PF_ERR_NOT_FOUND', `no tier ${request.params.name}`);
    return tier;
  });
  app.get<{ Querystring: { after?: string; incarnation?: string; waitMs?: string } }>(
    '/internal/changes',
    { onRequest: guard },
    async (request) => {
      const { after, incarnation, waitMs } = request.query;
      const cursor = after === undefined || after === '' ? undefined : Number(after);
      const wait = Math.min(maxWaitMs, Math.max(0, Number(waitMs ?? 0) || 0));
      // Ends the poll early when the reader goes away or the server closes.
      const abort = new AbortController();
      request.raw.once('close', () => abort.abort());
      return options.feed.wait(
        cursor === undefined || Number.isNaN(cursor) ? undefined : cursor,
        incarnation || undefined,
        wait,
        abort.signal,
      );
    },
  );
}
