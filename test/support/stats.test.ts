import assert from 'node:assert/strict';
import { test } from 'node:test';
import { median, percentile, percentileOf } from './stats.ts';

test('stats - nearest-rank percentiles and medians', () => {
  const hundred = Array.from({ length: 100 }, (_, i) => i + 1);
  assert.equal(percentile(hundred, 0.99), 99);
  assert.equal(percentile(hundred, 0.5), 50);
  assert.equal(percentile(hundred, 1), 100);
  assert.equal(percentile([7], 0.999), 7);
  assert.equal(percentile([], 0.5), 0);
  assert.equal(percentileOf([3, 1, 2], 0.5), 2);
  assert.equal(median([4, 1, 3, 2]), 2.5);
  assert.equal(median([5, 1, 3]), 3);
  assert.equal(median([]), null);
});
