/**
 * The data plane's key verification: every request is authenticated from an in-process cache
 * in front of the identity store, so the store sees a trickle of lookups instead of the full
 * request rate, and an unreachable store does not take the API down (availability over
 * consistency: the data plane is AP, the management plane CP).
 *
 * What it guarantees:
 * - A known key id is looked up at most once per positive TTL (30 s by default), an unknown one
 *   at most once per negative TTL (5 s); concurrent misses for one id share a single lookup.
 * - A hot entry is refreshed in the background shortly before it expires, so steady traffic
 *   never waits on the store.
 * - When the store throws, an expired entry is served for up to `maxStaleMs` after it was
 *   fetched (stale-if-error), and each such answer is counted and reported to `onEvent`.
 * - Change events from the bus act at once: revocations and closures become tombstones that
 *   override every cached or stale record older than them (they are monotonic, so a tombstone is
 *   never wrong), and other changes expire the affected entries. A fetch that raced with an
 *   event is cached as already expired. The TTL remains the backstop for lost events.
 * - The secret is checked (constant-time) before anything about the key is revealed, so a
 *   caller without the secret cannot tell a revoked key id from an unknown one.
 */
import { PixelfleetError } from '../errors/index.ts';
import type { ChangeBus, ChangeEvent, Unsubscribe } from './change-bus.ts';
import { keyStatus, parseKey, secretMatches } from './keys.ts';
import type { Credential, CredentialSource, Principal, Scope, Tier } from './types.ts';

/** Why a presented key was refused with 401 (also the `reason` member of the problem). */
export type UnauthorizedReason = 'missing' | 'malformed' | 'unknown' | 'revoked' | 'expired';

export type EdgeCacheEvent =
  | { type: 'hit'; key: string }
  | { type: 'miss'; key: string }
  | { type: 'refresh'; key: string }
  | { type: 'store-error'; key: string; error: unknown }
  | { type: 'stale-served'; key: string; ageMs: number; error: unknown }
  | { type: 'invalidated'; cause: ChangeEvent['type'] | 'gap'; entries: number };

export interface EdgeCacheStats {
  hits: number;
  misses: number;
  refreshes: number;
  storeErrors: number;
  staleServed: number;
  invalidations: number;
  entries: number;
  tombstones: number;
}

export interface EdgeCacheOptions {
  source: CredentialSource;
  /** Subscribes to change events for immediate invalidation. */
  bus?: ChangeBus;
  /** Epoch-ms clock. */
  clock?: () => number;
  /** How long a found key is trusted without asking the store (the backstop for lost events). */
  positiveTtlMs?: number;
  /** How long "no such key" is remembered, so garbage keys do not hammer the store. */
  negativeTtlMs?: number;
  /** A positive entry used within this long of its expiry is refreshed in the background. */
  refreshAheadMs?: number;
  /** Longest age (since fetch) of an entry served when the store throws. */
  maxStaleMs?: number;
  /** Entries kept (least recently used evicted first): bounds memory under random key ids. */
  maxEntries?: number;
  /** Metric hook: every hit, miss, refresh, store error, stale answer and invalidation. */
  onEvent?: (event: EdgeCacheEvent) => void;
}

interface CacheEntry<T> {
  value: T | undefined;
  fetchedAt: number;
  expiresAt: number;
  refreshing: boolean;
}

const anonymousScopes: readonly Scope[] = ['images:write', 'jobs:read'];

function unauthorized(reason: UnauthorizedReason, detail: string, keyId?: string): PixelfleetError {
  return new PixelfleetError('PF_ERR_UNAUTHORIZED', detail, {
    extensions: keyId === undefined ? { reason } : { reason, keyId },
  });
}

function positiveInteger(name: string, value: number, allowZero = false): number {
  if (!Number.isInteger(value) || value < (allowZero ? 0 : 1)) {
    throw new RangeError(
      `${name} must be a ${allowZero ? 'non-negative' : 'positive'} integer, got ${value}`,
    );
  }
  return value;
}

export class EdgeCache {
  readonly #source: CredentialSource;
  readonly #clock: () => number;
  readonly #positiveTtlMs: number;
  readonly #negativeTtlMs: number;
  readonly #refreshAheadMs: number;
  readonly #maxStaleMs: number;
  readonly #maxEntries: number;
  readonly #onEvent: ((event: EdgeCacheEvent) => void) | undefined;
  readonly #unsubscribe: Unsubscribe | undefined;

  /** `key:<keyId>` → credential; `tier:<name>` → tier. Map order is recency (LRU). */
  readonly #entries = new Map<string, CacheEntry<Credential | Tier>>();
  readonly #inflight = new Map<string, Promise<Credential | Tier | undefined>>();
  readonly #revokedKeys = new Map<string, number>();
  readonly #closedAccounts = new Map<string, number>();
  /** Bumped by every change event; a fetch that saw it change is cached as expired. */
  #epoch = 0;
  #lastPrune = 0;
  readonly #stats = { hits: 0, misses: 0, refreshes: 0, storeErrors: 0, staleServed: 0, invalidations: 0 };

  constructor(options: EdgeCacheOptions) {
    this.#source = options.source;
    this.#clock = options.clock ?? Date.now;
    this.#positiveTtlMs = positiveInteger('positiveTtlMs', options.positiveTtlMs ?? 30_000);
    this.#negativeTtlMs = positiveInteger('negativeTtlMs', options.negativeTtlMs ?? 5_000);
    this.#refreshAheadMs = positiveInteger('refreshAheadMs', options.refreshAheadMs ?? 5_000, true);
    if (this.#refreshAheadMs >= this.#positiveTtlMs)
      throw new RangeError('refreshAheadMs must be below positiveTtlMs');
    this.#maxStaleMs = positiveInteger('maxStaleMs', options.maxStaleMs ?? 10 * 60_000, true);
    this.#maxEntries = positiveInteger('maxEntries', options.maxEntries ?? 100_000);
    this.#onEvent = options.onEvent;
    this.#unsubscribe = options.bus?.subscribe((event) => this.applyChange(event));
  }

  /**
   * Verifies a presented key (`pf_live_…`, or `undefined` when the request carried none) and
   * returns who is calling. Throws PF_ERR_UNAUTHORIZED (401, `reason` says why),
   * PF_ERR_ACCOUNT_CLOSED (403), or PF_ERR_MANAGEMENT_UNAVAILABLE (503) when the store fails and
   * nothing usable is cached.
   */
  async authenticate(presentedKey: string | undefined): Promise<Principal> {
    if (presentedKey === undefined || presentedKey === '') return this.#anonymous();
    const parsed = parseKey(presentedKey);
    if (parsed === undefined) {
      throw unauthorized('malformed', 'the API key is malformed: expected pf_live_<key id>_<secret>');
    }
    const { keyId, secret } = parsed;
    const credential = (await this.#lookup(`key:${keyId}`, () => this.#source.findCredential(keyId))) as
      | Credential
      | undefined;
    if (credential === undefined || !secretMatches(secret, credential.secretHash)) {
      throw unauthorized('unknown', `no such API key ${keyId}`, keyId);
    }
    const now = this.#clock();
    const accountId = credential.account.id;
    if (credential.account.status === 'closed' || this.#closedAccounts.has(accountId)) {
      throw new PixelfleetError('PF_ERR_ACCOUNT_CLOSED', `account ${accountId} is closed`, {
        extensions: { accountId, keyId },
      });
    }
    if (this.#revokedKeys.has(keyId) || keyStatus(credential.key, now) === 'revoked') {
      throw unauthorized('revoked', `API key ${keyId} has been revoked`, keyId);
    }
    if (keyStatus(credential.key, now) === 'expired') {
      throw unauthorized(
        'expired',
        `API key ${keyId} expired at ${new Date(credential.key.expiresAt!).toISOString()}`,
        keyId,
      );
    }
    return { accountId, keyId, tier: credential.tier, scopes: credential.key.scopes, anonymous: false };
  }

  /** Applies one change event (the bus subscription calls this; exposed for other transports). */
  applyChange(event: ChangeEvent): void {
    this.#epoch++;
    // Tombstones are timed by this cache's clock (the publisher's may differ) for pruning.
    const receivedAt = this.#clock();
    let affected = 0;
    switch (event.type) {
      case 'key.revoked':
        this.#revokedKeys.set(event.keyId, receivedAt);
        affected = this.#expire((key) => key === `key:${event.keyId}`);
        break;
      case 'key.issued':
        affected = this.#expire((key) => key === `key:${event.keyId}`);
        break;
      case 'account.closed':
        this.#closedAccounts.set(event.accountId, receivedAt);
        for (const keyId of event.revokedKeyIds) this.#revokedKeys.set(keyId, receivedAt);
        affected = this.#expire((_, value) => isCredential(value) && value.account.id === event.accountId);
        break;
      case 'account.tier-changed':
        affected = this.#expire((_, value) => isCredential(value) && value.account.id === event.accountId);
        break;
      case 'tier.changed':
        affected = this.#expire(
          (key, value) =>
            key === `tier:${event.tier}` || (isCredential(value) && value.tier.name === event.tier),
        );
        break;
    }
    this.#stats.invalidations++;
    this.#onEvent?.({ type: 'invalidated', cause: event.type, entries: affected });
    this.#pruneTombstones();
  }

  /**
   * Distrusts every cached entry at once (the change feed reported a gap: events may be lost).
   * Entries are expired, not dropped, so they still serve stale if the store is unreachable;
   * lookups in flight are cached as already expired.
   */
  expireAll(): number {
    this.#epoch++;
    const affected = this.#expire(() => true);
    this.#stats.invalidations++;
    this.#onEvent?.({ type: 'invalidated', cause: 'gap', entries: affected });
    return affected;
  }

  stats(): EdgeCacheStats {
    return {
      ...this.#stats,
      entries: this.#entries.size,
      tombstones: this.#revokedKeys.size + this.#closedAccounts.size,
    };
  }

  /** Resolves once no lookup or background refresh is in flight (tests, graceful shutdown). */
  async settled(): Promise<void> {
    while (this.#inflight.size > 0) await Promise.allSettled([...this.#inflight.values()]);
  }

  /** Stops listening to the bus. */
  close(): void {
    this.#unsubscribe?.();
  }

  async #anonymous(): Promise<Principal> {
    const tier = (await this.#lookup('tier:anonymous', () => this.#source.getTier('anonymous'))) as
      | Tier
      | undefined;
    if (tier === undefined || !tier.enabled) {
      throw unauthorized('missing', 'an API key is required: send Authorization: Bearer pf_live_…');
    }
    return { accountId: 'anonymous', keyId: 'anonymous', tier, scopes: anonymousScopes, anonymous: true };
  }

  async #lookup(
    cacheKey: string,
    load: () => Promise<Credential | Tier | undefined>,
  ): Promise<Credential | Tier | undefined> {
    const now = this.#clock();
    const entry = this.#entries.get(cacheKey);
    if (entry !== undefined && now < entry.expiresAt) {
      this.#stats.hits++;
      this.#onEvent?.({ type: 'hit', key: cacheKey });
      this.#entries.delete(cacheKey);
      this.#entries.set(cacheKey, entry);
      if (entry.value !== undefined && !entry.refreshing && now >= entry.expiresAt - this.#refreshAheadMs) {
        this.#refreshInBackground(cacheKey, entry, load);
      }
      return entry.value;
    }
    this.#stats.misses++;
    this.#onEvent?.({ type: 'miss', key: cacheKey });
    try {
      return await this.#fetch(cacheKey, load);
    } catch (error) {
      const stale = this.#entries.get(cacheKey);
      const ageMs = stale === undefined ? 0 : this.#clock() - stale.fetchedAt;
      if (stale !== undefined && ageMs <= this.#maxStaleMs) {
        this.#stats.staleServed++;
        this.#onEvent?.({ type: 'stale-served', key: cacheKey, ageMs, error });
        return stale.value;
      }
      throw new PixelfleetError(
        'PF_ERR_MANAGEMENT_UNAVAILABLE',
        'the identity store is unavailable and this key is not cached; retry shortly',
        { cause: error, extensions: { retryAfterSeconds: 1 } },
      );
    }
  }

  #refreshInBackground(
    cacheKey: string,
    entry: CacheEntry<Credential | Tier>,
    load: () => Promise<Credential | Tier | undefined>,
  ): void {
    entry.refreshing = true;
    this.#stats.refreshes++;
    this.#onEvent?.({ type: 'refresh', key: cacheKey });
    this.#fetch(cacheKey, load).then(
      () => {
        entry.refreshing = false;
      },
      () => {
        // Counted as a store error in #fetch; the entry stays and expires normally.
        entry.refreshing = false;
      },
    );
  }

  /** One store lookup per key at a time; the result is cached unless an event raced it. */
  #fetch(
    cacheKey: string,
    load: () => Promise<Credential | Tier | undefined>,
  ): Promise<Credential | Tier | undefined> {
    const running = this.#inflight.get(cacheKey);
    if (running !== undefined) return running;
    const startedAt = this.#clock();
    const startEpoch = this.#epoch;
    const fetching = (async () => {
      try {
        const value = await load();
        const ttl = value === undefined ? this.#negativeTtlMs : this.#positiveTtlMs;
        this.#store(cacheKey, {
          value,
          // Timed from the start of the lookup: the record is at least that old.
          fetchedAt: startedAt,
          expiresAt: this.#epoch === startEpoch ? startedAt + ttl : startedAt,
          refreshing: false,
        });
        return value;
      } catch (error) {
        this.#stats.storeErrors++;
        this.#onEvent?.({ type: 'store-error', key: cacheKey, error });
        throw error;
      } finally {
        this.#inflight.delete(cacheKey);
      }
    })();
    this.#inflight.set(cacheKey, fetching);
    return fetching;
  }

  #store(cacheKey: string, entry: CacheEntry<Credential | Tier>): void {
    this.#entries.delete(cacheKey);
    this.#entries.set(cacheKey, entry);
    while (this.#entries.size > this.#maxEntries) {
      const oldest = this.#entries.keys().next().value as string;
      this.#entries.delete(oldest);
    }
  }

  /** Marks matching entries expired but keeps them: still usable as stale if the store fails. */
  #expire(matches: (cacheKey: string, value: Credential | Tier | undefined) => boolean): number {
    let count = 0;
    for (const [cacheKey, entry] of this.#entries) {
      if (matches(cacheKey, entry.value)) {
        entry.expiresAt = Number.NEGATIVE_INFINITY;
        count++;
      }
    }
    return count;
  }

  /**
   * A tombstone must outlive every record fetched before it; those are at most `maxStaleMs`
   * old when served, so after that the store's own answer (revoked) is all that can be seen.
   */
  #pruneTombstones(): void {
    const now = this.#clock();
    if (now - this.#lastPrune < 1_000) return;
    this.#lastPrune = now;
    const horizon = now - this.#maxStaleMs - this.#positiveTtlMs;
    for (const tombstones of [this.#revokedKeys, this.#closedAccounts]) {
      for (const [id, at] of tombstones) if (at < horizon) tombstones.delete(id);
    }
  }
}

function isCredential(value: Credential | Tier | undefined): value is Credential {
  return value !== undefined && 'secretHash' in value;
}
