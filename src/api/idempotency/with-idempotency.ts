/**
 * `withIdempotency`: what a route wraps around its work to honour an `Idempotency-Key`.
 *
 * - No key: the work simply runs.
 * - First request: the work runs while the key is leased to it; its response is stored only
 *   when the work says `store: true` and the status is below 500. Everything else frees the key:
 *   validation failures (4xx with `store: false`) so the client can fix the request and retry
 *   with the same key, 5xx/503 outcomes because they are transient and a retry should really
 *   run again, and thrown errors for both reasons.
 * - Same key, same parameters, finished: the stored response comes back byte for byte, with
 *   `Idempotent-Replayed: true` added to its headers.
 * - Same key, same parameters, still running: PF_ERR_IDEMPOTENCY_IN_PROGRESS (409).
 * - Same key, different parameters: PF_ERR_IDEMPOTENCY_KEY_REUSED (422).
 *
 * The lease lasts until the request's deadline plus some slack, so a server that dies mid-request
 * blocks the key for at most that long. Storing is best effort: if the store fails after the work
 * succeeded, the client still gets its response (a retry will merely run again).
 */
import { PixelfleetError } from '../../errors/index.ts';
import { assertIdempotencyKey } from './key.ts';
import type { IdempotencyStore, StoredResponse } from './types.ts';

/** The response header that marks a replay (lower case, as stored). */
export const idempotentReplayedHeader = 'idempotent-replayed';

export const defaultLeaseSlackMs = 5_000;

export interface IdempotentRequest {
  /** Who the key belongs to: the account id, so tenants never share keys. */
  scope: string;
  /** The key from `parseIdempotencyKeyHeader`, or undefined when the request carried none. */
  key: string | undefined;
  /** `fingerprintRequest(...)` of the request's parameters. */
  fingerprint: string;
  /** The request's absolute deadline (epoch ms); the in-progress lease ends `leaseSlackMs` after it. */
  deadlineMs: number;
  /** Epoch-ms clock. Default `Date.now`. */
  clock?: () => number;
  /** Added to the time left before the deadline to size the lease (ms). Default 5 s. */
  leaseSlackMs?: number;
  /** Told when storing or freeing the key failed after the work ran. Default: ignored. */
  onStoreError?: (error: unknown) => void;
}

/** What the work returns: the response, and whether it may be replayed for later retries. */
export interface IdempotentOutcome extends StoredResponse {
  store: boolean;
}

export interface IdempotentResult {
  response: StoredResponse;
  replayed: boolean;
}

function responseOf(outcome: IdempotentOutcome): StoredResponse {
  return { status: outcome.status, headers: outcome.headers, body: outcome.body };
}

export async function withIdempotency(
  store: IdempotencyStore,
  request: IdempotentRequest,
  run: () => Promise<IdempotentOutcome>,
): Promise<IdempotentResult> {
  if (request.key === undefined) return { response: responseOf(await run()), replayed: false };
  const { scope, key, fingerprint } = request;
  assertIdempotencyKey(key);
  const clock = request.clock ?? Date.now;
  const leaseSlackMs = request.leaseSlackMs ?? defaultLeaseSlackMs;
  if (!Number.isFinite(request.deadlineMs)) throw new RangeError('deadlineMs must be a finite epoch-ms time');
  if (!Number.isSafeInteger(leaseSlackMs) || leaseSlackMs < 0) {
    throw new RangeError(`leaseSlackMs must be a non-negative integer, got ${leaseSlackMs}`);
  }
  const onStoreError = request.onStoreError ?? (() => {});

  const nowMs = clock();
  const leaseMs = Math.max(1, Math.ceil(request.deadlineMs - nowMs) + leaseSlackMs);
  const begun = await store.begin(scope, key, fingerprint, nowMs, leaseMs);
  switch (begun.kind) {
    case 'in-progress':
      throw new PixelfleetError(
        'PF_ERR_IDEMPOTENCY_IN_PROGRESS',
        'a request with this Idempotency-Key is still being processed; retry once it has finished',
        { extensions: { retryAfterSeconds: 1 } },
      );
    case 'mismatch':
      throw new PixelfleetError(
        'PF_ERR_IDEMPOTENCY_KEY_REUSED',
        'this Idempotency-Key was used with different parameters (method, path, query, headers or body); send a new key',
      );
    case 'replay':
      return {
        response: {
          status: begun.response.status,
          headers: { ...begun.response.headers, [idempotentReplayedHeader]: 'true' },
          body: begun.response.body,
        },
        replayed: true,
      };
    case 'started':
      break;
  }

  const { token } = begun;
  let outcome: IdempotentOutcome;
  try {
    outcome = await run();
  } catch (error) {
    await store.abandon(scope, key, token).catch(onStoreError);
    throw error;
  }
  const response = responseOf(outcome);
  try {
    if (outcome.store && outcome.status < 500) await store.complete(scope, key, token, response);
    else await store.abandon(scope, key, token);
  } catch (error) {
    onStoreError(error);
    // If `complete` failed, try to free the key rather than block it until the lease ends.
    await store.abandon(scope, key, token).catch(onStoreError);
  }
  return { response, replayed: false };
}
