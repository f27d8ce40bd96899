/**
 * The tiers the service ships with, and the validation every tier edit passes through.
 *
 * `initialTiers` is the seed of migration 2: it is history, not configuration. Operators change
 * tiers with `pixelfleet admin tiers set`; changing the defaults for new installations means a
 * new migration, never an edit here (an installed database would not see it anyway).
 */
import { PixelfleetError } from '../errors/index.ts';
import type { TierLimits } from './types.ts';

const mebibyte = 1024 * 1024;

export const builtInTierNames = ['anonymous', 'free', 'pro', 'enterprise'] as const;

export const initialTiers: Readonly<Record<(typeof builtInTierNames)[number], TierLimits>> = {
  // Key-less access, off until an operator enables it; limits apply per client address.
  anonymous: {
    enabled: false,
    ratePerSecond: 1,
    burst: 5,
    concurrentJobs: 1,
    maxInputBytes: 1 * mebibyte,
    maxInputPixels: 4_000_000,
    monthlyConversions: 1_000,
    priceMicroUsdPerCpuSecond: 0,
    priceMicroUsdPerGigabyteIn: 0,
    priceMicroUsdPerGigabyteOut: 0,
  },
  free: {
    enabled: true,
    ratePerSecond: 5,
    burst: 20,
    concurrentJobs: 2,
    maxInputBytes: 5 * mebibyte,
    maxInputPixels: 25_000_000,
    monthlyConversions: 10_000,
    priceMicroUsdPerCpuSecond: 0,
    priceMicroUsdPerGigabyteIn: 0,
    priceMicroUsdPerGigabyteOut: 0,
  },
  pro: {
    enabled: true,
    ratePerSecond: 100,
    burst: 200,
    concurrentJobs: 16,
    maxInputBytes: 25 * mebibyte,
    maxInputPixels: 100_000_000,
    monthlyConversions: 5_000_000,
    priceMicroUsdPerCpuSecond: 40,
    priceMicroUsdPerGigabyteIn: 10_000,
    priceMicroUsdPerGigabyteOut: 50_000,
  },
  enterprise: {
    enabled: true,
    ratePerSecond: 1_000,
    burst: 2_000,
    concurrentJobs: 128,
    maxInputBytes: 100 * mebibyte,
    maxInputPixels: 268_000_000,
    monthlyConversions: null,
    priceMicroUsdPerCpuSecond: 25,
    priceMicroUsdPerGigabyteIn: 5_000,
    priceMicroUsdPerGigabyteOut: 30_000,
  },
};

export const tierLimitFields = [
  'enabled',
  'ratePerSecond',
  'burst',
  'concurrentJobs',
  'maxInputBytes',
  'maxInputPixels',
  'monthlyConversions',
  'priceMicroUsdPerCpuSecond',
  'priceMicroUsdPerGigabyteIn',
  'priceMicroUsdPerGigabyteOut',
] as const satisfies readonly (keyof TierLimits)[];

const tierNamePattern = /^[a-z][a-z0-9-]{0,31}$/;

export function assertTierName(name: string): void {
  if (!tierNamePattern.test(name)) {
    throw new PixelfleetError(
      'PF_ERR_INVALID_OPTION',
      `tier name ${JSON.stringify(name)} must be 1-32 lowercase letters, digits or dashes, starting with a letter`,
      { extensions: { option: 'name' } },
    );
  }
}

function invalidLimit(field: string, detail: string): PixelfleetError {
  return new PixelfleetError('PF_ERR_INVALID_OPTION', `tier ${field} ${detail}`, {
    extensions: { option: field },
  });
}

/**
 * Merges `changes` over `current` (or requires every field when there is no current tier) and
 * checks every limit; throws PF_ERR_INVALID_OPTION naming the first bad field.
 */
export function mergeTierLimits(
  name: string,
  current: TierLimits | undefined,
  changes: Partial<TierLimits>,
): TierLimits {
  for (const field of Object.keys(changes)) {
    if (!(tierLimitFields as readonly string[]).includes(field))
      throw invalidLimit(field, 'is not a tier field');
  }
  if (current === undefined) {
    const missing = tierLimitFields.filter((field) => changes[field] === undefined);
    if (missing.length > 0) {
      throw new PixelfleetError(
        'PF_ERR_INVALID_OPTION',
        `tier ${name} does not exist; creating it needs every limit, missing: ${missing.join(', ')}`,
        { extensions: { option: missing[0], missing } },
      );
    }
  }
  const merged = { ...current, ...changes } as TierLimits;
  if (typeof merged.enabled !== 'boolean') throw invalidLimit('enabled', 'must be true or false');
  if (!(Number.isFinite(merged.ratePerSecond) && merged.ratePerSecond > 0)) {
    throw invalidLimit('ratePerSecond', 'must be a positive number');
  }
  const positiveIntegers = ['burst', 'concurrentJobs', 'maxInputBytes', 'maxInputPixels'] as const;
  for (const field of positiveIntegers) {
    if (!(Number.isSafeInteger(merged[field]) && merged[field] > 0)) {
      throw invalidLimit(field, 'must be a positive integer');
    }
  }
  if (
    merged.monthlyConversions !== null &&
    !(Number.isSafeInteger(merged.monthlyConversions) && merged.monthlyConversions >= 0)
  ) {
    throw invalidLimit('monthlyConversions', 'must be a non-negative integer or null (unlimited)');
  }
  const prices = [
    'priceMicroUsdPerCpuSecond',
    'priceMicroUsdPerGigabyteIn',
    'priceMicroUsdPerGigabyteOut',
  ] as const;
  for (const field of prices) {
    if (!(Number.isSafeInteger(merged[field]) && merged[field] >= 0)) {
      throw invalidLimit(field, 'must be a non-negative integer (micro-USD)');
    }
  }
  const result = {} as Record<string, unknown>;
  for (const field of tierLimitFields) result[field] = merged[field];
  return result as unknown as TierLimits;
}
