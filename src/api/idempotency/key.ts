/**
 * Validation of client-chosen idempotency keys. A key is 1 to 255 printable ASCII characters
 * (0x20-0x7E): enough for a UUID or a client's own request id, small enough to index, and free
 * of control characters that could split a log line or a header.
 */
import { PixelfleetError } from '../../errors/index.ts';

/** The request header that carries the key (lower case, as Node presents header names). */
export const idempotencyKeyHeader = 'idempotency-key';

export const maxIdempotencyKeyLength = 255;

const printableAscii = /^[\x20-\x7e]+$/;

function invalidKey(detail: string): PixelfleetError {
  return new PixelfleetError('PF_ERR_INVALID_IDEMPOTENCY_KEY', detail, {
    extensions: { header: 'Idempotency-Key' },
  });
}

/** Throws PF_ERR_INVALID_IDEMPOTENCY_KEY (400) unless `key` is a valid idempotency key. */
export function assertIdempotencyKey(key: unknown): asserts key is string {
  if (typeof key !== 'string') throw invalidKey('the Idempotency-Key must be a string');
  if (key.length === 0) throw invalidKey('the Idempotency-Key header is empty');
  if (key.length > maxIdempotencyKeyLength) {
    throw invalidKey(
      `the Idempotency-Key is ${key.length} characters long; the limit is ${maxIdempotencyKeyLength}`,
    );
  }
  if (!printableAscii.test(key)) {
    throw invalidKey('the Idempotency-Key may contain only printable ASCII characters');
  }
}

/**
 * The key of a request from its raw header value: undefined when the header is absent (the
 * request is simply not idempotent), the validated key otherwise. A header sent twice arrives
 * as an array and is rejected rather than silently picking one.
 */
export function parseIdempotencyKeyHeader(value: string | string[] | undefined): string | undefined {
  if (value === undefined) return undefined;
  if (Array.isArray(value)) {
    if (value.length !== 1) throw invalidKey('send the Idempotency-Key header exactly once');
    value = value[0];
  }
  assertIdempotencyKey(value);
  return value;
}
