/** RFC 9457 problem+json answers the gateway makes itself (no upstream, upstream failed...). */
import type { ServerResponse } from 'node:http';
import { PixelfleetError, toProblem } from '../errors/index.ts';

export function sendProblem(
  response: ServerResponse,
  error: PixelfleetError,
  context: { requestId: string; instance: string; retryAfterSeconds?: number },
): number {
  if (response.headersSent) {
    // The upstream's answer is already half sent: all that is left is to cut the connection.
    response.destroy(error);
    return error.status;
  }
  const body = Buffer.from(JSON.stringify(toProblem(error, context.instance)));
  const headers: Record<string, string | number> = {
    'content-type': 'application/problem+json',
    'content-length': body.length,
    'x-request-id': context.requestId,
  };
  if (error.status === 503) headers['retry-after'] = String(context.retryAfterSeconds ?? 1);
  response.writeHead(error.status, headers);
  response.end(body);
  return error.status;
}

export function gatewayError(
  code:
    | 'PF_ERR_UPSTREAM_FAILED'
    | 'PF_ERR_NO_UPSTREAM'
    | 'PF_ERR_UPSTREAM_TIMEOUT'
    | 'PF_ERR_OVERLOADED'
    | 'PF_ERR_BODY_TOO_LARGE',
  detail: string,
  cause?: unknown,
  extensions?: Record<string, unknown>,
): PixelfleetError {
  return new PixelfleetError(code, detail, { cause, extensions });
}
