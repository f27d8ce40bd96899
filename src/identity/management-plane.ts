/**
 * The management plane: the operations behind the admin API and CLI. It validates input,
 * generates identifiers and keys (with injected randomness and clock), lets the store apply each
 * change with its audit entry in one transaction, and only then publishes the change event, so
 * no cache ever hears of a change that did not commit.
 *
 * Rotation: an account may hold at most `maxLiveKeysPerAccount` (default 2) live keys, so a
 * customer can issue the new key, deploy it, and revoke the old one; a third is refused with
 * PF_ERR_KEY_LIMIT_REACHED until one is revoked (or expires).
 */
import { randomBytes } from 'node:crypto';
import { PixelfleetError } from '../errors/index.ts';
import type { ChangeBus } from './change-bus.ts';
import { generateKey, type RandomBytes } from './keys.ts';
import {
  type Account,
  type AccountQuery,
  type ApiKey,
  type AuditContext,
  type AuditEntry,
  type AuditQuery,
  defaultScopes,
  type IdentityStore,
  scopes as knownScopes,
  type Scope,
  type Tier,
  type TierLimits,
} from './types.ts';

export interface ManagementPlaneOptions {
  store: IdentityStore;
  bus: ChangeBus;
  clock?: () => number;
  random?: RandomBytes;
  /** Live keys allowed per account; 2 lets a key rotate without downtime. */
  maxLiveKeysPerAccount?: number;
}

export interface CreateAccountInput {
  name: string;
  email?: string | null;
  /** Default `free`. */
  tier?: string;
}

export interface IssueKeyInput {
  /** Default: every scope except `admin`. */
  scopes?: readonly string[];
  name?: string | null;
  /** Epoch ms; must be in the future. */
  expiresAt?: number | null;
}

export interface IssuedKey {
  key: ApiKey;
  /** The full key (`pf_live_…`). Shown once; only its hash is stored. */
  presentedKey: string;
}

const emailPattern = /^[^\s@]+@[^\s@]+$/;

function invalid(option: string, detail: string): PixelfleetError {
  return new PixelfleetError('PF_ERR_INVALID_OPTION', detail, { extensions: { option } });
}

function cleanText(option: string, value: string | null | undefined, maxLength: number): string | null {
  if (value === undefined || value === null) return null;
  const trimmed = value.trim();
  if (trimmed === '') return null;
  if (trimmed.length > maxLength) throw invalid(option, `${option} must be at most ${maxLength} characters`);
  return trimmed;
}

export function validateScopes(requested: readonly string[] | undefined): Scope[] {
  if (requested === undefined) return [...defaultScopes];
  if (requested.length === 0) throw invalid('scopes', 'a key needs at least one scope');
  const unknown = requested.filter((scope) => !(knownScopes as readonly string[]).includes(scope));
  if (unknown.length > 0) {
    throw invalid('scopes', `unknown scope ${unknown.join(', ')}; scopes are ${knownScopes.join(', ')}`);
  }
  return knownScopes.filter((scope) => requested.includes(scope));
}

export class ManagementPlane {
  readonly #store: IdentityStore;
  readonly #bus: ChangeBus;
  readonly #clock: () => number;
  readonly #random: RandomBytes;
  readonly #maxLiveKeys: number;

  constructor(options: ManagementPlaneOptions) {
    const maxLiveKeys = options.maxLiveKeysPerAccount ?? 2;
    if (!Number.isInteger(maxLiveKeys) || maxLiveKeys < 1) {
      throw new RangeError(`maxLiveKeysPerAccount must be a positive integer, got ${maxLiveKeys}`);
    }
    this.#store = options.store;
    this.#bus = options.bus;
    this.#clock = options.clock ?? Date.now;
    this.#random = options.random ?? randomBytes;
    this.#maxLiveKeys = maxLiveKeys;
  }

  get store(): IdentityStore {
    return this.#store;
  }

  async createAccount(input: CreateAccountInput, context: AuditContext): Promise<Account> {
    const name = cleanText('name', input.name, 200);
    if (name === null) throw invalid('name', 'an account needs a name');
    const email = cleanText('email', input.email, 320);
    if (email !== null && !emailPattern.test(email))
      throw invalid('email', `${email} is not an email address`);
    const id = `acct_${Buffer.from(this.#random(8)).toString('hex')}`;
    return this.#store.createAccount({ id, name, email, tier: input.tier ?? 'free' }, context);
  }

  async getAccount(accountId: string): Promise<Account> {
    const account = await this.#store.getAccount(accountId);
    if (account === undefined) throw new PixelfleetError('PF_ERR_NOT_FOUND', `no account ${accountId}`);
    return account;
  }

  listAccounts(query: AccountQuery = {}): Promise<Account[]> {
    return this.#store.listAccounts(query);
  }

  /** Closes the account and revokes all its keys (the first step of the closure saga). */
  async closeAccount(accountId: string, reason: string | null, context: AuditContext): Promise<Account> {
    const closed = await this.#store.closeAccount(accountId, cleanText('reason', reason, 500), context);
    this.#bus.publish({
      type: 'account.closed',
      at: closed.account.closedAt ?? this.#clock(),
      accountId,
      revokedKeyIds: closed.revokedKeyIds,
    });
    return closed.account;
  }

  async changeAccountTier(accountId: string, tier: string, context: AuditContext): Promise<Account> {
    const account = await this.#store.changeAccountTier(accountId, tier, context);
    this.#bus.publish({ type: 'account.tier-changed', at: this.#clock(), accountId, tier });
    return account;
  }

  async issueKey(accountId: string, input: IssueKeyInput, context: AuditContext): Promise<IssuedKey> {
    const keyScopes = validateScopes(input.scopes);
    const expiresAt = input.expiresAt ?? null;
    if (expiresAt !== null && !(Number.isSafeInteger(expiresAt) && expiresAt > this.#clock())) {
      throw invalid('expiresAt', 'a key must expire in the future');
    }
    const generated = generateKey(this.#random);
    const key = await this.#store.insertKey(
      {
        id: generated.keyId,
        accountId,
        name: cleanText('name', input.name, 200),
        scopes: keyScopes,
        secretHash: generated.secretHash,
        expiresAt,
      },
      { maxLiveKeys: this.#maxLiveKeys },
      context,
    );
    // A data-plane cache may hold a negative entry for this id (someone guessed it); drop it.
    this.#bus.publish({ type: 'key.issued', at: key.createdAt, keyId: key.id, accountId });
    return { key, presentedKey: generated.presentedKey };
  }

  async revokeKey(keyId: string, reason: string | null, context: AuditContext): Promise<ApiKey> {
    const key = await this.#store.revokeKey(keyId, cleanText('reason', reason, 500), context);
    this.#bus.publish({
      type: 'key.revoked',
      at: key.revokedAt ?? this.#clock(),
      keyId,
      accountId: key.accountId,
      reason: key.revokedReason,
    });
    return key;
  }

  async listKeys(accountId: string): Promise<ApiKey[]> {
    await this.getAccount(accountId);
    return this.#store.listKeys(accountId);
  }

  async getKey(keyId: string): Promise<ApiKey> {
    const key = await this.#store.getKey(keyId);
    if (key === undefined) throw new PixelfleetError('PF_ERR_NOT_FOUND', `no key ${keyId}`);
    return key;
  }

  listTiers(): Promise<Tier[]> {
    return this.#store.listTiers();
  }

  async setTier(name: string, changes: Partial<TierLimits>, context: AuditContext): Promise<Tier> {
    const tier = await this.#store.setTier(name, changes, context);
    this.#bus.publish({ type: 'tier.changed', at: tier.updatedAt, tier: name });
    return tier;
  }

  queryAudit(query: AuditQuery = {}): Promise<AuditEntry[]> {
    return this.#store.queryAudit(query);
  }
}
