/**
 * Argument checks every idempotency store makes (SQLite, Redis): bad options and malformed
 * responses are programming errors, so they throw `RangeError` before anything is stored.
 */
import type { StoredResponse } from './types.ts';

export function positiveInteger(name: string, value: number): number {
  if (!Number.isSafeInteger(value) || value <= 0) {
    throw new RangeError(`${name} must be a positive integer, got ${value}`);
  }
  return value;
}

export function nonNegativeInteger(name: string, value: number): number {
  if (!Number.isSafeInteger(value) || value < 0) {
    throw new RangeError(`${name} must be a non-negative integer, got ${value}`);
  }
  return value;
}

export function assertNonEmpty(name: string, value: unknown): asserts value is string {
  if (typeof value !== 'string' || value === '') throw new RangeError(`${name} must be a non-empty string`);
}

export function assertTime(name: string, value: number): void {
  if (!Number.isFinite(value)) throw new RangeError(`${name} must be a finite epoch-ms time, got ${value}`);
}

export function assertResponse(response: StoredResponse): void {
  if (!Number.isInteger(response.status) || response.status < 100 || response.status > 599) {
    throw new RangeError(`response.status must be an HTTP status, got ${response.status}`);
  }
  if (!(response.body instanceof Uint8Array)) throw new RangeError('response.body must be a Buffer');
  for (const [name, value] of Object.entries(response.headers)) {
    if (typeof value !== 'string') throw new RangeError(`response header ${name} must be a string`);
  }
}
