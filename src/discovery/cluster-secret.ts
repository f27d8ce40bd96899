/**
 * Bearer check for the cluster secret. Both sides are hashed before the constant-time
 * comparison so that neither the secret's content nor its length leaks through timing.
 */
import { createHash, timingSafeEqual } from 'node:crypto';

function digest(text: string): Buffer {
  return createHash('sha256').update(text, 'utf8').digest();
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
  const equal = timingSafeEqual(digest(presented), digest(clusterSecret));
  return match !== null && equal;
}
