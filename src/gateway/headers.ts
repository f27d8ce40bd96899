/**
 * Header rewriting at the proxy hop: hop-by-hop headers (RFC 9110 §7.6.1: Connection and the
 * fields it names, Keep-Alive, TE, Transfer-Encoding, Upgrade, Proxy-*) describe one connection
 * and are never forwarded; X-Forwarded-For/Proto/Host tell the upstream who the client was.
 */
import type { IncomingHttpHeaders, OutgoingHttpHeaders } from 'node:http';

const hopByHop = new Set([
  'connection',
  'keep-alive',
  'proxy-authenticate',
  'proxy-authorization',
  'proxy-connection',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
]);

/** Names listed in a Connection header are hop-by-hop for this message too. */
function connectionListed(headers: IncomingHttpHeaders | Record<string, unknown>): Set<string> {
  const value = headers.connection;
  const listed = new Set<string>();
  if (typeof value !== 'string') return listed;
  for (const token of value.split(',')) {
    const name = token.trim().toLowerCase();
    if (name !== '') listed.add(name);
  }
  return listed;
}

/** Copies `headers` without hop-by-hop fields (and without `omit`), lower-cased names. */
export function endToEndHeaders(
  headers: IncomingHttpHeaders | Record<string, string | string[] | undefined>,
  omit: ReadonlySet<string> = new Set(),
): Record<string, string | string[]> {
  const listed = connectionListed(headers);
  const result: Record<string, string | string[]> = {};
  for (const [name, value] of Object.entries(headers)) {
    if (value === undefined) continue;
    const lower = name.toLowerCase();
    if (hopByHop.has(lower) || listed.has(lower) || omit.has(lower)) continue;
    result[lower] = value;
  }
  return result;
}

export interface ForwardingFacts {
  clientAddress: string | undefined;
  protocol: 'http' | 'https';
  host: string | undefined;
}

/**
 * Request headers for the upstream: end-to-end headers, the client appended to
 * X-Forwarded-For, X-Forwarded-Proto and -Host set unless an earlier proxy set them. `host` is
 * dropped: the upstream connection names its own authority.
 */
export function upstreamRequestHeaders(
  incoming: IncomingHttpHeaders,
  facts: ForwardingFacts,
): Record<string, string | string[]> {
  const headers = endToEndHeaders(incoming, new Set(['host', 'content-length']));
  const previous = headers['x-forwarded-for'];
  const chain = Array.isArray(previous) ? previous.join(', ') : previous;
  if (facts.clientAddress !== undefined) {
    headers['x-forwarded-for'] = chain ? `${chain}, ${facts.clientAddress}` : facts.clientAddress;
  }
  headers['x-forwarded-proto'] ??= facts.protocol;
  if (facts.host !== undefined) headers['x-forwarded-host'] ??= facts.host;
  return headers;
}

/** Response headers for the client: the upstream's end-to-end headers. */
export function clientResponseHeaders(
  upstream: Record<string, string | string[] | undefined>,
): OutgoingHttpHeaders {
  return endToEndHeaders(upstream);
}
