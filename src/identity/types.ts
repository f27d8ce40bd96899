/**
 * The identity vocabulary and the `IdentityStore` contract.
 *
 * The management plane (accounts, API keys, tiers) takes rare writes that must be strongly
 * consistent and audited; the data plane reads it through the edge cache on every request. The
 * store is the management plane's only durable state. Embedded SQLite implements it today; a
 * PostgreSQL implementation can implement the same async interface later, and one contract test
 * suite (test/identity/store.contract.ts) runs against every implementation.
 *
 * Guarantees every implementation gives:
 * - Every mutating method writes its audit entry in the same transaction as the change: a
 *   change without its audit entry, or an audit entry without its change, is never visible.
 * - The audit log is append-only: no method updates or deletes an entry.
 * - Only a hash of a key's secret is stored; the secret itself never reaches the store.
 * - `insertKey` refuses a key beyond `maxLiveKeys` live keys per account atomically (no two
 *   concurrent issues can both squeeze in).
 * - Timestamps are epoch milliseconds.
 */

/** Least-privilege permissions carried by an API key. `admin` grants every other scope. */
export const scopes = ['images:write', 'jobs:read', 'usage:read', 'admin'] as const;
export type Scope = (typeof scopes)[number];

/** Scopes a key gets when the issuer names none: everything except `admin`. */
export const defaultScopes: readonly Scope[] = ['images:write', 'jobs:read', 'usage:read'];

/**
 * What a tier allows and what it costs. The monthly quota counts conversions, not CPU-seconds:
 * a quota is an admission decision taken before the work runs, when the conversion count is
 * known and the CPU time is not; CPU time is what the price meters afterwards.
 * Prices are integers in micro-USD so that billing sums never meet floating-point rounding.
 */
export interface Tier {
  name: string;
  /**
   * A disabled tier accepts no new accounts; the `anonymous` tier serves key-less requests only
   * while enabled. Existing accounts on a disabled tier keep working.
   */
  enabled: boolean;
  /** Sustained request rate (token refill per second). */
  ratePerSecond: number;
  /** Requests allowed in a burst above the sustained rate (token bucket capacity). */
  burst: number;
  concurrentJobs: number;
  maxInputBytes: number;
  maxInputPixels: number;
  /** Conversions per calendar month (UTC); `null` means unlimited. */
  monthlyConversions: number | null;
  priceMicroUsdPerCpuSecond: number;
  priceMicroUsdPerGigabyteIn: number;
  priceMicroUsdPerGigabyteOut: number;
  /** One of the tiers the service ships with (they can be edited, not removed). */
  builtIn: boolean;
  updatedAt: number;
}

/** The editable fields of a tier (everything but its name and bookkeeping). */
export type TierLimits = Omit<Tier, 'name' | 'builtIn' | 'updatedAt'>;

export type AccountStatus = 'active' | 'closed';

export interface Account {
  id: string;
  name: string;
  email: string | null;
  tier: string;
  status: AccountStatus;
  createdAt: number;
  closedAt: number | null;
}

/** An API key as the management plane shows it: never the secret, never its hash. */
export interface ApiKey {
  id: string;
  accountId: string;
  /** Free-text label, e.g. "ci" or "rotation 2025-06". */
  name: string | null;
  scopes: readonly Scope[];
  createdAt: number;
  expiresAt: number | null;
  revokedAt: number | null;
  revokedReason: string | null;
}

export type KeyStatus = 'live' | 'expired' | 'revoked';

/** What the data plane needs to verify one presented key: the key, its account and its tier. */
export interface Credential {
  key: ApiKey;
  /** SHA-256 of the key's secret (32 bytes). */
  secretHash: Uint8Array;
  account: Account;
  tier: Tier;
}

/** Who did a management action and from where; written into the audit entry. */
export interface AuditContext {
  actor: string;
  sourceIp: string | null;
}

export interface AuditEntry {
  /** Monotonically increasing; also the pagination cursor. */
  id: number;
  at: number;
  actor: string;
  action: string;
  /** What was acted on, e.g. `account:acct_…`, `key:…`, `tier:pro`. */
  target: string;
  sourceIp: string | null;
  details: Record<string, unknown>;
}

export interface AuditQuery {
  actor?: string;
  action?: string;
  /** Exact target, or a prefix when it ends with `*` (e.g. `key:*`). */
  target?: string;
  since?: number;
  until?: number;
  /** Return entries with an id below this one (the previous page's last id). */
  before?: number;
  /** At most this many entries, newest first (default 100, at most 1000). */
  limit?: number;
}

export interface AccountQuery {
  status?: AccountStatus;
  tier?: string;
  /** Return accounts whose id sorts after this one (the previous page's last id). */
  after?: string;
  /** Default 100, at most 1000. */
  limit?: number;
}

export interface NewAccount {
  id: string;
  name: string;
  email: string | null;
  tier: string;
}

export interface NewApiKey {
  id: string;
  accountId: string;
  name: string | null;
  scopes: readonly Scope[];
  secretHash: Uint8Array;
  expiresAt: number | null;
}

export interface IdentityStore {
  createAccount(account: NewAccount, context: AuditContext): Promise<Account>;
  getAccount(accountId: string): Promise<Account | undefined>;
  listAccounts(query?: AccountQuery): Promise<Account[]>;
  /** Closes the account and revokes its live keys in one transaction. */
  closeAccount(
    accountId: string,
    reason: string | null,
    context: AuditContext,
  ): Promise<{ account: Account; revokedKeyIds: string[] }>;
  changeAccountTier(accountId: string, tier: string, context: AuditContext): Promise<Account>;

  insertKey(key: NewApiKey, limits: { maxLiveKeys: number }, context: AuditContext): Promise<ApiKey>;
  revokeKey(keyId: string, reason: string | null, context: AuditContext): Promise<ApiKey>;
  getKey(keyId: string): Promise<ApiKey | undefined>;
  listKeys(accountId: string): Promise<ApiKey[]>;
  /** The data-plane read: one indexed lookup by key id. */
  findCredential(keyId: string): Promise<Credential | undefined>;

  getTier(name: string): Promise<Tier | undefined>;
  listTiers(): Promise<Tier[]>;
  /**
   * Creates or edits a tier. Fields left out of `changes` keep their current values; creating a
   * tier needs every field of `TierLimits`.
   */
  setTier(name: string, changes: Partial<TierLimits>, context: AuditContext): Promise<Tier>;

  queryAudit(query?: AuditQuery): Promise<AuditEntry[]>;

  close(): Promise<void>;
}

/** The part of the store the data plane reads (so a read replica can serve it). */
export type CredentialSource = Pick<IdentityStore, 'findCredential' | 'getTier'>;

/**
 * Who is calling, as the data plane sees it after authentication. `anonymous` principals come
 * from the `anonymous` tier (no key) and should be rate limited by client address.
 */
export interface Principal {
  accountId: string;
  keyId: string;
  tier: Tier;
  scopes: readonly Scope[];
  anonymous: boolean;
}
