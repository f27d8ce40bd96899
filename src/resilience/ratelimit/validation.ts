/**
 * Option checks of the limiters: the generic ones every resilience component shares, plus the
 * quota slack and policy names. Bad options are programming errors, so they throw `RangeError`
 * at construction, never at request time.
 */

/**
 * Floating-point slack when comparing quota amounts. Refill arithmetic accumulates rounding
 * residue (0.1 + 0.2 !== 0.3); without slack a refill that is exactly enough by the definition
 * could be refused. It is far below any quota granularity a caller can observe.
 */
export const QUOTA_EPSILON = 1e-9;

export { requireNonNegativeFinite, requirePositiveFinite, requirePositiveInteger } from '../option-checks.ts';

/**
 * Policy names travel in a Structured Field String, which allows printable ASCII only. They also
 * prefix store keys, so keep them short.
 */
export function requirePolicyName(value: unknown): string {
  if (typeof value !== 'string' || !/^[\x20-\x7e]{1,64}$/.test(value)) {
    throw new RangeError(`policy must be 1-64 printable ASCII characters, got ${String(value)}`);
  }
  return value;
}

export function requireValidCost(cost: unknown): number {
  if (typeof cost !== 'number' || !Number.isFinite(cost) || cost < 0) {
    throw new RangeError(`cost must be a non-negative finite number, got ${String(cost)}`);
  }
  return cost;
}

/** Whole milliseconds, rounded up so waiting exactly that long is always enough. */
export function ceilMs(value: number): number {
  return value === Number.POSITIVE_INFINITY ? value : Math.max(0, Math.ceil(value - QUOTA_EPSILON));
}
