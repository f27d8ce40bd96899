/**
 * W3C Trace Context (traceparent) parsing and generation. A request's trace id is carried from
 * the edge into the job descriptor so that a worker's log lines join the request's trace.
 */
import { randomFillSync } from 'node:crypto';

export interface TraceContext {
  traceId: string;
  /** The span id of this hop. */
  spanId: string;
  /** The caller's span id, when a valid traceparent came in. */
  parentSpanId?: string;
  sampled: boolean;
}

const traceparentPattern = /^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$/;

// Ids are cut from a pool of random bytes refilled 4 KiB at a time: one call into the CSPRNG
// per ~170 requests instead of two per request.
const pool = Buffer.alloc(4096);
let poolOffset = pool.length;

function randomHex(bytes: number): string {
  if (poolOffset + bytes > pool.length) {
    randomFillSync(pool);
    poolOffset = 0;
  }
  poolOffset += bytes;
  return pool.toString('hex', poolOffset - bytes, poolOffset);
}

/** Continues the caller's trace when `header` is a valid traceparent, else starts a new one. */
export function continueTrace(header: string | undefined): TraceContext {
  const match = header === undefined ? null : traceparentPattern.exec(header.trim().toLowerCase());
  const spanId = randomHex(8);
  if (match && match[1] !== 'ff' && !/^0+$/.test(match[2]!) && !/^0+$/.test(match[3]!)) {
    return {
      traceId: match[2]!,
      spanId,
      parentSpanId: match[3]!,
      sampled: (Number.parseInt(match[4]!, 16) & 1) === 1,
    };
  }
  return { traceId: randomHex(16), spanId, sampled: true };
}

export function formatTraceparent(context: TraceContext): string {
  return `00-${context.traceId}-${context.spanId}-${context.sampled ? '01' : '00'}`;
}
