/**
 * What the gateway must know about a request before choosing where to send it: whether a
 * retry may replay it, and its affinity key. The API key is hashed at once and never kept or
 * logged in clear; only its digest reaches the balancing strategy.
 */
import { createHash } from 'node:crypto';
import type { IncomingHttpHeaders } from 'node:http';

const idempotentMethods = new Set(['GET', 'HEAD', 'OPTIONS', 'PUT', 'DELETE']);

/**
 * A request may be replayed on another upstream after it was sent when its method is idempotent
 * (RFC 9110 §9.2.2) or the client made it so with an Idempotency-Key (the api deduplicates).
 */
export function isReplayable(method: string, headers: IncomingHttpHeaders): boolean {
  if (idempotentMethods.has(method.toUpperCase())) return true;
  const key = headers['idempotency-key'];
  return typeof key === 'string' && key.trim() !== '';
}

/** SHA-256 of the request's API key (Bearer token or X-Api-Key), or undefined without one. */
export function apiKeyDigest(headers: IncomingHttpHeaders): string | undefined {
  let key: string | undefined;
  const authorization = headers.authorization;
  if (typeof authorization === 'string') {
    const match = /^\s*bearer\s+(\S+)\s*$/i.exec(authorization);
    if (match) key = match[1];
  }
  if (key === undefined) {
    const header = headers['x-api-key'];
    const value = Array.isArray(header) ? header[0] : header;
    if (typeof value === 'string' && value.trim() !== '') key = value.trim();
  }
  return key === undefined ? undefined : createHash('sha256').update(key).digest('base64url');
}
