/**
 * Request fingerprints: a SHA-256 over everything that determines a keyed request's outcome, so
 * a key reused with different parameters is caught (422) instead of replaying a response that
 * answers another question. Query parameters are sorted by name, so `?w=1&h=2` and `?h=2&w=1`
 * are the same request; repeated values keep their order, because the order may matter.
 */
import { hash } from 'node:crypto';

export type QueryInput =
  | URLSearchParams
  | Iterable<readonly [string, string]>
  | Record<string, string | readonly string[] | undefined>;

export interface FingerprintInput {
  method: string;
  /** The path alone, without the query string. */
  path: string;
  query?: QueryInput;
  /**
   * Request headers that change the outcome, e.g. `accept` when the output format is
   * negotiated. Names are compared case-insensitively; absent and undefined are the same.
   */
  headers?: Record<string, string | readonly string[] | undefined>;
  /** `digestBody(body)` of the request body; omit or '' for a request without one. */
  bodyDigest?: string;
}

/** Hex SHA-256 of a request body: one pass over the buffer, no copy. */
export function digestBody(body: Uint8Array): string {
  return hash('sha256', body, 'hex');
}

function queryPairs(query: QueryInput | undefined): [string, string][] {
  if (query === undefined) return [];
  const pairs: [string, string][] = [];
  if (query instanceof URLSearchParams || Symbol.iterator in query) {
    for (const [name, value] of query as Iterable<readonly [string, string]>) pairs.push([name, value]);
  } else {
    for (const [name, value] of Object.entries(query)) {
      if (value === undefined) continue;
      if (typeof value === 'string') pairs.push([name, value]);
      else for (const item of value) pairs.push([name, item]);
    }
  }
  // Array.prototype.sort is stable, so values of one name keep their order.
  return pairs.sort(([left], [right]) => (left < right ? -1 : left > right ? 1 : 0));
}

function headerPairs(headers: FingerprintInput['headers']): [string, string][] {
  if (headers === undefined) return [];
  const pairs: [string, string][] = [];
  for (const [name, value] of Object.entries(headers)) {
    if (value === undefined) continue;
    pairs.push([name.toLowerCase(), typeof value === 'string' ? value : value.join(', ')]);
  }
  return pairs.sort(([left], [right]) => (left < right ? -1 : left > right ? 1 : 0));
}

/**
 * A stable hex SHA-256 of the request's parameters. The parts are serialised as one JSON array,
 * which delimits them unambiguously (no `a=b&c` vs `a=b%26c` confusion), behind a version tag so
 * a future change of the recipe cannot match an old fingerprint by accident.
 */
export function fingerprintRequest(input: FingerprintInput): string {
  const canonical = JSON.stringify([
    'pixelfleet-idempotency-v1',
    input.method.toUpperCase(),
    input.path,
    queryPairs(input.query),
    headerPairs(input.headers),
    input.bodyDigest ?? '',
  ]);
  return hash('sha256', canonical, 'hex');
}
