/**
 * POST /v1/resize — the synchronous API: the image is the body, options are query parameters,
 * the converted image is the response. The job still goes through the queue (load levelling,
 * redelivery if a worker dies), but its bytes stay in this process's memory.
 */
import { hash, randomUUID } from 'node:crypto';
import type { FastifyInstance } from 'fastify';
import { readDeadline } from '../../resilience/remote/index.ts';
import type { ResizeOutcome } from '../../worker/dispatcher.ts';
import type { ApiDependencies } from '../context.ts';
import { respondIdempotently } from './idempotent.ts';
import { conversionGate, intake } from './intake.ts';

/** Content type, validators, Server-Timing and the CPU header of a converted image. */
export function resultHeaders(
  result: { output: Buffer; contentType: string; outcome: ResizeOutcome },
  cacheControl: string,
  varyOnAccept: boolean,
): Record<string, string> {
  const { outcome } = result;
  return {
    'content-type': result.contentType,
    etag: `"${hash('sha1', result.output, 'base64url')}"`,
    'cache-control': cacheControl,
    'server-timing': `queue;dur=${outcome.queueWaitMs.toFixed(1)}, convert;dur=${outcome.conversionMs.toFixed(1)}, cpu;dur=${(outcome.cpuMicros / 1000).toFixed(1)}`,
    'x-pixelfleet-cpu-micros': String(outcome.cpuMicros),
    'x-pixelfleet-attempts': String(outcome.attempt),
    'x-pixelfleet-dimensions': `${outcome.width}x${outcome.height}`,
    ...(varyOnAccept ? { vary: 'Accept' } : {}),
  };
}

export function registerResizeRoutes(app: FastifyInstance, deps: ApiDependencies): void {
  const { config, queue, blobs, completions, admission } = deps;

  app.post('/v1/resize', { onRequest: conversionGate(deps) }, async (request, reply) => {
    const { body, options, payload } = intake(request, deps, 'sync');
    return respondIdempotently(request, reply, deps, body, async () => {
      admission.checkQueue();
      const id = randomUUID();
      request.facts.jobId = id;
      // The caller's remaining budget (Pixelfleet-Deadline, set by the gateway or a client) caps
      // our own: nobody converts an image its caller has stopped waiting for.
      const now = Date.now();
      const deadline = Math.min(now + config.syncTimeout, readDeadline(request.headers, now) ?? Infinity);
      await blobs.putInput(id, body, 'memory');
      const done = completions.wait(id, Math.max(0, deadline - now));
      try {
        // Nobody asks about a sync job once it is answered: keep its record only briefly.
        await queue.enqueue({
          id,
          account: request.principal.accountId,
          payload: payload as never,
          deadline,
          retentionMs: 60_000,
          // The bytes live only in this process: a crash loses the job whatever the log says.
          durable: false,
        });
        admission.noteEnqueued(request.principal.accountId);
      } catch (error) {
        completions.cancel(id);
        await blobs.deleteInput(id, 'memory');
        throw error;
      }
      let result: Awaited<typeof done>;
      try {
        result = await done;
      } finally {
        await blobs.deleteInput(id, 'memory');
      }
      Object.assign(request.facts, {
        bytesOut: result.outcome.bytesOut,
        queueWaitMs: result.outcome.queueWaitMs,
        conversionMs: result.outcome.conversionMs,
        cpuMicros: result.outcome.cpuMicros,
      });
      return {
        status: 200,
        headers: {
          ...resultHeaders(result, config.cacheControl, options.variesOnAccept),
          // The usage record's id: lets a customer match an invoice line to a response.
          'x-pixelfleet-job-id': id,
        },
        body: result.output,
        store: true,
      };
    });
  });
}
