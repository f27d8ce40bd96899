/**
 * Order statistics for tests and benchmarks: one definition, so every figure the project
 * reports means the same thing. Nearest-rank percentile: the smallest sample such that at least
 * `fraction` of the samples are at or below it (p99 of 100 samples is the 99th smallest).
 */

/** `sorted` must be ascending; `fraction` in (0, 1], e.g. 0.99. Returns 0 for no samples. */
export function percentile(sorted: readonly number[], fraction: number): number {
  if (sorted.length === 0) return 0;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(fraction * sorted.length) - 1))]!;
}

/** Percentile of unsorted samples (sorts a copy). */
export function percentileOf(values: readonly number[], fraction: number): number {
  return percentile(
    [...values].sort((a, b) => a - b),
    fraction,
  );
}

/** Median of unsorted samples (the mean of the middle two for an even count); null for none. */
export function median(values: readonly number[]): number | null {
  if (values.length === 0) return null;
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2;
}
