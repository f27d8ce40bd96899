/** Arithmetic on `UsageTotals`: the one place that knows which fields a sum has. */
import type { UsageRecord, UsageTotals } from './types.ts';

export const totalsFields = [
  'conversions',
  'cpuMicros',
  'bytesIn',
  'bytesOut',
  'pixelsIn',
  'pixelsOut',
] as const;

export function emptyTotals(): UsageTotals {
  return { conversions: 0, cpuMicros: 0, bytesIn: 0, bytesOut: 0, pixelsIn: 0, pixelsOut: 0 };
}

/** Adds one record to `into` (mutates it). */
export function addRecord(into: UsageTotals, record: UsageRecord): UsageTotals {
  into.conversions += 1;
  into.cpuMicros += record.cpuMicros;
  into.bytesIn += record.bytesIn;
  into.bytesOut += record.bytesOut;
  into.pixelsIn += record.pixelsIn;
  into.pixelsOut += record.pixelsOut;
  return into;
}

/** Adds `other` to `into` (mutates it). */
export function addTotals(into: UsageTotals, other: UsageTotals): UsageTotals {
  for (const field of totalsFields) into[field] += other[field];
  return into;
}
