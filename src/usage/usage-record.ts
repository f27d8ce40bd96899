/**
 * Validation and the NDJSON line form of a usage record. A line always carries the same fields in
 * the same order (unknown fields a caller adds are dropped), so segment files are stable input
 * for the billing job; `decodeUsageRecordLine` is the strict inverse used by recovery and billing.
 */
import { PixelfleetError } from '../errors/index.ts';
import type { UsageRecord } from './types.ts';

const maxIdLength = 256;
const stringFields = ['recordId', 'accountId', 'keyId', 'tier', 'inputFormat', 'outputFormat'] as const;
const countFields = [
  'bytesIn',
  'bytesOut',
  'pixelsIn',
  'pixelsOut',
  'cpuMicros',
  'startedAt',
  'finishedAt',
] as const;

/** Why `value` is not a usage record, or undefined when it is one. */
export function usageRecordProblem(value: unknown): string | undefined {
  if (typeof value !== 'object' || value === null) return 'a usage record must be an object';
  const fields = value as Record<string, unknown>;
  for (const field of stringFields) {
    const text = fields[field];
    if (typeof text !== 'string' || text === '' || text.length > maxIdLength) {
      return `${field} must be a non-empty string of at most ${maxIdLength} characters, got ${JSON.stringify(text)}`;
    }
  }
  for (const field of countFields) {
    const count = fields[field];
    if (typeof count !== 'number' || !Number.isSafeInteger(count) || count < 0) {
      return `${field} must be a non-negative safe integer, got ${JSON.stringify(count)}`;
    }
  }
  return undefined;
}

/** Returns a copy holding exactly the record's fields; throws PF_ERR_INVALID_USAGE_RECORD. */
export function validateUsageRecord(value: unknown): UsageRecord {
  const problem = usageRecordProblem(value);
  if (problem !== undefined) {
    const recordId = (value as { recordId?: unknown } | null)?.recordId;
    throw new PixelfleetError('PF_ERR_INVALID_USAGE_RECORD', problem, {
      extensions: typeof recordId === 'string' ? { recordId } : {},
    });
  }
  const record = value as UsageRecord;
  return {
    recordId: record.recordId,
    accountId: record.accountId,
    keyId: record.keyId,
    tier: record.tier,
    bytesIn: record.bytesIn,
    bytesOut: record.bytesOut,
    pixelsIn: record.pixelsIn,
    pixelsOut: record.pixelsOut,
    cpuMicros: record.cpuMicros,
    inputFormat: record.inputFormat,
    outputFormat: record.outputFormat,
    startedAt: record.startedAt,
    finishedAt: record.finishedAt,
  };
}

/** One NDJSON line, newline included. `record` must have passed `validateUsageRecord`. */
export function encodeUsageRecordLine(record: UsageRecord): string {
  return `${JSON.stringify(record)}\n`;
}

/** Parses one line (without its newline); undefined when it is not a valid usage record. */
export function decodeUsageRecordLine(line: string): UsageRecord | undefined {
  let value: unknown;
  try {
    value = JSON.parse(line);
  } catch {
    return undefined;
  }
  return usageRecordProblem(value) === undefined ? validateUsageRecord(value) : undefined;
}
