/**
 * How identity refuses a client address that the progressive lockout holds: `PF_ERR_AUTH_LOCKED_OUT`
 * (429) with Retry-After in whole seconds. The lockout itself is the one in resilience/ratelimit;
 * the data-plane authenticator and the admin API both refuse through `refuseIfLockedOut`, before
 * any credential is compared, so a locked client cannot keep testing keys or tokens.
 */
import { PixelfleetError } from '../errors/index.ts';
import type { ProgressiveLockout } from '../resilience/ratelimit/index.ts';

export function lockedOutError(retryAfterMs: number): PixelfleetError {
  const retryAfterSeconds = Math.max(1, Math.ceil(retryAfterMs / 1000));
  return new PixelfleetError(
    'PF_ERR_AUTH_LOCKED_OUT',
    `too many failed authentication attempts from this address; retry in ${retryAfterSeconds} s`,
    { extensions: { retryAfterSeconds } },
  );
}

/** Throws `lockedOutError` while `client` is locked out; a check records nothing. */
export function refuseIfLockedOut(lockout: ProgressiveLockout | undefined, client: string): void {
  const decision = lockout?.check(client);
  if (decision !== undefined && !decision.allowed) throw lockedOutError(decision.retryAfterMs);
}
