import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { after, describe, test } from 'node:test';
import { Worker } from 'node:worker_threads';
import { isPixelfleetError } from '../../src/errors/index.ts';
import {
  appliedMigrations,
  applyMigrations,
  openSqliteDatabase,
  type SqliteMigration,
} from '../../src/storage/index.ts';

const root = mkdtempSync(join(tmpdir(), 'pixelfleet-sqlite-'));
let counter = 0;
const freshPath = () => join(root, `case-${++counter}`, 'nested', 'test.db');
after(() => rmSync(root, { recursive: true, force: true }));

const v1: SqliteMigration = {
  version: 1,
  name: 'widgets',
  sql: 'CREATE TABLE widgets (id INTEGER PRIMARY KEY)',
};
const v2: SqliteMigration = {
  version: 2,
  name: 'widget names',
  sql: 'ALTER TABLE widgets ADD COLUMN name TEXT',
};
const v3: SqliteMigration = {
  version: 3,
  name: 'gadgets',
  sql: `CREATE TABLE gadgets (id INTEGER PRIMARY KEY); INSERT INTO widgets (id, name) VALUES (1, 'seed');`,
};
const options = { component: 'test store', clock: () => 1_750_000_000_000 };

function pragma(database: DatabaseSync, name: string): unknown {
  const row = database.prepare(`PRAGMA ${name}`).get();
  return row === undefined ? undefined : Object.values(row)[0];
}

function tables(database: DatabaseSync): string[] {
  return database
    .prepare(`SELECT name FROM sqlite_schema WHERE type = 'table' ORDER BY name`)
    .all()
    .map((row) => row.name as string);
}

describe('sqlite storage', () => {
  test('sqlite - opens in WAL mode with the chosen durability, creating the directory', () => {
    const path = freshPath();
    const database = openSqliteDatabase({ path, synchronous: 'NORMAL', autoVacuum: 'INCREMENTAL' });
    try {
      assert.equal(pragma(database, 'journal_mode'), 'wal');
      assert.equal(pragma(database, 'synchronous'), 1, 'NORMAL');
      assert.equal(pragma(database, 'auto_vacuum'), 2, 'INCREMENTAL');
      assert.equal(pragma(database, 'busy_timeout'), 5_000);
      assert.equal(pragma(database, 'foreign_keys'), 1);
    } finally {
      database.close();
    }
    const durable = openSqliteDatabase({ path: freshPath(), busyTimeoutMs: 250 });
    try {
      assert.equal(pragma(durable, 'synchronous'), 2, 'FULL by default');
      assert.equal(pragma(durable, 'auto_vacuum'), 0);
      assert.equal(pragma(durable, 'busy_timeout'), 250);
    } finally {
      durable.close();
    }
  });

  test('sqlite - rejects bad options with RangeError and unopenable files with PF_ERR_STORAGE_UNAVAILABLE', () => {
    assert.throws(() => openSqliteDatabase({ path: '' }), RangeError);
    assert.throws(() => openSqliteDatabase({ path: ':memory:', busyTimeoutMs: -1 }), RangeError);
    assert.throws(() => openSqliteDatabase({ path: ':memory:', busyTimeoutMs: 0.5 }), RangeError);
    assert.throws(() => openSqliteDatabase({ path: ':memory:', synchronous: 'OFF' as 'FULL' }), RangeError);
    assert.throws(
      () => openSqliteDatabase({ path: ':memory:', autoVacuum: 'FULL' as 'INCREMENTAL' }),
      RangeError,
    );
    const blocker = join(root, `blocker-${++counter}`);
    writeFileSync(blocker, 'a file where a directory should be');
    assert.throws(
      () => openSqliteDatabase({ path: join(blocker, 'test.db') }),
      (error) => isPixelfleetError(error, 'PF_ERR_STORAGE_UNAVAILABLE') && error.message.includes(blocker),
    );
  });

  test('sqlite - migrations apply in order once, with history and version; reopening is idempotent', () => {
    const path = freshPath();
    const first = openSqliteDatabase({ path });
    assert.deepEqual(applyMigrations(first, [v1, v2], options), [1, 2]);
    first.prepare(`INSERT INTO widgets (id, name) VALUES (7, 'kept')`).run();
    assert.deepEqual(appliedMigrations(first), [1, 2]);
    assert.equal(pragma(first, 'user_version'), 2);
    assert.deepEqual(
      first.prepare('SELECT version, name, applied_at FROM schema_migrations ORDER BY version').all(),
      [
        { version: 1, name: 'widgets', applied_at: 1_750_000_000_000 },
        { version: 2, name: 'widget names', applied_at: 1_750_000_000_000 },
      ].map((row) => ({ ...row, __proto__: null })),
    );
    first.close();

    const again = openSqliteDatabase({ path });
    assert.deepEqual(applyMigrations(again, [v1, v2], options), [], 'nothing to do on reopen');
    assert.deepEqual(applyMigrations(again, [v1, v2], options), []);
    assert.deepEqual(applyMigrations(again, [v1, v2, v3], options), [3], 'only the new one');
    assert.deepEqual(appliedMigrations(again), [1, 2, 3]);
    assert.equal(pragma(again, 'user_version'), 3);
    assert.deepEqual(
      again
        .prepare('SELECT id, name FROM widgets ORDER BY id')
        .all()
        .map((row) => row.name),
      ['seed', 'kept'],
    );
    again.close();
  });

  test('sqlite - a failing migration rolls back every pending one and names the migration and file', () => {
    const path = freshPath();
    const database = openSqliteDatabase({ path });
    try {
      const broken: SqliteMigration = {
        version: 3,
        name: 'broken',
        sql: 'CREATE TABLE x (a); SELECT * FROM nowhere;',
      };
      assert.throws(
        () => applyMigrations(database, [v1, v2, broken], options),
        (error) =>
          isPixelfleetError(error, 'PF_ERR_STORAGE_UNAVAILABLE') &&
          /test store migration 3 \(broken\)/.test(error.message) &&
          error.message.includes(path) &&
          error.cause instanceof Error,
      );
      assert.equal(database.isTransaction, false);
      assert.deepEqual(tables(database), [], 'migrations 1 and 2 were rolled back with it');
      assert.equal(pragma(database, 'user_version'), 0);
      assert.deepEqual(applyMigrations(database, [v1, v2], options), [1, 2], 'the file is still usable');
    } finally {
      database.close();
    }
  });

  test('sqlite - refuses a database newer than the code, naming the file, and leaves it untouched', () => {
    const path = freshPath();
    const database = openSqliteDatabase({ path });
    applyMigrations(database, [v1, v2, v3], options);
    const refused = (error: unknown) =>
      isPixelfleetError(error, 'PF_ERR_STORAGE_CORRUPT') &&
      error.message.includes(path) &&
      /test store schema version 3, newer than the 2/.test(error.message) &&
      error.extensions.version === 3 &&
      error.extensions.supportedVersion === 2;
    assert.throws(() => applyMigrations(database, [v1, v2], options), refused);
    // Newer history without the version stamp (a file from the table-only era) is refused too.
    database.exec('PRAGMA user_version = 0');
    assert.throws(() => applyMigrations(database, [v1, v2], options), refused);
    assert.deepEqual(appliedMigrations(database), [1, 2, 3]);
    assert.equal(database.isTransaction, false);
    database.close();
  });

  test('sqlite - files stamped by either older mechanism open without re-running their migrations', () => {
    // A file versioned only by PRAGMA user_version (the idempotency store's old way).
    const stampedPath = freshPath();
    const stamped = openSqliteDatabase({ path: stampedPath });
    stamped.exec(`${v1.sql}; PRAGMA user_version = 1;`);
    assert.deepEqual(applyMigrations(stamped, [v1, v2], options), [2]);
    assert.deepEqual(appliedMigrations(stamped), [2]);
    stamped.close();

    // A file versioned only by a schema_migrations table (the identity store's old way).
    const tablePath = freshPath();
    const tabled = openSqliteDatabase({ path: tablePath });
    tabled.exec(`CREATE TABLE schema_migrations (
      version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at INTEGER NOT NULL) STRICT;
      ${v1.sql}; INSERT INTO schema_migrations VALUES (1, 'widgets', 0);`);
    assert.deepEqual(applyMigrations(tabled, [v1, v2], options), [2]);
    assert.deepEqual(appliedMigrations(tabled), [1, 2]);
    assert.equal(pragma(tabled, 'user_version'), 2);
    tabled.close();
  });

  test('sqlite - threads racing to open a fresh file apply each migration exactly once', async () => {
    const path = freshPath();
    const threads = 4;
    const start = new SharedArrayBuffer(8);
    const signal = new Int32Array(start);
    // Each thread opens, waits until all have opened, then migrates at the same moment.
    const source = `
      const { parentPort, workerData } = require('node:worker_threads');
      import(workerData.module).then(({ openSqliteDatabase, applyMigrations }) => {
        const signal = new Int32Array(workerData.start);
        const database = openSqliteDatabase({ path: workerData.path, busyTimeoutMs: 30000 });
        Atomics.add(signal, 1, 1);
        Atomics.wait(signal, 0, 0);
        const applied = applyMigrations(database, workerData.migrations, { component: 'race' });
        database.close();
        parentPort.postMessage(applied);
      });
    `;
    const module = new URL('../../src/storage/sqlite.ts', import.meta.url).href;
    const workers = Array.from(
      { length: threads },
      () => new Worker(source, { eval: true, workerData: { module, path, start, migrations: [v1, v2, v3] } }),
    );
    try {
      const reports = workers.map(
        (worker) =>
          new Promise<number[]>((resolve, reject) => {
            worker.once('message', resolve);
            worker.once('error', reject);
          }),
      );
      const deadline = Date.now() + 30_000;
      while (Atomics.load(signal, 1) < threads) {
        assert.ok(Date.now() < deadline, 'workers did not start');
        await new Promise((resolve) => setTimeout(resolve, 10));
      }
      Atomics.store(signal, 0, 1);
      Atomics.notify(signal, 0);
      const applied = (await Promise.all(reports)).flat().sort();
      assert.deepEqual(applied, [1, 2, 3]);
      const database = new DatabaseSync(path, { readOnly: true });
      assert.deepEqual(
        database
          .prepare('SELECT version FROM schema_migrations ORDER BY version')
          .all()
          .map((row) => row.version),
        [1, 2, 3],
      );
      assert.equal(pragma(database, 'user_version'), 3);
      database.close();
    } finally {
      await Promise.all(workers.map((worker) => worker.terminate()));
    }
  });

  test('sqlite - rejects a migration list out of order or unnamed with RangeError', () => {
    const database = openSqliteDatabase({ path: ':memory:' });
    try {
      assert.throws(() => applyMigrations(database, [v2, v1], options), RangeError);
      assert.throws(() => applyMigrations(database, [v1, { ...v2, version: 1 }], options), RangeError);
      assert.throws(() => applyMigrations(database, [{ ...v1, version: 0 }], options), RangeError);
      assert.throws(() => applyMigrations(database, [{ ...v1, version: 1.5 }], options), RangeError);
      assert.throws(() => applyMigrations(database, [{ ...v1, name: '' }], options), RangeError);
      assert.deepEqual(tables(database), []);
      assert.deepEqual(applyMigrations(database, [v1], options), [1], 'in-memory databases migrate too');
    } finally {
      database.close();
    }
  });
});
