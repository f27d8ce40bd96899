/**
 * How a worker tells an api server about a finished conversion: the output bytes are the
 * request body, and everything else (the job's payload, attempt, content type and the outcome
 * that metering reads) rides in one header as base64url JSON — no multipart framing to parse,
 * and the body stays the image byte for byte.
 */
import { PixelfleetError } from '../../errors/index.ts';
import type { ResizeJobPayload, ResizeOutcome } from '../../worker/dispatcher.ts';

export const deliveryHeader = 'pixelfleet-delivery';

export interface DeliveryDescriptor {
  attempt: number;
  payload: ResizeJobPayload;
  contentType: string;
  outcome: ResizeOutcome;
}

/**
 * What a worker reports once a job is acked or finally failed: the error, or (async success)
 * the result's description without its bytes, which were delivered before the ack.
 */
export interface SettlementReport {
  attempt: number;
  payload: ResizeJobPayload;
  result?: { contentType: string; outcome: ResizeOutcome };
  error?: { code: string; message: string };
}

export function encodeDelivery(descriptor: DeliveryDescriptor): string {
  return Buffer.from(JSON.stringify(descriptor)).toString('base64url');
}

export function decodeDelivery(header: string | string[] | undefined): DeliveryDescriptor {
  const bad = (detail: string) =>
    new PixelfleetError('PF_ERR_BAD_REQUEST', `${deliveryHeader}: ${detail}`, {
      extensions: { header: deliveryHeader },
    });
  if (typeof header !== 'string' || header === '') throw bad('missing');
  let parsed: DeliveryDescriptor;
  try {
    parsed = JSON.parse(Buffer.from(header, 'base64url').toString('utf8')) as DeliveryDescriptor;
  } catch (cause) {
    throw new PixelfleetError('PF_ERR_BAD_REQUEST', `${deliveryHeader}: not base64url JSON`, { cause });
  }
  if (!Number.isInteger(parsed?.attempt) || parsed.attempt < 1)
    throw bad('attempt must be a positive integer');
  if (parsed.payload?.kind !== 'resize' || typeof parsed.payload.tenant?.accountId !== 'string')
    throw bad('payload is not a resize job');
  if (typeof parsed.contentType !== 'string') throw bad('contentType must be a string');
  if (typeof parsed.outcome?.bytesOut !== 'number') throw bad('outcome is incomplete');
  return parsed;
}
