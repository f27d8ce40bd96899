import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { after, describe, test } from 'node:test';
import { isPixelfleetError } from '../../src/errors/index.ts';
import {
  InProcessChangeBus,
  ManagementPlane,
  migrations,
  openIdentityStore,
  parseKey,
  SqliteIdentityStore,
} from '../../src/identity/index.ts';
import { identityStoreContract } from './store.contract.ts';

const root = mkdtempSync(join(tmpdir(), 'pixelfleet-identity-store-'));
let counter = 0;
const freshDir = () => join(root, `store-${++counter}`);
after(() => rmSync(root, { recursive: true, force: true }));

identityStoreContract('sqlite', async (clock) => openIdentityStore(freshDir(), { clock }));

const context = { actor: 'admin', sourceIp: '127.0.0.1' };

describe('sqlite identity store', () => {
  test('identity store - migrations apply once and reopening is idempotent', async () => {
    const dataDir = freshDir();
    const first = openIdentityStore(dataDir);
    assert.deepEqual(
      first.appliedMigrations(),
      migrations.map((migration) => migration.version),
    );
    await first.createAccount({ id: 'acct_1', name: 'One', email: null, tier: 'free' }, context);
    await first.setTier('free', { burst: 99 }, context);
    await first.close();

    const second = openIdentityStore(dataDir);
    assert.deepEqual(
      second.appliedMigrations(),
      migrations.map((migration) => migration.version),
    );
    // The seed did not run again over the operator's edit, and data survived.
    assert.equal((await second.getTier('free'))?.burst, 99);
    assert.equal((await second.getAccount('acct_1'))?.name, 'One');
    await second.close();

    const database = new DatabaseSync(join(dataDir, 'identity.db'));
    const rows = database.prepare('SELECT version FROM schema_migrations').all();
    assert.equal(rows.length, migrations.length);
    assert.equal(database.prepare('PRAGMA journal_mode').get()?.journal_mode, 'wal');
    database.close();
  });

  test('identity store - a later migration is applied to an existing database', async () => {
    const dataDir = freshDir();
    const path = join(dataDir, 'identity.db');
    const original = new SqliteIdentityStore({ path });
    await original.close();
    const extended = [
      ...migrations,
      { version: 99, name: 'test column', sql: 'ALTER TABLE accounts ADD COLUMN note TEXT' },
    ];
    const upgraded = new SqliteIdentityStore({ path, migrations: extended });
    assert.deepEqual(upgraded.appliedMigrations(), [1, 2, 99]);
    await upgraded.close();
    const again = new SqliteIdentityStore({ path, migrations: extended });
    assert.deepEqual(again.appliedMigrations(), [1, 2, 99]);
    await again.close();
  });

  test('identity store - a failing migration is rolled back and reported', async () => {
    const path = join(freshDir(), 'identity.db');
    const broken = [
      ...migrations,
      { version: 3, name: 'broken', sql: 'CREATE TABLE x (a); SELECT * FROM nowhere;' },
    ];
    assert.throws(
      () => new SqliteIdentityStore({ path, migrations: broken }),
      (error) =>
        isPixelfleetError(error, 'PF_ERR_MANAGEMENT_UNAVAILABLE') && /migration 3/.test(error.message),
    );
    const store = new SqliteIdentityStore({ path });
    assert.deepEqual(store.appliedMigrations(), [1, 2]);
    await store.close();
    const database = new DatabaseSync(path);
    assert.equal(database.prepare(`SELECT name FROM sqlite_master WHERE name = 'x'`).get(), undefined);
    database.close();
  });

  test('identity store - keys are hashed at rest: the secret is nowhere in the database files', async () => {
    const dataDir = freshDir();
    const store = openIdentityStore(dataDir);
    const management = new ManagementPlane({ store, bus: new InProcessChangeBus() });
    const account = await management.createAccount({ name: 'Hashed' }, context);
    const issued = await management.issueKey(account.id, {}, context);
    const { keyId, secret } = parseKey(issued.presentedKey)!;
    await store.close();
    // WAL files included: the secret must not be in any of them, in any encoding.
    const files = readdirSync(dataDir).filter((name) => name.startsWith('identity.db'));
    assert.ok(files.length >= 1);
    const contents = Buffer.concat(files.map((name) => readFileSync(join(dataDir, name))));
    assert.equal(contents.includes(secret), false, 'secret (hex) found in the database');
    assert.equal(
      contents.includes(Buffer.from(secret, 'hex')),
      false,
      'secret (raw bytes) found in the database',
    );
    assert.equal(contents.includes(issued.presentedKey), false);
    assert.equal(contents.includes(keyId), true, 'the key id is stored in clear');
  });

  test('identity store - the audit log refuses UPDATE and DELETE even through raw SQL', async () => {
    const dataDir = freshDir();
    const store = openIdentityStore(dataDir);
    await store.createAccount({ id: 'acct_audit', name: 'Audit', email: null, tier: 'free' }, context);
    await store.close();
    const database = new DatabaseSync(join(dataDir, 'identity.db'));
    assert.throws(() => database.exec(`UPDATE audit_log SET actor = 'someone else'`), /append-only: UPDATE/);
    assert.throws(() => database.exec('DELETE FROM audit_log'), /append-only: DELETE/);
    assert.equal(database.prepare('SELECT count(*) AS n FROM audit_log').get()?.n, 1);
    assert.equal(database.prepare('SELECT actor FROM audit_log').get()?.actor, 'admin');
    database.close();
  });

  test('identity store - SQLite failures surface as PF_ERR_MANAGEMENT_UNAVAILABLE', async () => {
    const store = openIdentityStore(freshDir());
    await store.close();
    await assert.rejects(store.getAccount('acct_1'), (error) =>
      isPixelfleetError(error, 'PF_ERR_MANAGEMENT_UNAVAILABLE'),
    );
  });

  test('identity store - rejects bad options with RangeError', () => {
    assert.throws(() => new SqliteIdentityStore({ path: '' }), RangeError);
    assert.throws(() => new SqliteIdentityStore({ path: ':memory:', busyTimeoutMs: -1 }), RangeError);
  });
});
