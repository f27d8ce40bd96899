/**
 * Argument checks shared by every `JobQueue` implementation, run before a command is built, so a
 * bad call fails at the caller (`RangeError`/`TypeError`) instead of being logged or replicated.
 */
import type { ClaimRequest, EnqueueRequest, NackOptions } from './types.ts';

const MAX_ID_LENGTH = 512;

export function validateEnqueue(request: EnqueueRequest): void {
  checkId('id', request?.id);
  checkId('account', request.account);
  checkObject('payload', request.payload);
  if (
    request.maxAttempts !== undefined &&
    !(Number.isInteger(request.maxAttempts) && request.maxAttempts >= 1)
  ) {
    throw new RangeError(`maxAttempts must be an integer >= 1: got ${request.maxAttempts}`);
  }
  if (request.deadline !== undefined && !Number.isFinite(request.deadline)) {
    throw new RangeError(`deadline must be epoch milliseconds: got ${request.deadline}`);
  }
  if (request.retentionMs !== undefined) checkDuration('retentionMs', request.retentionMs, true);
  if (request.durable !== undefined && typeof request.durable !== 'boolean') {
    throw new TypeError(`durable must be a boolean: got ${request.durable}`);
  }
}

export function validateClaim(request: ClaimRequest): void {
  if (typeof request?.consumer !== 'string') throw new TypeError('consumer must be a string');
  checkDuration('leaseMs', request.leaseMs, false);
  if (request.waitMs !== undefined) checkDuration('waitMs', request.waitMs, true);
}

export function validateConsumer(consumer: string): void {
  checkId('consumer', consumer);
}

export function validateFenced(id: string, leaseId: string): void {
  checkId('id', id);
  if (typeof leaseId !== 'string' || leaseId === '')
    throw new TypeError('leaseId must be a non-empty string');
}

export function validateNack(options: NackOptions): void {
  if (typeof options?.reason !== 'string') throw new TypeError('nack reason must be a string');
  if (typeof options.retry !== 'boolean') throw new TypeError('nack retry must be a boolean');
  if (options.delayMs !== undefined) checkDuration('delayMs', options.delayMs, true);
}

export function validateOutcome(outcome: unknown): void {
  if (outcome !== undefined) checkObject('outcome', outcome);
}

export function checkDuration(name: string, value: unknown, zeroAllowed: boolean): void {
  if (typeof value !== 'number' || !Number.isFinite(value) || value < 0 || (!zeroAllowed && value === 0)) {
    throw new RangeError(
      `${name} must be a finite number of milliseconds ${zeroAllowed ? '>= 0' : '> 0'}: got ${value}`,
    );
  }
}

function checkId(name: string, value: unknown): void {
  if (typeof value !== 'string' || value === '' || value.length > MAX_ID_LENGTH) {
    throw new TypeError(`${name} must be a non-empty string of at most ${MAX_ID_LENGTH} characters`);
  }
}

function checkObject(name: string, value: unknown): void {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new TypeError(`${name} must be a JSON object`);
  }
}
