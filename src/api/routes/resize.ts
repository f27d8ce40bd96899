/**
 * POST /v1/resize — the synchronous API: the image is the body, options are query parameters,
 * the converted image is the response. The job still goes through the queue (load levelling,
 * redelivery if a worker dies), but its bytes stay in this process's memory.
 */
import { hash, randomUUID } from 'node:crypto';
import type { FastifyInstance, FastifyReply } from 'fastify';
import type { ResizeOutcome } from '../../worker/dispatcher.ts';
import type { ApiDependencies } from '../context.ts';
import { intake } from './intake.ts';

const anonymousAccount = 'anonymous';

/** Server-Timing, the CPU header and the cache validators shared by sync and async results. */
export function setResultHeaders(
  reply: FastifyReply,
  result: { output: Buffer; contentType: string; outcome: ResizeOutcome },
  cacheControl: string,
  varyOnAccept: boolean,
): void {
  const { outcome } = result;
  reply
    .type(result.contentType)
    .header('etag', `"${hash('sha1', result.output, 'base64url')}"`)
    .header('cache-control', cacheControl)
    .header(
      'server-timing',
      `queue;dur=${outcome.queueWaitMs.toFixed(1)}, convert;dur=${outcome.conversionMs.toFixed(1)}, cpu;dur=${(outcome.cpuMicros / 1000).toFixed(1)}`,
    )
    .header('x-pixelfleet-cpu-micros', String(outcome.cpuMicros))
    .header('x-pixelfleet-attempts', String(outcome.attempt))
    .header('x-pixelfleet-dimensions', `${outcome.width}x${outcome.height}`);
  if (varyOnAccept) reply.header('vary', 'Accept');
}

export function registerResizeRoutes(app: FastifyInstance, deps: ApiDependencies): void {
  const { config, queue, blobs, completions, admission } = deps;

  app.post('/v1/resize', async (request, reply) => {
    const { body, options, payload } = intake(request, deps, 'sync');
    admission.checkQueue();
    const id = randomUUID();
    request.facts.jobId = id;
    const deadline = Date.now() + config.syncTimeout;
    await blobs.putInput(id, body, 'memory');
    const done = completions.wait(id, config.syncTimeout);
    try {
      // Nobody asks about a sync job once it is answered: keep its record only briefly.
      await queue.enqueue({
        id,
        account: anonymousAccount,
        payload: payload as never,
        deadline,
        retentionMs: 60_000,
      });
      admission.noteEnqueued();
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
    setResultHeaders(reply, result, config.cacheControl, options.variesOnAccept);
    return reply.send(result.output);
  });
}
