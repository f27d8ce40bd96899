import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  assertIdempotencyKey,
  maxIdempotencyKeyLength,
  parseIdempotencyKeyHeader,
} from '../../../src/api/idempotency/index.ts';
import { isPixelfleetError } from '../../../src/errors/index.ts';

const invalid = (error: unknown) =>
  isPixelfleetError(error, 'PF_ERR_INVALID_IDEMPOTENCY_KEY') && error.status === 400;

test('idempotency - keys are 1 to 255 printable ASCII characters', () => {
  assert.equal(maxIdempotencyKeyLength, 255);
  for (const key of [
    'a',
    '7f0e9c1e-3b1a-4e0f-9d55-5a8f4f0f7c21',
    'x'.repeat(255),
    'with space',
    '~!@#$%^&*()',
  ]) {
    assertIdempotencyKey(key);
  }
  for (const key of ['', 'x'.repeat(256), 'tab\t', 'nul\0', 'del\x7f', '\u00e9', '\u{1f600}', 42, null]) {
    assert.throws(() => assertIdempotencyKey(key), invalid, JSON.stringify(key));
  }
});

test('idempotency - the header is optional, validated when present, and must not repeat', () => {
  assert.equal(parseIdempotencyKeyHeader(undefined), undefined);
  assert.equal(parseIdempotencyKeyHeader('order-17'), 'order-17');
  assert.equal(parseIdempotencyKeyHeader(['order-17']), 'order-17');
  assert.throws(() => parseIdempotencyKeyHeader(['a', 'b']), invalid);
  assert.throws(() => parseIdempotencyKeyHeader([]), invalid);
  assert.throws(() => parseIdempotencyKeyHeader(''), invalid);
});
