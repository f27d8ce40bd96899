/**
 * Row mapping shared by the identity stores (SQLite, PostgreSQL): the same schema in both, so a
 * row reads into the same Account, ApiKey, Tier and AuditEntry. Booleans are read with
 * `Boolean()`: SQLite stores them as 0/1, PostgreSQL as booleans.
 */
import { PixelfleetError } from '../errors/index.ts';
import type { Account, ApiKey, AuditEntry, Scope, Tier, TierLimits } from './types.ts';

type Row = Record<string, unknown>;

const defaultLimit = 100;
const maxLimit = 1000;

export function clampLimit(limit: number | undefined): number {
  if (limit === undefined) return defaultLimit;
  if (!Number.isInteger(limit) || limit < 1)
    throw new RangeError(`limit must be a positive integer, got ${limit}`);
  return Math.min(limit, maxLimit);
}

export function accountFromRow(row: Row): Account {
  return {
    id: row.id as string,
    name: row.name as string,
    email: (row.email as string | null) ?? null,
    tier: row.tier as string,
    status: row.status as Account['status'],
    createdAt: row.created_at as number,
    closedAt: (row.closed_at as number | null) ?? null,
  };
}

export function keyFromRow(row: Row): ApiKey {
  return {
    id: row.id as string,
    accountId: row.account_id as string,
    name: (row.name as string | null) ?? null,
    scopes: JSON.parse(row.scopes as string) as Scope[],
    createdAt: row.created_at as number,
    expiresAt: (row.expires_at as number | null) ?? null,
    revokedAt: (row.revoked_at as number | null) ?? null,
    revokedReason: (row.revoked_reason as string | null) ?? null,
  };
}

export function tierFromRow(row: Row): Tier {
  return {
    name: row.name as string,
    enabled: Boolean(row.enabled),
    ratePerSecond: row.rate_per_second as number,
    burst: row.burst as number,
    concurrentJobs: row.concurrent_jobs as number,
    maxInputBytes: row.max_input_bytes as number,
    maxInputPixels: row.max_input_pixels as number,
    monthlyConversions: (row.monthly_conversions as number | null) ?? null,
    priceMicroUsdPerCpuSecond: row.price_micro_usd_per_cpu_second as number,
    priceMicroUsdPerGigabyteIn: row.price_micro_usd_per_gigabyte_in as number,
    priceMicroUsdPerGigabyteOut: row.price_micro_usd_per_gigabyte_out as number,
    builtIn: Boolean(row.built_in),
    updatedAt: row.updated_at as number,
  };
}

export function auditFromRow(row: Row): AuditEntry {
  return {
    id: row.id as number,
    at: row.at as number,
    actor: row.actor as string,
    action: row.action as string,
    target: row.target as string,
    sourceIp: (row.source_ip as string | null) ?? null,
    details: JSON.parse(row.details as string) as Record<string, unknown>,
  };
}

export function notFound(what: string): PixelfleetError {
  return new PixelfleetError('PF_ERR_NOT_FOUND', what);
}

/** Columns of `tiers` in the order `setTier` writes them. */
export const tierColumns = [
  ['enabled', 'enabled'],
  ['ratePerSecond', 'rate_per_second'],
  ['burst', 'burst'],
  ['concurrentJobs', 'concurrent_jobs'],
  ['maxInputBytes', 'max_input_bytes'],
  ['maxInputPixels', 'max_input_pixels'],
  ['monthlyConversions', 'monthly_conversions'],
  ['priceMicroUsdPerCpuSecond', 'price_micro_usd_per_cpu_second'],
  ['priceMicroUsdPerGigabyteIn', 'price_micro_usd_per_gigabyte_in'],
  ['priceMicroUsdPerGigabyteOut', 'price_micro_usd_per_gigabyte_out'],
] as const satisfies readonly (readonly [keyof TierLimits, string])[];
