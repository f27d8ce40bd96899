/**
 * Bearer check for the cluster secret. Both sides are hashed before the constant-time
 * comparison so that neither the secret's content nor its length leaks through timing.
 */
import { createHash, timingSafeEqual } from 'node:crypto';

function digest(text: string): Buffer {
  return createHash('sha256').update(text, 'utf8').digest();
}

/** The expected side's digest, kept: the secret is the same on every call of a process. */
let expected: { secret: string; digest: Buffer } | undefined;

function secretDigest(secret: string): Buffer {
  if (expected?.secret !== secret) expected = { secret, digest: digest(secret) };
  return expected.digest;
}

/** True when `authorization` is `Bearer <clusterSecret>` (scheme case-insensitive). */
export function hasClusterSecret(
  authorization: string | string[] | undefined,
  clusterSecret: string,
): boolean {
  const header = Array.isArray(authorization) ? authorization[0] : authorization;
  const match = header === undefined ? null : /^bearer[ \t]+(\S+)[ \t]*$/i.exec(header);
  const presented = match?.[1] ?? '';
  // Compare even when the header is missing so the time taken does not reveal that either.
  const equal = timingSafeEqual(digest(presented), secretDigest(clusterSecret));
  return match !== null && equal;
}
