/**
 * The error an api handler throws when a limiter refuses a request: `PF_ERR_RATE_LIMITED` (429)
 * with the draft's `violated-policies` problem member, so the problem+json body names the quota
 * that was exceeded next to the RateLimit header fields.
 */
import { PixelfleetError } from '../../errors/index.ts';
import type { Decision } from './types.ts';

export function rateLimitedError(decisions: Decision | readonly Decision[]): PixelfleetError {
  const list: readonly Decision[] = Array.isArray(decisions) ? decisions : [decisions as Decision];
  const refused = list.filter((decision) => !decision.allowed);
  const violated = refused.length > 0 ? refused : list;
  const finiteWaits = violated.map((decision) => decision.retryAfterMs).filter(Number.isFinite);
  const retryAfterSeconds = finiteWaits.length > 0 ? Math.ceil(Math.max(...finiteWaits) / 1000) : undefined;
  const names = violated.map((decision) => decision.policy);
  const detail =
    retryAfterSeconds === undefined
      ? `The request exceeds the whole quota of policy ${names.join(', ')}; it can never be admitted as sent`
      : `Quota of policy ${names.join(', ')} exhausted; retry in ${retryAfterSeconds} s`;
  return new PixelfleetError('PF_ERR_RATE_LIMITED', detail, {
    extensions: {
      'violated-policies': names,
      ...(retryAfterSeconds === undefined ? {} : { retryAfterSeconds }),
    },
  });
}
