import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ChangeFeed } from '../../src/identity/index.ts';

const revoked = (keyId: string) => ({
  type: 'key.revoked' as const,
  at: 0,
  keyId,
  accountId: 'a',
  reason: null,
});

test('change feed - a reader without a cursor starts at the tail', () => {
  const feed = new ChangeFeed({ incarnation: 'i1' });
  feed.append(revoked('k1'));
  assert.deepEqual(feed.read(undefined), { incarnation: 'i1', events: [], next: 1, gap: false });
});

test('change feed - a reader gets every event after its cursor, in order', () => {
  const feed = new ChangeFeed({ incarnation: 'i1' });
  for (const id of ['k1', 'k2', 'k3']) feed.append(revoked(id));
  const page = feed.read(1, 'i1');
  assert.equal(page.gap, false);
  assert.deepEqual(
    page.events.map((numbered) => [numbered.seq, (numbered.event as { keyId: string }).keyId]),
    [
      [2, 'k2'],
      [3, 'k3'],
    ],
  );
  assert.equal(page.next, 3);
  assert.deepEqual(feed.read(3, 'i1').events, []);
});

test('change feed - a cursor that fell out of the bounded ring is a gap, never a silent skip', () => {
  const feed = new ChangeFeed({ incarnation: 'i1', capacity: 2 });
  for (const id of ['k1', 'k2', 'k3', 'k4']) feed.append(revoked(id));
  assert.equal(feed.read(1, 'i1').gap, true);
  assert.equal(feed.read(1, 'i1').next, 4);
  // Oldest kept is 3: a reader at 2 needs 3 next, which is there.
  assert.deepEqual(
    feed.read(2, 'i1').events.map((numbered) => numbered.seq),
    [3, 4],
  );
});

test('change feed - another incarnation or an impossible cursor is a gap', () => {
  const feed = new ChangeFeed({ incarnation: 'i2' });
  feed.append(revoked('k1'));
  assert.equal(feed.read(0, 'i1').gap, true);
  assert.equal(feed.read(5, 'i2').gap, true);
  assert.equal(feed.read(-1, 'i2').gap, true);
  assert.equal(feed.read(0, 'i2').gap, false);
});

test('change feed - a long poll wakes on the next append and times out empty', async () => {
  const feed = new ChangeFeed({ incarnation: 'i1' });
  const waiting = feed.wait(0, 'i1', 5000);
  assert.equal(feed.waiting, 1);
  feed.append(revoked('k1'));
  const page = await waiting;
  assert.equal(page.events.length, 1);
  assert.equal(feed.waiting, 0);
  const empty = await feed.wait(1, 'i1', 20);
  assert.deepEqual(empty.events, []);
  assert.equal(empty.gap, false);
});

test('change feed - rejects a bad capacity', () => {
  assert.throws(() => new ChangeFeed({ capacity: 0 }), RangeError);
});
