/**
 * The built-in tiers as INSERT statements for the first identity migration, in the SQLite or the
 * PostgreSQL dialect (they differ in booleans and in how an existing row is skipped). Both
 * migration lists call this one function, so the seeded rows cannot differ between engines.
 */
import { initialTiers } from './tiers.ts';

export type SqlDialect = 'sqlite' | 'postgres';

function sqlValue(value: number | boolean | null | string, dialect: SqlDialect): string {
  if (value === null) return 'NULL';
  if (typeof value === 'boolean') {
    if (dialect === 'postgres') return value ? 'TRUE' : 'FALSE';
    return value ? '1' : '0';
  }
  if (typeof value === 'number') return String(value);
  return `'${value.replaceAll("'", "''")}'`;
}

export function seedTiersSql(dialect: SqlDialect): string {
  const insert = dialect === 'postgres' ? 'INSERT INTO' : 'INSERT OR IGNORE INTO';
  const onConflict = dialect === 'postgres' ? ' ON CONFLICT (name) DO NOTHING' : '';
  return Object.entries(initialTiers)
    .map(
      ([name, tier]) =>
        `${insert} tiers (name, enabled, rate_per_second, burst, concurrent_jobs, max_input_bytes, ` +
        'max_input_pixels, monthly_conversions, price_micro_usd_per_cpu_second, price_micro_usd_per_gigabyte_in, ' +
        `price_micro_usd_per_gigabyte_out, built_in, updated_at) VALUES (${[
          name,
          tier.enabled,
          tier.ratePerSecond,
          tier.burst,
          tier.concurrentJobs,
          tier.maxInputBytes,
          tier.maxInputPixels,
          tier.monthlyConversions,
          tier.priceMicroUsdPerCpuSecond,
          tier.priceMicroUsdPerGigabyteIn,
          tier.priceMicroUsdPerGigabyteOut,
          true,
          0,
        ]
          .map((value) => sqlValue(value, dialect))
          .join(', ')})${onConflict};`,
    )
    .join('\n');
}
