import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import pg from 'pg';
import { isPixelfleetError } from '../../src/errors/index.ts';
import { type ChangeEvent, EdgeCache, ManagementPlane } from '../../src/identity/index.ts';
import {
  defaultChangeChannel,
  openPostgresIdentity,
  PostgresChangeBus,
  type PostgresIdentity,
} from '../../src/identity/postgres/index.ts';
import { type PostgresServer, startPostgres } from '../support/postgres-server.ts';
import { percentileOf } from '../support/stats.ts';
import { sleep, waitFor } from '../support/wait-for.ts';

let server: PostgresServer;
let counter = 0;
const context = { actor: 'admin', sourceIp: '127.0.0.1' };
const opened: PostgresIdentity[] = [];

before(async () => {
  server = await startPostgres();
});
after(async () => {
  await Promise.all(opened.map((identity) => identity.close()));
  await server.stop();
});

function freshSchema(): string {
  return `bus_${process.pid}_${++counter}`;
}

async function open(schema: string, onResync?: () => void): Promise<PostgresIdentity> {
  const identity = await openPostgresIdentity({
    url: server.url,
    schema,
    poolSize: 3,
    connectTimeoutMs: 2_000,
    queryTimeoutMs: 2_000,
    heartbeatIntervalMs: 200,
    maxReconnectDelayMs: 300,
    onResync,
    onError: () => {},
  });
  opened.push(identity);
  return identity;
}

function recorder(identity: PostgresIdentity): ChangeEvent[] {
  const events: ChangeEvent[] = [];
  identity.bus.subscribe((event) => events.push(event));
  return events;
}

describe('postgres change bus', () => {
  test('identity changes - every api server hears each committed change, in commit order', async () => {
    const schema = freshSchema();
    const writer = await open(schema);
    const reader = await open(schema);
    const heardByWriter = recorder(writer);
    const heardByReader = recorder(reader);
    const management = new ManagementPlane({ store: writer.store, bus: writer.bus });

    const account = await management.createAccount({ name: 'Bus' }, context);
    const issued = await management.issueKey(account.id, {}, context);
    await management.revokeKey(issued.key.id, 'leaked', context);
    await management.changeAccountTier(account.id, 'pro', context);
    await management.setTier('pro', { burst: 250 }, context);
    await management.closeAccount(account.id, null, context);
    // A refused write announces nothing.
    await assert.rejects(management.revokeKey(issued.key.id, null, context));

    const expected = ['key.issued', 'key.revoked', 'account.tier-changed', 'tier.changed', 'account.closed'];
    await waitFor(() => heardByReader.length >= expected.length && heardByWriter.length >= expected.length, {
      message: 'both buses to hear every change',
    });
    await sleep(100);
    // Exactly once each: the store announced them; the management plane's publish added nothing.
    assert.deepEqual(
      heardByReader.map((event) => event.type),
      expected,
    );
    assert.deepEqual(heardByWriter, heardByReader);
    const revoked = heardByReader[1] as Extract<ChangeEvent, { type: 'key.revoked' }>;
    assert.equal(revoked.keyId, issued.key.id);
    assert.equal(revoked.reason, 'leaked');
    assert.equal(revoked.accountId, account.id);
    const closed = heardByReader[4] as Extract<ChangeEvent, { type: 'account.closed' }>;
    assert.deepEqual(closed.revokedKeyIds, []);
    assert.equal(reader.bus.stats().received, expected.length);
  });

  test('identity changes - a revocation reaches the edge cache of another api server within a second (measured)', async (t) => {
    const schema = freshSchema();
    const writer = await open(schema);
    const reader = await open(schema);
    // A long TTL: only the change event can make the reader's cache refuse the key in time.
    const cache = new EdgeCache({ source: reader.store, bus: reader.bus, positiveTtlMs: 600_000 });
    const management = new ManagementPlane({ store: writer.store, bus: writer.bus });
    const latencies: number[] = [];
    try {
      for (let round = 0; round < 15; round++) {
        const account = await management.createAccount({ name: `Revocation ${round}` }, context);
        const issued = await management.issueKey(account.id, {}, context);
        await cache.authenticate(issued.presentedKey);
        const started = performance.now();
        await management.revokeKey(issued.key.id, null, context);
        await waitFor(
          () =>
            cache.authenticate(issued.presentedKey).then(
              () => false,
              (error) => isPixelfleetError(error, 'PF_ERR_UNAUTHORIZED'),
            ),
          { intervalMs: 1, timeoutMs: 5_000, message: 'the revocation to reach the other cache' },
        );
        latencies.push(performance.now() - started);
      }
    } finally {
      cache.close();
    }
    const p50 = percentileOf(latencies, 0.5);
    const p99 = percentileOf(latencies, 0.99);
    t.diagnostic(
      `revoke call to refusal on another server: p50 ${p50.toFixed(1)} ms, max ${p99.toFixed(1)} ms`,
    );
    assert.ok(p99 < 1_000, `revocation took ${p99.toFixed(0)} ms`);
  });

  test('identity changes - a write that fails at commit announces nothing', async () => {
    const schema = freshSchema();
    const identity = await open(schema);
    const heard = recorder(identity);
    const management = new ManagementPlane({ store: identity.store, bus: identity.bus });
    const account = await management.createAccount({ name: 'Doomed' }, context);
    // A deferred constraint trigger fails the transaction at COMMIT, after the store queued its
    // notification: PostgreSQL must drop the notification with the write.
    const admin = new pg.Client({ connectionString: server.url });
    await admin.connect();
    await admin.query(`
      CREATE FUNCTION ${schema}.refuse_doomed() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN
        IF NEW.name = 'doomed' THEN RAISE EXCEPTION 'doomed key refused at commit'; END IF;
        RETURN NULL;
      END; $$;
      CREATE CONSTRAINT TRIGGER refuse_doomed AFTER INSERT ON ${schema}.api_keys
        DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION ${schema}.refuse_doomed();`);
    await admin.end();

    await assert.rejects(management.issueKey(account.id, { name: 'doomed' }, context), (error) =>
      isPixelfleetError(error, 'PF_ERR_MANAGEMENT_UNAVAILABLE'),
    );
    const kept = await management.issueKey(account.id, { name: 'kept' }, context);
    await waitFor(() => heard.length >= 1, { message: 'the committed key to be announced' });
    await sleep(100);
    assert.deepEqual(
      heard.map((event) => (event.type === 'key.issued' ? event.keyId : event.type)),
      [kept.key.id],
    );
    assert.deepEqual(
      (await identity.store.listKeys(account.id)).map((key) => key.name),
      ['kept'],
    );
  });

  test('identity changes - a bus without a store announcing publishes with NOTIFY', async () => {
    const channel = 'pixelfleet_standalone_test';
    const publisher = new PostgresChangeBus({ url: server.url, channel, onError: () => {} });
    const subscriber = new PostgresChangeBus({ url: server.url, channel, onError: () => {} });
    try {
      await Promise.all([publisher.start(), subscriber.start()]);
      const heard: ChangeEvent[] = [];
      subscriber.subscribe((event) => heard.push(event));
      const event: ChangeEvent = { type: 'tier.changed', at: 1, tier: 'pro' };
      publisher.publish(event);
      await waitFor(() => heard.length === 1, { message: 'the published event' });
      assert.deepEqual(heard, [event]);
    } finally {
      await Promise.all([publisher.close(), subscriber.close()]);
    }
    assert.equal(defaultChangeChannel(undefined), 'pixelfleet_identity');
    assert.equal(defaultChangeChannel('tenant_a'), 'pixelfleet_identity_tenant_a');
    assert.throws(() => new PostgresChangeBus({ url: server.url, channel: 'Not Valid' }), RangeError);
    assert.throws(
      () => new PostgresChangeBus({ url: server.url, channel: 'ok', heartbeatIntervalMs: 0 }),
      RangeError,
    );
  });

  test('identity changes - after the server restarts the listener reconnects and asks for a resync', async () => {
    const schema = freshSchema();
    let resyncs = 0;
    const listener = await open(schema, () => resyncs++);
    const heard = recorder(listener);
    await server.crash();
    await waitFor(() => !listener.bus.stats().listening, { message: 'the listener to notice the crash' });
    await server.restart();
    await waitFor(() => resyncs === 1, { timeoutMs: 20_000, message: 'a resync after reconnecting' });
    assert.equal(listener.bus.stats().reconnects, 1);
    assert.equal(listener.bus.stats().resyncs, 1);

    // Changes after the reconnect flow again, through a pool that replaced its dead connections.
    const management = new ManagementPlane({ store: listener.store, bus: listener.bus });
    const account = await waitFor(
      () => management.createAccount({ name: 'After restart' }, context).catch(() => undefined),
      { timeoutMs: 10_000, message: 'the store to work again' },
    );
    await management.issueKey(account.id, {}, context);
    await waitFor(() => heard.some((event) => event.type === 'key.issued'), {
      message: 'an event after the reconnect',
    });
  });
});
