/**
 * Renders decisions as the HTTP fields of draft-ietf-httpapi-ratelimit-headers (revision -11,
 * May 2026; the syntax has been stable since -08) plus `Retry-After` (RFC 9110).
 *
 * Format chosen, per the draft: both fields are Structured Field Lists (RFC 9651) with one Item
 * per policy; the Item is the policy name as an sf-string.
 * - `RateLimit-Policy: "burst";q=100;w=60` — `q` the quota (Decision.limit), `w` the time window
 *   in whole seconds (Decision.windowMs rounded up, at least 1; for buckets the time to refill an
 *   empty bucket, so q / w never overstates the sustained rate), `qu` only when the unit is not
 *   the default `requests`, `pk` (a Byte Sequence) only when a partition key is given.
 * - `RateLimit: "burst";r=42;t=17` — `r` the whole units available now (Decision.remaining), `t`
 *   the effective window in seconds (Decision.resetMs rounded up): the time within which the
 *   client can use no more than `r`. Quotas without a time window (concurrency) omit `w` and `t`.
 * - `Retry-After: 17` — delay-seconds, only when a decision refused the request: the longest
 *   finite wait among the refusing policies, rounded up, never shorter than their effective
 *   window (as the draft asks). Omitted when the cost can never fit (retryAfterMs is Infinity).
 * Header names are returned lower-case, as HTTP/2 and Node's `setHeader` expect.
 */
import type { Decision } from './types.ts';

export interface RateLimitHeaders {
  'ratelimit-policy': string;
  ratelimit: string;
  'retry-after'?: string;
}

export interface RateLimitHeaderOptions {
  /**
   * The quota partition the decisions are for, sent as `pk` so a client sharing several keys can
   * tell the counters apart. Send an opaque digest, never the raw API key.
   */
  partitionKey?: Uint8Array;
}

export function formatRateLimitHeaders(
  decisions: Decision | readonly Decision[],
  options: RateLimitHeaderOptions = {},
): RateLimitHeaders {
  const list: readonly Decision[] = Array.isArray(decisions) ? decisions : [decisions as Decision];
  if (list.length === 0) throw new RangeError('formatRateLimitHeaders needs at least one decision');
  const partitionKey =
    options.partitionKey === undefined ? '' : `;pk=:${Buffer.from(options.partitionKey).toString('base64')}:`;
  const policies: string[] = [];
  const limits: string[] = [];
  let retryAfterSeconds: number | undefined;
  for (const decision of list) {
    const name = serializeString(decision.policy);
    const hasWindow = decision.windowMs !== undefined;
    let policy = `${name};q=${toInteger(decision.limit)}`;
    if (decision.quotaUnit !== undefined && decision.quotaUnit !== 'requests') {
      policy += `;qu=${serializeString(decision.quotaUnit)}`;
    }
    if (hasWindow) policy += `;w=${Math.max(1, toSeconds(decision.windowMs ?? 0))}`;
    policies.push(policy + partitionKey);
    let limit = `${name};r=${toInteger(decision.remaining)}`;
    if (hasWindow) limit += `;t=${toSeconds(decision.resetMs)}`;
    limits.push(limit + partitionKey);
    if (!decision.allowed && Number.isFinite(decision.retryAfterMs)) {
      const wait = Math.max(1, toSeconds(Math.max(decision.retryAfterMs, hasWindow ? decision.resetMs : 0)));
      retryAfterSeconds = Math.max(retryAfterSeconds ?? 0, wait);
    }
  }
  const headers: RateLimitHeaders = { 'ratelimit-policy': policies.join(', '), ratelimit: limits.join(', ') };
  if (retryAfterSeconds !== undefined) headers['retry-after'] = String(retryAfterSeconds);
  return headers;
}

/** Milliseconds to whole seconds, rounded up so a client waiting that long is never early. */
function toSeconds(milliseconds: number): number {
  return Math.max(0, Math.ceil(milliseconds / 1000));
}

function toInteger(value: number): number {
  return Math.max(0, Math.floor(value));
}

/** An RFC 9651 sf-string: printable ASCII, with `"` and `\` escaped. */
function serializeString(value: string): string {
  if (!/^[\x20-\x7e]*$/.test(value)) {
    throw new RangeError(`policy name must be printable ASCII for a Structured Field String: ${value}`);
  }
  return `"${value.replace(/[\\"]/g, '\\$&')}"`;
}
