/**
 * The asynchronous API. POST /v1/jobs makes the input durable (fsync) and enqueues the job
 * (fsynced by the queue) before answering 202, so an accepted job survives `kill -9`.
 * GET /v1/jobs/{id} reports state, timings, attempts and error; GET /v1/jobs/{id}/result
 * returns the image until it expires (410).
 */
import { randomUUID } from 'node:crypto';
import type { FastifyInstance } from 'fastify';
import { PixelfleetError, toProblem } from '../../errors/index.ts';
import { requireScope } from '../../identity/index.ts';
import type { JobRecord } from '../../queue/types.ts';
import { decodeFailure, type ResizeJobPayload, type ResizeOutcome } from '../../worker/dispatcher.ts';
import type { ApiDependencies } from '../context.ts';
import { respondIdempotently } from './idempotent.ts';
import { conversionGate, intake } from './intake.ts';
import { resultHeaders } from './resize.ts';

const publicStates: Record<JobRecord['state'], string> = {
  queued: 'queued',
  running: 'running',
  succeeded: 'succeeded',
  dead: 'failed',
  expired: 'failed',
};

function describeJob(record: JobRecord, resultTtlMs: number): Record<string, unknown> {
  const outcome = record.outcome as ResizeOutcome | undefined;
  const resultExpiresAt = record.finishedAt === undefined ? undefined : record.finishedAt + resultTtlMs;
  const error =
    record.state === 'dead' || record.state === 'expired'
      ? toProblem(decodeFailure(record.lastError))
      : undefined;
  return {
    id: record.id,
    state: publicStates[record.state],
    attempts: record.attempts,
    maxAttempts: record.maxAttempts,
    createdAt: new Date(record.enqueuedAt).toISOString(),
    startedAt: record.firstClaimedAt === undefined ? null : new Date(record.firstClaimedAt).toISOString(),
    finishedAt: record.finishedAt === undefined ? null : new Date(record.finishedAt).toISOString(),
    timings:
      outcome === undefined
        ? null
        : {
            queueWaitMs: outcome.queueWaitMs,
            conversionMs: outcome.conversionMs,
            cpuMicros: outcome.cpuMicros,
          },
    result:
      outcome === undefined || record.state !== 'succeeded'
        ? null
        : {
            href: `/v1/jobs/${record.id}/result`,
            contentType: outcome.contentType,
            bytes: outcome.bytesOut,
            width: outcome.width,
            height: outcome.height,
            expiresAt: resultExpiresAt === undefined ? null : new Date(resultExpiresAt).toISOString(),
          },
    error: error ?? null,
  };
}

export function registerJobRoutes(app: FastifyInstance, deps: ApiDependencies): void {
  const { config, queue, blobs, admission } = deps;

  /** The caller's own async job; another account's job reads as unknown, never as forbidden. */
  async function findAsyncJob(id: string, accountId: string): Promise<JobRecord> {
    const record = /^[A-Za-z0-9_-]{1,128}$/.test(id) ? await queue.get(id) : undefined;
    const payload = record?.payload as unknown as ResizeJobPayload | undefined;
    if (!record || payload?.mode !== 'async' || record.account !== accountId) {
      throw new PixelfleetError(
        'PF_ERR_JOB_NOT_FOUND',
        `no job ${id} (jobs are forgotten some time after they finish)`,
      );
    }
    return record;
  }

  app.post('/v1/jobs', { onRequest: conversionGate(deps) }, async (request, reply) => {
    const { body, payload } = intake(request, deps, 'async');
    return respondIdempotently(request, reply, deps, body, async () => {
      admission.checkQueue();
      const id = randomUUID();
      request.facts.jobId = id;
      await blobs.putInput(id, body, 'disk');
      try {
        await queue.enqueue({ id, account: request.principal.accountId, payload: payload as never });
        admission.noteEnqueued(request.principal.accountId);
      } catch (error) {
        await blobs.deleteInput(id, 'disk');
        throw error;
      }
      const location = `/v1/jobs/${id}`;
      const document = { id, state: 'queued', links: { self: location, result: `${location}/result` } };
      return {
        status: 202,
        headers: { location, 'content-type': 'application/json; charset=utf-8' },
        body: Buffer.from(JSON.stringify(document)),
        store: true,
      };
    });
  });

  app.get<{ Params: { id: string } }>('/v1/jobs/:id', async (request) => {
    requireScope(request.principal, 'jobs:read');
    return describeJob(await findAsyncJob(request.params.id, request.principal.accountId), config.resultTtl);
  });

  app.get<{ Params: { id: string } }>('/v1/jobs/:id/result', async (request, reply) => {
    requireScope(request.principal, 'jobs:read');
    const record = await findAsyncJob(request.params.id, request.principal.accountId);
    if (record.state === 'queued' || record.state === 'running') {
      throw new PixelfleetError(
        'PF_ERR_JOB_NOT_FINISHED',
        `job ${record.id} is ${record.state}; poll /v1/jobs/${record.id}`,
        {
          extensions: { retryAfterSeconds: 1 },
        },
      );
    }
    if (record.state !== 'succeeded') {
      throw new PixelfleetError(
        'PF_ERR_JOB_FAILED',
        `job ${record.id} failed: ${decodeFailure(record.lastError).message}`,
      );
    }
    const origin = (record.payload as unknown as ResizeJobPayload).origin;
    // In the cluster the result lives with the api server that took the job: ask it.
    const stored =
      (await blobs.getResult(record.id)) ??
      (origin !== undefined && origin.id !== deps.origin?.id
        ? await deps.remoteResult?.(record.id, origin)
        : undefined);
    const outcome = record.outcome as ResizeOutcome;
    if (!stored || (record.finishedAt !== undefined && Date.now() - record.finishedAt > config.resultTtl)) {
      throw new PixelfleetError('PF_ERR_RESULT_EXPIRED', `the result of job ${record.id} expired`);
    }
    const headers = resultHeaders(
      { output: stored.bytes, contentType: stored.contentType, outcome },
      config.cacheControl,
      false,
    );
    reply.headers(headers);
    if (request.headers['if-none-match'] === headers.etag) return reply.code(304).send();
    request.facts.bytesOut = stored.bytes.length;
    return reply.send(stored.bytes);
  });
}
