import assert from 'node:assert/strict';
import { DatabaseSync } from 'node:sqlite';
import { after, before, describe, test } from 'node:test';
import pg from 'pg';
import { isPixelfleetError } from '../../src/errors/index.ts';
import { migrations } from '../../src/identity/index.ts';
import {
  PostgresIdentityStore,
  type PostgresIdentityStoreOptions,
  postgresMigrations,
} from '../../src/identity/postgres/index.ts';
import { type PostgresServer, startPostgres } from '../support/postgres-server.ts';
import { identityStoreContract } from './store.contract.ts';

let server: PostgresServer;
let counter = 0;
const context = { actor: 'admin', sourceIp: '127.0.0.1' };

before(async () => {
  server = await startPostgres();
});
after(() => server.stop());

/** Each store gets its own empty schema in the one test server. */
function freshSchema(): string {
  return `store_${process.pid}_${++counter}`;
}

function openStore(options: Partial<PostgresIdentityStoreOptions> = {}): Promise<PostgresIdentityStore> {
  return PostgresIdentityStore.open({ url: server.url, schema: freshSchema(), poolSize: 4, ...options });
}

async function withAdmin<T>(work: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: server.url });
  await client.connect();
  try {
    return await work(client);
  } finally {
    await client.end();
  }
}

identityStoreContract('postgres', (clock) => openStore({ clock }));

interface ColumnShape {
  table: string;
  column: string;
  nullable: boolean;
}

describe('postgres identity store', () => {
  test('identity store - the PostgreSQL and SQLite migration lists define the same versions', () => {
    assert.deepEqual(
      postgresMigrations.map(({ version, name }) => ({ version, name })),
      migrations.map(({ version, name }) => ({ version, name })),
    );
  });

  test('identity store - the PostgreSQL and SQLite schemas have the same tables and columns', async () => {
    const sqlite = new DatabaseSync(':memory:');
    for (const migration of migrations) sqlite.exec(migration.sql);
    const sqliteTables = sqlite
      .prepare(
        `SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name`,
      )
      .all()
      .map((row) => row.name as string);
    const sqliteColumns: ColumnShape[] = sqliteTables.flatMap((table) =>
      sqlite
        .prepare(`SELECT name, "notnull", pk FROM pragma_table_info(?)`)
        .all(table)
        .map((row) => ({
          table,
          column: row.name as string,
          // SQLite lets a non-integer primary key be NULL unless declared NOT NULL; PostgreSQL never.
          nullable: row.notnull === 0 && row.pk === 0,
        })),
    );
    const sqliteTriggers = sqlite
      .prepare(`SELECT name FROM sqlite_master WHERE type = 'trigger' ORDER BY name`)
      .all()
      .map((row) => row.name as string);
    sqlite.close();

    const schema = freshSchema();
    const store = await openStore({ schema });
    await store.close();
    const { postgresColumns, postgresTriggers } = await withAdmin(async (client) => {
      const columns = await client.query(
        `SELECT table_name, column_name, is_nullable FROM information_schema.columns
         WHERE table_schema = $1 AND table_name <> 'schema_migrations' ORDER BY table_name, ordinal_position`,
        [schema],
      );
      const triggers = await client.query(
        `SELECT DISTINCT trigger_name FROM information_schema.triggers WHERE trigger_schema = $1 ORDER BY 1`,
        [schema],
      );
      return {
        postgresColumns: columns.rows.map((row) => ({
          table: row.table_name as string,
          column: row.column_name as string,
          nullable: row.is_nullable === 'YES',
        })),
        postgresTriggers: triggers.rows.map((row) => row.trigger_name as string),
      };
    });
    const byTable = (shapes: ColumnShape[]) =>
      [...shapes].sort((a, b) => a.table.localeCompare(b.table) || a.column.localeCompare(b.column));
    assert.deepEqual(byTable(postgresColumns), byTable(sqliteColumns));
    // TRUNCATE has no SQLite counterpart; the row triggers match by name.
    assert.deepEqual(
      postgresTriggers.filter((name) => name !== 'audit_log_no_truncate'),
      sqliteTriggers,
    );
  });

  test('identity store - concurrent starters migrate once under the advisory lock', async () => {
    const schema = freshSchema();
    const stores = await Promise.all(Array.from({ length: 5 }, () => openStore({ schema, poolSize: 2 })));
    for (const store of stores) {
      assert.deepEqual(
        await store.appliedMigrations(),
        postgresMigrations.map((migration) => migration.version),
      );
    }
    const tiers = await stores[0]!.listTiers();
    assert.equal(tiers.length, 4);
    await Promise.all(stores.map((store) => store.close()));
    await withAdmin(async (client) => {
      const history = await client.query(`SELECT version FROM ${schema}.schema_migrations ORDER BY version`);
      assert.deepEqual(
        history.rows.map((row) => row.version),
        [1, 2],
      );
    });
  });

  test('identity store - reopening keeps data and operator edits; later migrations apply', async () => {
    const schema = freshSchema();
    const first = await openStore({ schema });
    await first.createAccount({ id: 'acct_1', name: 'One', email: null, tier: 'free' }, context);
    await first.setTier('free', { burst: 99 }, context);
    await first.close();
    const extended = [
      ...postgresMigrations,
      { version: 99, name: 'test column', sql: 'ALTER TABLE accounts ADD COLUMN note TEXT' },
    ];
    const second = await openStore({ schema, migrations: extended });
    assert.deepEqual(await second.appliedMigrations(), [1, 2, 99]);
    assert.equal((await second.getTier('free'))?.burst, 99);
    assert.equal((await second.getAccount('acct_1'))?.name, 'One');
    await second.close();
    // A build that knows only up to version 2 refuses the newer schema.
    await assert.rejects(openStore({ schema }), (error) =>
      isPixelfleetError(error, 'PF_ERR_STORAGE_CORRUPT'),
    );
  });

  test('identity store - a failing migration is rolled back entirely and reported', async () => {
    const schema = freshSchema();
    const broken = [
      ...postgresMigrations,
      { version: 3, name: 'broken', sql: 'CREATE TABLE x (a INTEGER); SELECT * FROM nowhere;' },
    ];
    await assert.rejects(
      openStore({ schema, migrations: broken }),
      (error) =>
        isPixelfleetError(error, 'PF_ERR_MANAGEMENT_UNAVAILABLE') && /migration 3/.test(error.message),
    );
    // Transactional DDL: not even versions 1 and 2 (applied in the same transaction) remain.
    await withAdmin(async (client) => {
      const tables = await client.query(
        'SELECT table_name FROM information_schema.tables WHERE table_schema = $1',
        [schema],
      );
      assert.deepEqual(tables.rows, []);
    });
    const store = await openStore({ schema });
    assert.deepEqual(await store.appliedMigrations(), [1, 2]);
    await store.close();
  });

  test('identity store - the audit log refuses UPDATE, DELETE and TRUNCATE even through raw SQL', async () => {
    const schema = freshSchema();
    const store = await openStore({ schema });
    await store.createAccount({ id: 'acct_audit', name: 'Audit', email: null, tier: 'free' }, context);
    await store.close();
    await withAdmin(async (client) => {
      await assert.rejects(
        client.query(`UPDATE ${schema}.audit_log SET actor = 'someone else'`),
        /append-only: UPDATE/,
      );
      await assert.rejects(client.query(`DELETE FROM ${schema}.audit_log`), /append-only: DELETE/);
      await assert.rejects(client.query(`TRUNCATE ${schema}.audit_log`), /append-only: TRUNCATE/);
      const rows = await client.query(`SELECT actor FROM ${schema}.audit_log`);
      assert.deepEqual(rows.rows, [{ actor: 'admin' }]);
    });
  });

  test('identity store - keys are hashed at rest: only the 32-byte digest is stored', async () => {
    const schema = freshSchema();
    const store = await openStore({ schema });
    await store.createAccount({ id: 'acct_h', name: 'H', email: null, tier: 'free' }, context);
    const secretHash = new Uint8Array(32).fill(7);
    await store.insertKey(
      { id: 'h1', accountId: 'acct_h', name: null, scopes: ['images:write'], secretHash, expiresAt: null },
      { maxLiveKeys: 2 },
      context,
    );
    await assert.rejects(
      store.insertKey(
        {
          id: 'h2',
          accountId: 'acct_h',
          name: null,
          scopes: [],
          secretHash: new Uint8Array(31),
          expiresAt: null,
        },
        { maxLiveKeys: 2 },
        context,
      ),
      RangeError,
    );
    await store.close();
    await withAdmin(async (client) => {
      const rows = await client.query(`SELECT secret_hash FROM ${schema}.api_keys`);
      assert.deepEqual(rows.rows[0]?.secret_hash, Buffer.from(secretHash));
    });
  });

  test('identity store - concurrent issues on several connections never exceed the live-key limit', async () => {
    const schema = freshSchema();
    const stores = await Promise.all([openStore({ schema }), openStore({ schema }), openStore({ schema })]);
    await stores[0]!.createAccount({ id: 'acct_race', name: 'Race', email: null, tier: 'free' }, context);
    const attempts = Array.from({ length: 12 }, (_, index) =>
      stores[index % stores.length]!.insertKey(
        {
          id: `race${index}`,
          accountId: 'acct_race',
          name: null,
          scopes: ['images:write'],
          secretHash: new Uint8Array(32).fill(index),
          expiresAt: null,
        },
        { maxLiveKeys: 2 },
        context,
      ),
    );
    const outcomes = await Promise.allSettled(attempts);
    const issued = outcomes.filter((outcome) => outcome.status === 'fulfilled');
    const refused = outcomes.filter(
      (outcome) =>
        outcome.status === 'rejected' && isPixelfleetError(outcome.reason, 'PF_ERR_KEY_LIMIT_REACHED'),
    );
    assert.equal(issued.length, 2);
    assert.equal(refused.length, 10);
    assert.equal((await stores[1]!.listKeys('acct_race')).length, 2);
    assert.equal((await stores[2]!.queryAudit({ action: 'key.issue' })).length, 2);
    await Promise.all(stores.map((store) => store.close()));
  });

  test('identity store - an unreachable server fails fast with PF_ERR_MANAGEMENT_UNAVAILABLE', async () => {
    const url = new URL(server.url);
    url.port = '1'; // nothing listens on port 1: connection refused
    const started = performance.now();
    await assert.rejects(
      PostgresIdentityStore.open({ url: url.toString(), connectTimeoutMs: 2_000 }),
      (error) => isPixelfleetError(error, 'PF_ERR_MANAGEMENT_UNAVAILABLE') && error.status === 503,
    );
    assert.ok(performance.now() - started < 10_000);
    const wrongPassword = new URL(server.url);
    wrongPassword.password = 'not-the-password';
    await assert.rejects(PostgresIdentityStore.open({ url: wrongPassword.toString() }), (error) =>
      isPixelfleetError(error, 'PF_ERR_MANAGEMENT_UNAVAILABLE'),
    );
    const store = await openStore();
    await store.close();
    await assert.rejects(store.getAccount('acct_1'), (error) =>
      isPixelfleetError(error, 'PF_ERR_MANAGEMENT_UNAVAILABLE'),
    );
  });

  test('identity store - rejects bad options with RangeError', async () => {
    await assert.rejects(PostgresIdentityStore.open({ url: 'mysql://x' }), RangeError);
    await assert.rejects(PostgresIdentityStore.open({ url: server.url, poolSize: 0 }), RangeError);
    await assert.rejects(PostgresIdentityStore.open({ url: server.url, schema: 'Bad-Name' }), RangeError);
    await assert.rejects(PostgresIdentityStore.open({ url: server.url, queryTimeoutMs: -1 }), RangeError);
    await assert.rejects(PostgresIdentityStore.open({ url: server.url, changeChannel: 'x y' }), RangeError);
  });
});
