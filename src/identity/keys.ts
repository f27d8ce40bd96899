/**
 * The API key format: `pf_live_<keyId>_<secret>`, where the key id (16 hex digits) names the
 * stored record and the secret (32 random bytes, 64 hex digits) proves possession. The
 * recognisable prefix lets secret scanners and humans spot a leaked key.
 *
 * Only SHA-256(secret) is stored. A fast hash is the right tool here, not a password KDF
 * (bcrypt, scrypt, Argon2): a KDF exists to make guessing a low-entropy human password
 * expensive, but a 256-bit random secret cannot be guessed at any hashing speed, so a KDF would
 * only add milliseconds of CPU to every request of the data plane (and a denial-of-service
 * lever) without adding security. A leaked database therefore reveals no usable key.
 *
 * Verification hashes the presented secret and compares digests with `timingSafeEqual`, so the
 * comparison time does not depend on how many leading bytes match.
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import type { ApiKey, KeyStatus } from './types.ts';

export const keyPrefix = 'pf_live_';

const keyIdLength = 16;
const secretBytes = 32;
const keyPattern = /^pf_live_([0-9a-f]{16})_([0-9a-f]{64})$/;
const keyIdPattern = /^[0-9a-f]{16}$/;

/** Source of random bytes; injectable so tests can make keys deterministic. */
export type RandomBytes = (size: number) => Uint8Array;

export interface GeneratedKey {
  keyId: string;
  /** The full key to hand to the customer, once. */
  presentedKey: string;
  secretHash: Uint8Array;
}

export function generateKey(random: RandomBytes = randomBytes): GeneratedKey {
  const keyId = Buffer.from(random(keyIdLength / 2)).toString('hex');
  const secret = Buffer.from(random(secretBytes)).toString('hex');
  return { keyId, presentedKey: `${keyPrefix}${keyId}_${secret}`, secretHash: hashSecret(secret) };
}

export function hashSecret(secret: string): Uint8Array {
  return new Uint8Array(createHash('sha256').update(secret, 'utf8').digest());
}

export interface ParsedKey {
  keyId: string;
  secret: string;
}

/** Splits a presented key; `undefined` when it is not in the `pf_live_` format. */
export function parseKey(presented: string): ParsedKey | undefined {
  const match = keyPattern.exec(presented);
  return match ? { keyId: match[1]!, secret: match[2]! } : undefined;
}

export function isKeyId(value: string): boolean {
  return keyIdPattern.test(value);
}

/** Constant-time check of a presented secret against the stored hash. */
export function secretMatches(secret: string, storedHash: Uint8Array): boolean {
  const presentedHash = hashSecret(secret);
  return presentedHash.length === storedHash.length && timingSafeEqual(presentedHash, storedHash);
}

export function keyStatus(key: ApiKey, now: number): KeyStatus {
  if (key.revokedAt !== null) return 'revoked';
  if (key.expiresAt !== null && key.expiresAt <= now) return 'expired';
  return 'live';
}
