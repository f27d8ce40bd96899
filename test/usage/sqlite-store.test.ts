import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { isPixelfleetError } from '../../src/errors/index.ts';
import { SqliteUsageStore } from '../../src/usage/index.ts';
import { type TempDir, tempDir } from '../support/index.ts';
import { usageRecord } from './records.ts';
import { usageStoreContract } from './store.contract.ts';

let root: TempDir;
let counter = 0;
before(async () => {
  root = await tempDir(undefined, 'pixelfleet-usage-store-');
});
after(() => root.remove());

usageStoreContract(
  'sqlite',
  async () => new SqliteUsageStore({ path: join(root.path, `store-${++counter}.db`) }),
);

test('usage store - sqlite keeps counted ids and sums across reopening', async () => {
  const path = join(root.path, 'reopen.db');
  const first = new SqliteUsageStore({ path });
  await first.applyBatch([usageRecord({ recordId: 'job-1' })]);
  await first.close();
  const second = new SqliteUsageStore({ path });
  try {
    assert.deepEqual(await second.applyBatch([usageRecord({ recordId: 'job-1' })]), {
      inserted: 0,
      duplicates: 1,
    });
    assert.equal((await second.totals('acct-acme', 0, Date.UTC(2030, 0))).conversions, 1);
  } finally {
    await second.close();
  }
});

test('usage store - sqlite rejects bad options and use after close', async () => {
  assert.throws(() => new SqliteUsageStore({ path: '' }), RangeError);
  assert.throws(() => new SqliteUsageStore({ path: ':memory:', busyTimeoutMs: -1 }), RangeError);
  const store = new SqliteUsageStore({ path: ':memory:' });
  await store.close();
  await assert.rejects(store.hasRecord('x'), (error) =>
    isPixelfleetError(error, 'PF_ERR_STORAGE_UNAVAILABLE'),
  );
});
