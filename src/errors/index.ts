/**
 * Errors are values with codes: one class, `PixelfleetError`, carrying a code from the table in
 * `codes.ts`, the HTTP status that code maps to, and the `cause` it wraps. `toProblem` renders
 * one as an RFC 9457 problem+json document.
 */
import { type ErrorCode, errorCodes } from './codes.ts';

export { type ErrorCode, errorCodes } from './codes.ts';

export interface ProblemDetails {
  type: string;
  title: string;
  status: number;
  detail: string;
  code: ErrorCode;
  instance?: string;
  [extension: string]: unknown;
}

export class PixelfleetError extends Error {
  readonly code: ErrorCode;
  readonly status: number;
  /** Extra members for the problem document (e.g. `option`, `limit`). */
  readonly extensions: Record<string, unknown>;

  constructor(
    code: ErrorCode,
    detail: string,
    options: { cause?: unknown; extensions?: Record<string, unknown> } = {},
  ) {
    super(detail, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'PixelfleetError';
    this.code = code;
    this.status = errorCodes[code].status;
    this.extensions = options.extensions ?? {};
  }
}

export function isPixelfleetError(value: unknown, code?: ErrorCode): value is PixelfleetError {
  return value instanceof PixelfleetError && (code === undefined || value.code === code);
}

/** The `type` URI of a code: stable, documented in the README's error table. */
export function problemType(code: ErrorCode): string {
  return `https://pixelfleet.dev/errors/${code}`;
}

export function toProblem(error: PixelfleetError, instance?: string): ProblemDetails {
  return {
    type: problemType(error.code),
    title: errorCodes[error.code].title,
    status: error.status,
    detail: error.message,
    code: error.code,
    ...(instance === undefined ? {} : { instance }),
    ...error.extensions,
  };
}
