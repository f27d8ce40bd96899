import assert from 'node:assert/strict';
import { test } from 'node:test';
import { bucketStart, minuteStart, monthStart, nextMonthStart } from '../../src/usage/index.ts';

const iso = (epochMs: number) => new Date(epochMs).toISOString();

test('usage - buckets are calendar aligned in UTC', () => {
  const at = Date.UTC(2028, 1, 29, 23, 59, 59, 999); // leap day, last millisecond
  assert.equal(iso(minuteStart(at)), '2028-02-29T23:59:00.000Z');
  assert.equal(iso(bucketStart(at, 'minute')), '2028-02-29T23:59:00.000Z');
  assert.equal(iso(bucketStart(at, 'hour')), '2028-02-29T23:00:00.000Z');
  assert.equal(iso(bucketStart(at, 'day')), '2028-02-29T00:00:00.000Z');
  assert.equal(iso(bucketStart(at, 'month')), '2028-02-01T00:00:00.000Z');
  assert.equal(iso(nextMonthStart(at)), '2028-03-01T00:00:00.000Z');
  assert.equal(iso(monthStart(Date.UTC(2026, 11, 31, 23, 59))), '2026-12-01T00:00:00.000Z');
  assert.equal(iso(nextMonthStart(Date.UTC(2026, 11, 31, 23, 59))), '2027-01-01T00:00:00.000Z');
  assert.equal(bucketStart(0, 'month'), 0);
  assert.equal(iso(bucketStart(Date.UTC(2026, 0, 1), 'hour')), '2026-01-01T00:00:00.000Z');
});
