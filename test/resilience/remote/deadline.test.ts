import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { deadlineHeader, deadlineHeaders, readDeadline } from '../../../src/resilience/remote/index.ts';

test('deadline - round trip through the header across clocks that disagree', () => {
  fc.assert(
    fc.property(
      fc.integer({ min: 0, max: 2 ** 40 }),
      fc.integer({ min: 0, max: 3_600_000 }),
      fc.integer({ min: -(2 ** 30), max: 2 ** 30 }),
      (senderNow, remainingMs, skew) => {
        const headers = deadlineHeaders(senderNow + remainingMs, senderNow);
        const receiverNow = senderNow + skew;
        // The receiver sees the same remaining time on its own clock, whatever the skew.
        assert.equal(readDeadline(headers, receiverNow), receiverNow + remainingMs);
      },
    ),
    { seed: 20_250_505, numRuns: 300 },
  );
});

test('deadline - the header is lower case, relative, whole milliseconds and never negative', () => {
  assert.equal(deadlineHeader, 'pixelfleet-deadline');
  assert.deepEqual(deadlineHeaders(1_000_740.9, 1_000_000), { 'pixelfleet-deadline': '740' });
  assert.deepEqual(deadlineHeaders(5, 10), { 'pixelfleet-deadline': '0' });
});

test('deadline - absent or invalid headers give no deadline', () => {
  for (const value of [undefined, '', 'soon', '-5', '1.5', '1e3', '0x10', '99999999999']) {
    assert.equal(readDeadline({ [deadlineHeader]: value }, 1000), undefined, `value ${value}`);
  }
  assert.equal(readDeadline({}, 1000), undefined);
  assert.equal(readDeadline({ [deadlineHeader]: [' 250 ', '10'] }, 1000), 1250);
});
