/**
 * The registry's HTTP routes (cluster contract), mounted on the gateway's control listener:
 * POST /registry/heartbeat, GET /registry/members, DELETE /registry/members/:id, all behind
 * the cluster secret as a bearer token. Errors are problem+json with PF_ERR_* codes; the routes
 * live in their own encapsulated plugin so their error handling does not depend on the host app.
 */
import type { FastifyInstance } from 'fastify';
import { sendProblem, toPixelfleetError } from '../api/problem.ts';
import { PixelfleetError } from '../errors/index.ts';
import { parseAnnouncement } from './announcement.ts';
import { hasClusterSecret } from './cluster-secret.ts';
import type { MemberRegistry } from './member-registry.ts';

export interface RegistryRoutesOptions {
  registry: MemberRegistry;
  clusterSecret: string;
}

export function registerRegistryRoutes(app: FastifyInstance, options: RegistryRoutesOptions): void {
  const { registry, clusterSecret } = options;
  if (typeof clusterSecret !== 'string' || clusterSecret.length === 0) {
    throw new RangeError('clusterSecret must be a non-empty string');
  }
  app.register(async (scope) => {
    scope.setErrorHandler((error, request, reply) => sendProblem(request, reply, toPixelfleetError(error)));
    scope.addHook('onRequest', async (request, reply) => {
      if (!hasClusterSecret(request.headers.authorization, clusterSecret)) {
        return sendProblem(
          request,
          reply,
          new PixelfleetError('PF_ERR_CLUSTER_UNAUTHORIZED', 'send the cluster secret as a bearer token'),
        );
      }
    });

    scope.post('/registry/heartbeat', { bodyLimit: 16 * 1024 }, async (request) => {
      registry.heartbeat(parseAnnouncement(request.body));
      return { members: registry.members() };
    });

    scope.get('/registry/members', async () => ({ members: registry.members() }));

    scope.delete<{ Params: { id: string } }>('/registry/members/:id', async (request, reply) => {
      if (!registry.leave(request.params.id)) {
        throw new PixelfleetError('PF_ERR_NOT_FOUND', `no member ${request.params.id}`);
      }
      return reply.code(204).send();
    });
  });
}
