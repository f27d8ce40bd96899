/**
 * Tenancy at the front door: who is calling, and may they. Every /v1 request is authenticated
 * from the edge cache (a bad key counts towards a progressive lockout of its client address),
 * then pays into three token buckets: a global one that protects this server, one per key set
 * by its tier (or per client IP for anonymous traffic), and — for conversions only — the per-key
 * concurrency limit and the monthly quota. Every decision becomes IETF RateLimit headers, on
 * success as on refusal, so a client can pace itself before it is refused.
 *
 * The buckets live in this process (synchronous, no promise per decision) unless a shared
 * `limiterStore` is given (Redis in a cluster): then the global and per-tier buckets are one
 * per cluster, both decided in one concurrent round trip, and the global rate is the cluster's.
 */
import { PixelfleetError } from '../errors/index.ts';
import type { Principal, RequestAuthenticator, Tier } from '../identity/index.ts';
import {
  type AsyncRateLimiter,
  ConcurrencyLimiter,
  createAsyncRateLimiter,
  createRateLimiter,
  type Decision,
  formatRateLimitHeaders,
  type LimiterStore,
  MemoryLimiterStore,
  type RateLimiter,
  rateLimitedError,
  TokenBucket,
} from '../resilience/ratelimit/index.ts';
import { withResponseHeaders } from './problem.ts';

export interface TenancyOptions {
  authenticate: RequestAuthenticator;
  /**
   * Requests per second admitted from everyone together, and the burst above it: this server's
   * when the buckets are local, the cluster's when they live in a shared `limiterStore`.
   */
  globalRatePerSecond: number;
  globalBurst: number;
  /**
   * A store shared by every api server (Redis behind its fallback): the global and per-tier
   * buckets are decided there. Default: in-process buckets, decided synchronously.
   */
  limiterStore?: LimiterStore;
  /** Conversions the account used this calendar month (UTC); must be cheap (cached). */
  conversionsThisMonth(accountId: string, nowMs: number): Promise<number>;
  clock?: () => number;
}

export interface Admitted {
  principal: Principal;
  /** RateLimit / RateLimit-Policy header values for the response. */
  headers: Record<string, string>;
}

export class TenancyGuard {
  readonly #options: TenancyOptions;
  readonly #clock: () => number;
  readonly #store: MemoryLimiterStore;
  readonly #global: RateLimiter;
  /** One limiter per tier setting; tiers are editable, so the key includes the numbers. */
  readonly #tierLimiters = new Map<string, RateLimiter>();
  readonly #shared:
    | { store: LimiterStore; global: AsyncRateLimiter; tiers: Map<string, AsyncRateLimiter> }
    | undefined;
  readonly #concurrency = new ConcurrencyLimiter({ maxConcurrent: 1_000_000, policy: 'concurrency' });

  constructor(options: TenancyOptions) {
    if (!(options.globalRatePerSecond > 0) || !(options.globalBurst >= 1)) {
      throw new RangeError('globalRatePerSecond must be > 0 and globalBurst >= 1');
    }
    this.#options = options;
    this.#clock = options.clock ?? Date.now;
    this.#store = new MemoryLimiterStore({ clock: { now: this.#clock } });
    const globalBucket = new TokenBucket({
      capacity: options.globalBurst,
      refillPerSecond: options.globalRatePerSecond,
      policy: 'global',
    });
    this.#global = createRateLimiter(globalBucket, { store: this.#store });
    this.#shared =
      options.limiterStore === undefined
        ? undefined
        : {
            store: options.limiterStore,
            global: createAsyncRateLimiter(globalBucket, options.limiterStore),
            tiers: new Map(),
          };
  }

  /** Authenticates and charges the request buckets; throws 401/403/429 problems. */
  async admit(presentedKey: string | undefined, clientAddress: string): Promise<Admitted> {
    const principal = await this.#options.authenticate(presentedKey, clientAddress);
    let global: Decision;
    let perClient: Decision;
    if (this.#shared === undefined) {
      global = this.#global.take('server');
      perClient = this.#tierLimiter(principal.tier).take(this.#clientKey(principal, clientAddress));
    } else {
      [global, perClient] = await Promise.all([
        this.#shared.global.take('cluster'),
        this.#sharedTierLimiter(this.#shared, principal.tier).take(this.#clientKey(principal, clientAddress)),
      ]);
    }
    const decisions = [perClient, global];
    if (!global.allowed || !perClient.allowed) {
      throw withHeaders(rateLimitedError(decisions), decisions);
    }
    return { principal, headers: headerValues(decisions) };
  }

  /**
   * For conversions: the quota and the per-key concurrency limit. Returns the release to call
   * once the conversion's response is over.
   */
  async beginConversion(
    principal: Principal,
    clientAddress: string,
    contentLength: number | undefined,
  ): Promise<() => void> {
    const { tier } = principal;
    if (contentLength !== undefined && contentLength > tier.maxInputBytes) {
      throw new PixelfleetError(
        'PF_ERR_TIER_BODY_TOO_LARGE',
        `the ${tier.name} tier accepts inputs up to ${tier.maxInputBytes} bytes; this one has ${contentLength}`,
        { extensions: { limit: tier.maxInputBytes } },
      );
    }
    if (tier.monthlyConversions !== null && !principal.anonymous) {
      const now = this.#clock();
      const used = await this.#options.conversionsThisMonth(principal.accountId, now);
      if (used >= tier.monthlyConversions) {
        throw new PixelfleetError(
          'PF_ERR_QUOTA_EXCEEDED',
          `account ${principal.accountId} used ${used} of ${tier.monthlyConversions} conversions this month (${tier.name} tier)`,
          {
            extensions: { limit: tier.monthlyConversions, used, retryAfterSeconds: secondsToNextMonth(now) },
          },
        );
      }
    }
    const permit = this.#concurrency.acquire(this.#clientKey(principal, clientAddress), tier.concurrentJobs);
    if (!permit.decision.allowed) {
      throw new PixelfleetError(
        'PF_ERR_CONCURRENCY_LIMITED',
        `the ${tier.name} tier allows ${tier.concurrentJobs} conversions in progress per key; retry when one finishes`,
        { extensions: { limit: tier.concurrentJobs, retryAfterSeconds: 1 } },
      );
    }
    return permit.release;
  }

  #clientKey(principal: Principal, clientAddress: string): string {
    // Anonymous traffic has no key to hold to account: its limits apply per client address.
    return principal.anonymous ? `ip:${clientAddress}` : `key:${principal.keyId}`;
  }

  #sharedTierLimiter(
    shared: { store: LimiterStore; tiers: Map<string, AsyncRateLimiter> },
    tier: Tier,
  ): AsyncRateLimiter {
    const id = `${tier.name}:${tier.ratePerSecond}:${tier.burst}`;
    let limiter = shared.tiers.get(id);
    if (!limiter) {
      limiter = createAsyncRateLimiter(
        new TokenBucket({ capacity: tier.burst, refillPerSecond: tier.ratePerSecond, policy: tier.name }),
        shared.store,
      );
      shared.tiers.set(id, limiter);
    }
    return limiter;
  }

  #tierLimiter(tier: Tier): RateLimiter {
    const id = `${tier.name}:${tier.ratePerSecond}:${tier.burst}`;
    let limiter = this.#tierLimiters.get(id);
    if (!limiter) {
      limiter = createRateLimiter(
        new TokenBucket({ capacity: tier.burst, refillPerSecond: tier.ratePerSecond, policy: tier.name }),
        { store: this.#store },
      );
      this.#tierLimiters.set(id, limiter);
    }
    return limiter;
  }
}

function headerValues(decisions: Decision[]): Record<string, string> {
  const formatted = formatRateLimitHeaders(decisions);
  return { ratelimit: formatted.ratelimit, 'ratelimit-policy': formatted['ratelimit-policy'] };
}

function withHeaders(error: PixelfleetError, decisions: Decision[]): PixelfleetError {
  return withResponseHeaders(error, headerValues(decisions));
}

function secondsToNextMonth(nowMs: number): number {
  const now = new Date(nowMs);
  const next = Date.UTC(now.getUTCFullYear(), now.getUTCMonth() + 1, 1);
  return Math.ceil((next - nowMs) / 1000);
}
