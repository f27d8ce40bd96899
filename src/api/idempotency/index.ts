/**
 * Idempotency keys for POST /v1/resize and POST /v1/jobs: the store interface, the embedded
 * SQLite engine, the Redis engine for clusters, request fingerprints, key validation and the `withIdempotency` route helper.
 */
export { digestBody, type FingerprintInput, fingerprintRequest, type QueryInput } from './fingerprint.ts';
export {
  assertIdempotencyKey,
  idempotencyKeyHeader,
  maxIdempotencyKeyLength,
  parseIdempotencyKeyHeader,
} from './key.ts';
export { RedisIdempotencyStore, type RedisIdempotencyStoreOptions } from './redis-store.ts';
export {
  entryOverheadBytes,
  openIdempotencyStore,
  SqliteIdempotencyStore,
  type SqliteIdempotencyStoreOptions,
} from './sqlite-store.ts';
export type {
  BeginResult,
  IdempotencyStore,
  IdempotencyStoreSettings,
  StoredResponse,
  SweepResult,
} from './types.ts';
export {
  defaultLeaseSlackMs,
  type IdempotentOutcome,
  type IdempotentRequest,
  type IdempotentResult,
  idempotentReplayedHeader,
  withIdempotency,
} from './with-idempotency.ts';
