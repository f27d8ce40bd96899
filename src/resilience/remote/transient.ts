/**
 * Classifying remote-call errors: which are worth retrying (transient), which prove the
 * request never reached the server (so even a non-idempotent call may be retried), and which
 * count against the dependency's circuit breaker. Also turns an HTTP error response into a
 * PixelfleetError so the classifiers see one vocabulary.
 */
import { type ErrorCode, errorCodes, isPixelfleetError, PixelfleetError } from '../../errors/index.ts';

/** Codes a server answers with when it refused the work for now: retrying later may succeed. */
const transientCodes: ReadonlySet<ErrorCode> = new Set<ErrorCode>([
  'PF_ERR_OVERLOADED',
  'PF_ERR_QUEUE_FULL',
  'PF_ERR_SHUTTING_DOWN',
  'PF_ERR_QUEUE_UNAVAILABLE',
  'PF_ERR_NOT_LEADER',
  'PF_ERR_TRANSPORT_UNAVAILABLE',
  'PF_ERR_PROPOSAL_DROPPED',
  'PF_ERR_MANAGEMENT_UNAVAILABLE',
  'PF_ERR_STORAGE_UNAVAILABLE',
  'PF_ERR_CIRCUIT_OPEN',
  'PF_ERR_BULKHEAD_FULL',
  'PF_ERR_REMOTE_TIMEOUT',
  'PF_ERR_REMOTE_FAILED',
]);

/**
 * Codes that a server returns only before it started the work (admission refused): the
 * request had no effect, so retrying it is safe even when it is not idempotent.
 */
const notProcessedCodes: ReadonlySet<ErrorCode> = new Set<ErrorCode>([
  'PF_ERR_OVERLOADED',
  'PF_ERR_SHUTTING_DOWN',
  'PF_ERR_NOT_LEADER',
  'PF_ERR_CIRCUIT_OPEN',
  'PF_ERR_BULKHEAD_FULL',
]);

/** Socket errors raised before a single byte of the request left this process. */
const notSentSocketCodes: ReadonlySet<string> = new Set([
  'ECONNREFUSED',
  'ENOTFOUND',
  'EAI_AGAIN',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'EADDRNOTAVAIL',
  'UND_ERR_CONNECT_TIMEOUT',
]);

/** Socket errors after which the request may or may not have been processed. */
const networkCodes: ReadonlySet<string> = new Set([
  ...notSentSocketCodes,
  'ECONNRESET',
  'EPIPE',
  'ETIMEDOUT',
  'ECONNABORTED',
  'UND_ERR_SOCKET',
  'UND_ERR_CLOSED',
  'UND_ERR_HEADERS_TIMEOUT',
  'UND_ERR_BODY_TIMEOUT',
]);

const transientStatuses: ReadonlySet<number> = new Set([502, 503, 504]);

/** Marks an error as proof that the request was never sent (e.g. a client-side pool refusal). */
const notSentMarks = new WeakSet<object>();

export function markNotSent<E extends object>(error: E): E {
  notSentMarks.add(error);
  return error;
}

/** The error and its `cause` chain (fetch wraps socket errors as `TypeError: fetch failed`). */
function* causeChain(error: unknown): Generator<unknown> {
  let current = error;
  for (let depth = 0; depth < 8 && current !== undefined && current !== null; depth++) {
    yield current;
    current = (current as { cause?: unknown }).cause;
  }
}

function socketCode(error: unknown): string | undefined {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? code : undefined;
}

/** The HTTP status a remote answered with, when the error carries one. */
export function remoteStatus(error: unknown): number | undefined {
  if (isPixelfleetError(error)) {
    const reported = error.extensions.remoteStatus;
    return typeof reported === 'number' ? reported : undefined;
  }
  const status = (error as { status?: unknown; statusCode?: unknown } | null) ?? {};
  const value = typeof status.status === 'number' ? status.status : status.statusCode;
  return typeof value === 'number' ? value : undefined;
}

/** True when the request provably never reached the server, so any call may be retried. */
export function neverReachedServer(error: unknown): boolean {
  for (const link of causeChain(error)) {
    if (typeof link === 'object' && link !== null && notSentMarks.has(link)) return true;
    if (isPixelfleetError(link) && notProcessedCodes.has(link.code)) return true;
    const code = socketCode(link);
    if (code !== undefined && notSentSocketCodes.has(code)) return true;
  }
  return false;
}

/** Default retryability: network errors, timeouts, 502/503/504 and transient Pixelfleet codes. */
export function isTransientError(error: unknown): boolean {
  for (const link of causeChain(error)) {
    if (isPixelfleetError(link)) {
      if (transientCodes.has(link.code)) return true;
      const status = remoteStatus(link);
      if (status !== undefined && transientStatuses.has(status)) return true;
      return false;
    }
    const code = socketCode(link);
    if (code !== undefined && networkCodes.has(code)) return true;
    if ((link as { name?: unknown } | null)?.name === 'TimeoutError') return true;
    const status = remoteStatus(link);
    if (status !== undefined) return transientStatuses.has(status);
  }
  return false;
}

/**
 * Whether an error counts against the dependency's health: everything except answers that
 * blame the request itself (4xx), which say the dependency works as intended.
 */
export function isDependencyFailure(error: unknown): boolean {
  if (isPixelfleetError(error)) {
    const status = remoteStatus(error) ?? error.status;
    if (error.code === 'PF_ERR_REMOTE_TIMEOUT' || error.code === 'PF_ERR_REMOTE_FAILED') return true;
    return !(status >= 400 && status < 500);
  }
  const status = remoteStatus(error);
  return !(status !== undefined && status >= 400 && status < 500);
}

/**
 * The PixelfleetError an HTTP error response stands for: the remote's own code when its
 * problem+json body names one we know, else PF_ERR_REMOTE_FAILED. `extensions.remoteStatus`
 * keeps the status the remote sent.
 */
export function errorFromResponse(dependency: string, status: number, body?: unknown): PixelfleetError {
  const problem = typeof body === 'object' && body !== null ? (body as Record<string, unknown>) : {};
  const code =
    typeof problem.code === 'string' && problem.code in errorCodes ? (problem.code as ErrorCode) : undefined;
  const detail = typeof problem.detail === 'string' ? problem.detail : `${dependency} answered ${status}`;
  return new PixelfleetError(code ?? 'PF_ERR_REMOTE_FAILED', `${dependency}: ${detail}`, {
    extensions: { dependency, remoteStatus: status },
  });
}
