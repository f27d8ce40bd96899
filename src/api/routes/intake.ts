/**
 * Validation shared by the sync and async entry points, in order of cost: options (pure), body
 * presence, format sniffing and header dimensions (no decoding). Nothing is enqueued and no
 * bytes are kept unless all of it passes.
 */
import type { FastifyReply, FastifyRequest } from 'fastify';
import { PixelfleetError } from '../../errors/index.ts';
import { requireScope } from '../../identity/index.ts';
import { formatTraceparent } from '../../observability/index.ts';
import type { ResizeJobPayload } from '../../worker/dispatcher.ts';
import {
  type InputFormat,
  inspectInput,
  parseResizeOptions,
  type ResizeOptions,
} from '../../worker/index.ts';
import type { ApiDependencies } from '../context.ts';

/**
 * Route-level gate for conversions, run before the body is read: the key needs
 * `images:write`; the tier's input size, quota and per-key concurrency apply; and the account's
 * queued plus running jobs stay under the bulkhead.
 */
export function conversionGate(deps: ApiDependencies) {
  return async (request: FastifyRequest, reply: FastifyReply): Promise<void> => {
    const { principal } = request;
    requireScope(principal, 'images:write');
    deps.admission.checkAccount(principal.accountId);
    const length = request.headers['content-length'];
    const release = await deps.tenancy.beginConversion(
      principal,
      request.ip,
      length === undefined ? undefined : Number(length),
    );
    reply.raw.once('close', release);
  };
}

export interface Intake {
  body: Buffer;
  options: ResizeOptions;
  payload: ResizeJobPayload;
}

export function intake(request: FastifyRequest, deps: ApiDependencies, mode: 'sync' | 'async'): Intake {
  const { config } = deps;
  const options = parseResizeOptions(request.query as Record<string, string | string[] | undefined>, {
    accept: request.headers.accept,
    limits: { maxOutputDimension: config.maxOutputDimension, maxFrames: config.maxFrames },
  });
  const body = request.body;
  if (!Buffer.isBuffer(body) || body.length === 0) {
    throw new PixelfleetError(
      'PF_ERR_EMPTY_BODY',
      'send the image as the request body (e.g. curl --data-binary @photo.jpg)',
    );
  }
  request.facts.bytesIn = body.length;
  const input = inspectInput(body, {
    allowedFormats: new Set(config.inputFormats as InputFormat[]),
    // The tier may be stricter than the server, never looser.
    maxInputPixels: Math.min(config.maxInputPixels, request.principal.tier.maxInputPixels),
  });
  return {
    body,
    options,
    payload: {
      kind: 'resize',
      mode,
      input: {
        location: mode === 'sync' ? 'memory' : 'disk',
        bytes: body.length,
        format: input.format,
        width: input.width,
        height: input.height,
      },
      options,
      requestId: request.id,
      traceparent: formatTraceparent(request.facts.trace),
      tenant: {
        accountId: request.principal.accountId,
        keyId: request.principal.keyId,
        tier: request.principal.tier.name,
      },
      ...(deps.origin === undefined ? {} : { origin: deps.origin }),
    },
  };
}
