/**
 * The JSON shapes of the admin API: what the routes send and the CLI reads. Times are ISO 8601
 * strings at this boundary (epoch ms inside); a key's secret or hash never appears in a view.
 */
import { keyStatus } from './keys.ts';
import type { Account, ApiKey, AuditEntry, KeyStatus, Scope, Tier } from './types.ts';

function iso(at: number | null): string | null {
  return at === null ? null : new Date(at).toISOString();
}

export interface AccountView {
  id: string;
  name: string;
  email: string | null;
  tier: string;
  status: Account['status'];
  createdAt: string;
  closedAt: string | null;
}

export interface KeyView {
  id: string;
  accountId: string;
  name: string | null;
  scopes: readonly Scope[];
  status: KeyStatus;
  createdAt: string;
  expiresAt: string | null;
  revokedAt: string | null;
  revokedReason: string | null;
}

export interface IssuedKeyView {
  key: KeyView;
  /** The full key, shown this once. */
  apiKey: string;
}

export interface TierView extends Omit<Tier, 'updatedAt'> {
  /** `null` for a built-in tier never edited since installation. */
  updatedAt: string | null;
}

export interface AuditEntryView extends Omit<AuditEntry, 'at'> {
  at: string;
}

export function accountView(account: Account): AccountView {
  return { ...account, createdAt: iso(account.createdAt)!, closedAt: iso(account.closedAt) };
}

export function keyView(key: ApiKey, now: number): KeyView {
  return {
    id: key.id,
    accountId: key.accountId,
    name: key.name,
    scopes: key.scopes,
    status: keyStatus(key, now),
    createdAt: iso(key.createdAt)!,
    expiresAt: iso(key.expiresAt),
    revokedAt: iso(key.revokedAt),
    revokedReason: key.revokedReason,
  };
}

export function tierView(tier: Tier): TierView {
  return { ...tier, updatedAt: tier.updatedAt === 0 ? null : iso(tier.updatedAt) };
}

export function auditEntryView(entry: AuditEntry): AuditEntryView {
  return { ...entry, at: iso(entry.at)! };
}
