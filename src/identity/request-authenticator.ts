/**
 * Glue for the API server: pull the presented key out of a request's headers, refuse clients
 * that are locked out (429 with Retry-After), verify the key through the edge cache, and count
 * failed verifications towards the client's lockout. Scope checks come after, per route, with
 * `requireScope`.
 */
import { isPixelfleetError, PixelfleetError } from '../errors/index.ts';
import type { ProgressiveLockout } from '../resilience/ratelimit/index.ts';
import type { EdgeCache } from './edge-cache.ts';
import { refuseIfLockedOut } from './locked-out-error.ts';
import type { Principal, Scope } from './types.ts';

type HeaderValue = string | string[] | undefined;

/**
 * The key from `Authorization: Bearer <key>` or `X-Api-Key: <key>`; `undefined` when neither is
 * present. Any other Authorization scheme is returned whole, so it fails as malformed rather
 * than being silently treated as anonymous.
 */
export function presentedKeyFromHeaders(headers: Record<string, HeaderValue>): string | undefined {
  const authorization = first(headers.authorization);
  if (authorization !== undefined && authorization.trim() !== '') {
    const match = /^Bearer\s+(\S+)\s*$/i.exec(authorization.trim());
    return match ? match[1] : authorization.trim();
  }
  const apiKey = first(headers['x-api-key'])?.trim();
  return apiKey === '' ? undefined : apiKey;
}

function first(value: HeaderValue): string | undefined {
  return Array.isArray(value) ? value[0] : value;
}

export interface RequestAuthenticatorOptions {
  edgeCache: EdgeCache;
  /** Optional: without it failed attempts are not limited here. Keyed by client address. */
  lockout?: ProgressiveLockout;
}

export type RequestAuthenticator = (
  presentedKey: string | undefined,
  clientAddress: string,
) => Promise<Principal>;

export function createRequestAuthenticator(options: RequestAuthenticatorOptions): RequestAuthenticator {
  const { edgeCache, lockout } = options;
  return async (presentedKey, clientAddress) => {
    refuseIfLockedOut(lockout, clientAddress);
    try {
      // A valid key deliberately does not clear the failure count: an attacker holding one
      // valid key could interleave it to wipe the count while guessing others. Honest clients
      // recover as quiet time forgives their failures.
      return await edgeCache.authenticate(presentedKey);
    } catch (error) {
      // A missing key is a client that never tried; a store outage is not the client's fault.
      if (isPixelfleetError(error, 'PF_ERR_UNAUTHORIZED') && error.extensions.reason !== 'missing') {
        lockout?.recordFailure(clientAddress);
      }
      throw error;
    }
  };
}

/** `admin` grants every scope; otherwise the key must carry `scope` itself. */
export function hasScope(principal: Principal, scope: Scope): boolean {
  return principal.scopes.includes(scope) || principal.scopes.includes('admin');
}

export function requireScope(principal: Principal, scope: Scope): void {
  if (!hasScope(principal, scope)) {
    throw new PixelfleetError(
      'PF_ERR_FORBIDDEN',
      `this request needs the ${scope} scope; key ${principal.keyId} has ${principal.scopes.join(', ') || 'none'}`,
      { extensions: { requiredScope: scope, keyId: principal.keyId } },
    );
  }
}
