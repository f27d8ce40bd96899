/**
 * How conversion failures become `PixelfleetError`s, cross the IPC boundary, and are judged
 * retryable or permanent. Retryable means "another attempt, perhaps on another worker, may
 * succeed" (the child crashed, the watchdog fired, the pool was shutting down); permanent means
 * the input or options themselves are at fault and a retry would only burn CPU again.
 */
import { type ErrorCode, errorCodes, isPixelfleetError, PixelfleetError } from '../errors/index.ts';

const retryableCodes: ReadonlySet<ErrorCode> = new Set<ErrorCode>([
  'PF_ERR_WORKER_CRASHED',
  'PF_ERR_PROCESSING_TIMEOUT',
  'PF_ERR_SHUTTING_DOWN',
]);

/** True when the caller may try the same conversion again (e.g. nack the job with retry). */
export function isRetryableConversionError(error: unknown): boolean {
  return isPixelfleetError(error) && retryableCodes.has(error.code);
}

// libvips loader errors name the loader ("VipsJpeg: premature end", "pngload: ...", "gifload").
const decodeFailure =
  /(premature end|truncat|corrupt|load|Vips(Jpeg|Png|Webp|Gif|Heif|Tiff|Foreign)|read error|not a known|invalid (jpeg|png|gif|webp)|bad )/i;

/** Maps an error thrown by sharp/libvips while converting to a Pixelfleet error (keeps `cause`). */
export function classifySharpError(error: unknown): PixelfleetError {
  if (isPixelfleetError(error)) return error;
  const message = error instanceof Error ? error.message : String(error);
  if (/exceeds pixel limit/i.test(message)) {
    return new PixelfleetError('PF_ERR_TOO_MANY_PIXELS', 'The input has more pixels than allowed.', {
      cause: error,
    });
  }
  if (/unsupported image format/i.test(message)) {
    return new PixelfleetError('PF_ERR_UNSUPPORTED_FORMAT', 'The input format is not supported.', {
      cause: error,
    });
  }
  if (decodeFailure.test(message)) {
    return new PixelfleetError(
      'PF_ERR_CORRUPT_IMAGE',
      `The input could not be decoded: ${firstLine(message)}`,
      { cause: error },
    );
  }
  return new PixelfleetError('PF_ERR_CONVERSION_FAILED', `The conversion failed: ${firstLine(message)}`, {
    cause: error,
  });
}

function firstLine(message: string): string {
  const line = message.split('\n', 1)[0] ?? '';
  return line.length > 200 ? `${line.slice(0, 200)}…` : line;
}

/** An error as it crosses the IPC channel: plain data, no prototype, no stack of the child. */
export interface SerialisedError {
  code: ErrorCode;
  message: string;
  extensions: Record<string, unknown>;
}

export function serialiseError(error: unknown): SerialisedError {
  if (isPixelfleetError(error)) {
    return { code: error.code, message: error.message, extensions: { ...error.extensions } };
  }
  const message = error instanceof Error ? error.message : String(error);
  return { code: 'PF_ERR_INTERNAL', message: firstLine(message), extensions: {} };
}

export function deserialiseError(serialised: SerialisedError): PixelfleetError {
  const code: ErrorCode = serialised.code in errorCodes ? serialised.code : 'PF_ERR_INTERNAL';
  return new PixelfleetError(code, serialised.message, { extensions: serialised.extensions });
}
