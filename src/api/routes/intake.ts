/**
 * Validation shared by the sync and async entry points, in order of cost: options (pure), body
 * presence, format sniffing and header dimensions (no decoding). Nothing is enqueued and no
 * bytes are kept unless all of it passes.
 */
import type { FastifyRequest } from 'fastify';
import { PixelfleetError } from '../../errors/index.ts';
import { formatTraceparent } from '../../observability/index.ts';
import type { ResizeJobPayload } from '../../worker/dispatcher.ts';
import {
  type InputFormat,
  inspectInput,
  parseResizeOptions,
  type ResizeOptions,
} from '../../worker/index.ts';
import type { ApiDependencies } from '../context.ts';

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
    maxInputPixels: config.maxInputPixels,
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
    },
  };
}
