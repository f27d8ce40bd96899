/**
 * The idempotency-key store: one small async interface so the embedded SQLite engine and a
 * networked one (Redis: an in-progress marker with a TTL, then the stored response with a TTL)
 * are interchangeable and run the same contract suite.
 *
 * A key lives in one scope (the account), so two tenants never collide. Its life:
 *   absent --begin--> in-progress (leased to one token) --complete--> completed (replayable)
 *                          |  abandon, or lease expiry                      |  retention expiry,
 *                          v                                                v  or size eviction
 *                        absent                                           absent
 * Every transition is decided atomically by the engine, never by in-process state, so
 * concurrent requests on several API servers sharing one engine still see exactly one winner.
 */

/** The first response to a keyed request, kept so a retry gets the same bytes back. */
export interface StoredResponse {
  status: number;
  /** Header names as the route set them (lower case by convention); values are strings. */
  headers: Record<string, string>;
  body: Buffer;
}

/**
 * What `begin` decided:
 * - `started`: this caller holds the key; it must later `complete` or `abandon` with `token`.
 * - `in-progress`: another request with the same parameters holds an unexpired lease (409).
 * - `mismatch`: the key is held or completed with a different fingerprint (422).
 * - `replay`: a completed response with the same fingerprint; send it again.
 */
export type BeginResult =
  | { kind: 'started'; token: string }
  | { kind: 'in-progress' }
  | { kind: 'mismatch' }
  | { kind: 'replay'; response: StoredResponse };

/** What one `sweep` removed. */
export interface SweepResult {
  /** Completed entries past their retention and in-progress markers past their lease. */
  expired: number;
  /** Completed entries evicted (oldest first) to bring the store back under its byte budget. */
  evicted: number;
}

export interface IdempotencyStore {
  /**
   * Claim `key` in `scope` for a request whose parameters hash to `fingerprint`, or report why
   * not. An entry whose retention or lease ended at or before `nowMs` counts as absent.
   * `leaseMs` bounds how long the claim blocks the key if its holder never comes back (a
   * crashed server); it defaults to the engine's `defaultLeaseMs`. The key must already be
   * valid (see `assertIdempotencyKey`); an invalid one is rejected with
   * PF_ERR_INVALID_IDEMPOTENCY_KEY.
   */
  begin(
    scope: string,
    key: string,
    fingerprint: string,
    nowMs: number,
    leaseMs?: number,
  ): Promise<BeginResult>;
  /**
   * Store the response of the claim `token` holds, replayable until the key's retention (counted
   * from `begin`) ends. Returns false, storing nothing, when `token` no longer holds the key (its
   * lease expired and the key was swept or claimed again): a stale holder never clobbers a newer one.
   */
  complete(scope: string, key: string, token: string, response: StoredResponse): Promise<boolean>;
  /** Free the key so the client may retry, if `token` still holds it. Returns whether it did. */
  abandon(scope: string, key: string, token: string): Promise<boolean>;
  /** Remove expired entries and enforce the byte budget as of `nowMs`. */
  sweep(nowMs: number): Promise<SweepResult>;
  /** Release connections and timers. Idempotent. */
  close(): Promise<void>;
}

/** Settings every idempotency store takes, whatever holds its entries. */
export interface IdempotencyStoreSettings {
  /** How long a completed response is replayable, counted from `begin` (ms). Default 24 h. */
  retentionMs?: number;
  /** Lease of an in-progress marker when `begin` is not given one (ms). Default 60 s. */
  defaultLeaseMs?: number;
  /**
   * Byte budget for everything stored (bodies, headers, keys, plus a fixed per-entry overhead).
   * Bounds the space a burst of large responses can take. Default 256 MiB.
   */
  maxStoredBytes?: number;
  /** How often the store sweeps itself (ms); 0 disables the timer. Default 60 s. */
  sweepIntervalMs?: number;
  /** Epoch-ms clock for the periodic sweep only; every other method is given the time. */
  clock?: () => number;
  /** Source of claim tokens; must not repeat. Default `crypto.randomUUID`. */
  newToken?: () => string;
  /** Told about a failed periodic sweep (the next one retries). Default: ignored. */
  onSweepError?: (error: unknown) => void;
}
