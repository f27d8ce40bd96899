/**
 * Validation of a heartbeat body. The registry trusts the cluster secret, not the content:
 * a malformed announcement is rejected whole (PF_ERR_BAD_REQUEST) rather than stored half-valid,
 * because the gateway routes traffic by these fields.
 */
import { PixelfleetError } from '../errors/index.ts';
import { type MemberAnnouncement, type MemberRole, memberRoles } from './types.ts';

/** Bounds on the announced interval: below 10 ms is a busy loop, above a minute is not a heartbeat. */
const minimumIntervalMs = 10;
const maximumIntervalMs = 60_000;

function invalid(field: string, detail: string): PixelfleetError {
  return new PixelfleetError('PF_ERR_BAD_REQUEST', `announcement.${field} ${detail}`, {
    extensions: { field },
  });
}

function optionalUrl(field: string, value: unknown): string | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== 'string' || value.length > 2048) throw invalid(field, 'must be a URL string');
  let parsed: URL;
  try {
    parsed = new URL(value);
  } catch (cause) {
    throw new PixelfleetError('PF_ERR_BAD_REQUEST', `announcement.${field} is not a valid URL`, { cause });
  }
  if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') throw invalid(field, 'must be http(s)');
  return value;
}

/** Checks and normalises an announcement (defaults filled in, unknown fields dropped). */
export function parseAnnouncement(value: unknown): MemberAnnouncement {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new PixelfleetError('PF_ERR_BAD_REQUEST', 'the announcement must be a JSON object');
  }
  const body = value as Record<string, unknown>;
  const { id, role, ready, weight, load, startedAt, intervalMs } = body;
  if (typeof id !== 'string' || !/^[\x21-\x7e]{1,200}$/.test(id)) {
    throw invalid('id', 'must be 1-200 printable ASCII characters without spaces');
  }
  if (typeof role !== 'string' || !memberRoles.includes(role as MemberRole)) {
    throw invalid('role', `must be one of ${memberRoles.join(', ')}`);
  }
  if (typeof ready !== 'boolean') throw invalid('ready', 'must be a boolean');
  if (weight !== undefined && (typeof weight !== 'number' || !Number.isFinite(weight) || weight < 0)) {
    throw invalid('weight', 'must be a non-negative finite number');
  }
  let inflight: number | undefined;
  if (load !== undefined) {
    const reported = (load as { inflight?: unknown } | null)?.inflight;
    if (typeof reported !== 'number' || !Number.isFinite(reported) || reported < 0) {
      throw invalid('load.inflight', 'must be a non-negative finite number');
    }
    inflight = reported;
  }
  if (typeof startedAt !== 'number' || !Number.isFinite(startedAt))
    throw invalid('startedAt', 'must be a number');
  if (
    typeof intervalMs !== 'number' ||
    !Number.isFinite(intervalMs) ||
    intervalMs < minimumIntervalMs ||
    intervalMs > maximumIntervalMs
  ) {
    throw invalid('intervalMs', `must be between ${minimumIntervalMs} and ${maximumIntervalMs}`);
  }
  const url = optionalUrl('url', body.url);
  const internalUrl = optionalUrl('internalUrl', body.internalUrl);
  return {
    id,
    role: role as MemberRole,
    ...(url === undefined ? {} : { url }),
    ...(internalUrl === undefined ? {} : { internalUrl }),
    ready,
    weight: weight ?? 1,
    ...(inflight === undefined ? {} : { load: { inflight } }),
    startedAt,
    intervalMs,
  };
}
