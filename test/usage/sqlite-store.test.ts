import assert from 'node:assert/strict';
import { join } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
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

test('usage store - sqlite refuses a file from a newer build and leaves it as it was', async () => {
  const path = join(root.path, 'newer.db');
  const first = new SqliteUsageStore({ path });
  await first.applyBatch([usageRecord({ recordId: 'job-1' })]);
  await first.close();
  const database = new DatabaseSync(path);
  database.exec('PRAGMA user_version = 2');
  database.close();
  assert.throws(
    () => new SqliteUsageStore({ path }),
    (error) => isPixelfleetError(error, 'PF_ERR_STORAGE_CORRUPT') && error.message.includes(path),
  );
  const check = new DatabaseSync(path, { readOnly: true });
  assert.equal(check.prepare('SELECT count(*) AS n FROM usage_records').get()?.n, 1);
  check.close();
});

test('usage store - sqlite opens a file written before the schema was versioned', async () => {
  const path = join(root.path, 'unversioned.db');
  const first = new SqliteUsageStore({ path });
  await first.applyBatch([usageRecord({ recordId: 'job-1' })]);
  await first.close();
  // What the store wrote before it used the migration runner: the tables, no version.
  const database = new DatabaseSync(path);
  database.exec('DROP TABLE schema_migrations; PRAGMA user_version = 0;');
  database.close();
  const second = new SqliteUsageStore({ path });
  try {
    assert.equal((await second.totals('acct-acme', 0, Date.UTC(2030, 0))).conversions, 1);
  } finally {
    await second.close();
  }
});
