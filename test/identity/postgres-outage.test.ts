/**
 * The identity CAP choice against a real PostgreSQL: when the management plane's database is
 * frozen or down, the data plane keeps verifying known keys from the edge cache (AP), management
 * calls fail promptly with a 503 instead of hanging (CP, bounded timeouts), and everything works
 * again once the database is back, with the cache resynchronised.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { isPixelfleetError, type PixelfleetError } from '../../src/errors/index.ts';
import { EdgeCache, ManagementPlane } from '../../src/identity/index.ts';
import { openPostgresIdentity, type PostgresIdentity } from '../../src/identity/postgres/index.ts';
import { type PostgresServer, startPostgres } from '../support/postgres-server.ts';
import { sleep, waitFor } from '../support/wait-for.ts';

let server: PostgresServer;
let counter = 0;
const context = { actor: 'admin', sourceIp: '127.0.0.1' };

before(async () => {
  server = await startPostgres();
});
after(() => server.stop());

interface Deployment {
  identity: PostgresIdentity;
  management: ManagementPlane;
  cache: EdgeCache;
  resyncs: () => number;
  close(): Promise<void>;
}

/** One api server's identity wiring, with short timeouts so the test sees them act. */
async function deploy(): Promise<Deployment> {
  let resyncs = 0;
  let cache: EdgeCache | undefined;
  const identity = await openPostgresIdentity({
    url: server.url,
    schema: `outage_${process.pid}_${++counter}`,
    poolSize: 4,
    connectTimeoutMs: 1_000,
    queryTimeoutMs: 1_000,
    dataPlaneTimeoutMs: 400,
    heartbeatIntervalMs: 250,
    maxReconnectDelayMs: 500,
    onResync: () => {
      resyncs++;
      cache?.expireAll();
    },
    onError: () => {},
  });
  cache = new EdgeCache({
    source: identity.store,
    bus: identity.bus,
    positiveTtlMs: 200,
    refreshAheadMs: 0,
    maxStaleMs: 120_000,
  });
  const management = new ManagementPlane({ store: identity.store, bus: identity.bus });
  return {
    identity,
    management,
    cache,
    resyncs: () => resyncs,
    async close() {
      cache?.close();
      await identity.close();
    },
  };
}

/** Resolves with how long `work` took and how it failed. */
async function timedFailure(work: () => Promise<unknown>): Promise<{ ms: number; error: PixelfleetError }> {
  const started = performance.now();
  try {
    await work();
  } catch (error) {
    assert.ok(isPixelfleetError(error), `expected a PixelfleetError, got ${error}`);
    return { ms: performance.now() - started, error };
  }
  assert.fail('expected the call to fail while PostgreSQL is unavailable');
}

describe('postgres identity outage', () => {
  test('identity outage - a frozen PostgreSQL: keys verify from the cache, management fails fast, then recovers', async (t) => {
    const deployment = await deploy();
    const { management, cache, identity } = deployment;
    try {
      const account = await management.createAccount({ name: 'Frozen' }, context);
      const issued = await management.issueKey(account.id, {}, context);
      const unknown = await management.issueKey(account.id, {}, context);
      await management.revokeKey(unknown.key.id, 'rotated', context);
      assert.equal((await cache.authenticate(issued.presentedKey)).accountId, account.id);

      await server.pause();
      try {
        await sleep(300); // past the positive TTL: the next verification must ask the store
        const started = performance.now();
        const principal = await cache.authenticate(issued.presentedKey);
        const staleMs = performance.now() - started;
        assert.equal(principal.keyId, issued.key.id);
        assert.ok(cache.stats().staleServed >= 1, 'the answer came from the stale entry');
        assert.ok(staleMs < 4_000, `stale answer took ${Math.round(staleMs)} ms`);
        t.diagnostic(`frozen: stale answer after ${Math.round(staleMs)} ms`);

        // A key the cache never saw cannot be verified: 503, promptly.
        const neverSeen = await timedFailure(() => cache.authenticate(unknown.presentedKey));
        assert.equal(neverSeen.error.code, 'PF_ERR_MANAGEMENT_UNAVAILABLE');

        for (const call of [
          () => management.createAccount({ name: 'During the freeze' }, context),
          () => management.issueKey(account.id, {}, context),
          () => management.listAccounts(),
        ]) {
          const { ms, error } = await timedFailure(call);
          assert.equal(error.code, 'PF_ERR_MANAGEMENT_UNAVAILABLE');
          assert.equal(error.status, 503);
          assert.ok(ms < 8_000, `a management call took ${Math.round(ms)} ms to fail`);
          t.diagnostic(`frozen: management call failed after ${Math.round(ms)} ms`);
        }
        await waitFor(() => !identity.bus.stats().listening, {
          message: 'the heartbeat to notice the frozen server',
        });
      } finally {
        await server.resume();
      }
      const resumedAt = performance.now();
      await waitFor(() => deployment.resyncs() >= 1, {
        timeoutMs: 20_000,
        message: 'a resync after the freeze',
      });
      const after = await waitFor(
        () => management.createAccount({ name: 'After the freeze' }, context).catch(() => undefined),
        { timeoutMs: 15_000, message: 'management calls to work again' },
      );
      t.diagnostic(`frozen: first write ${Math.round(performance.now() - resumedAt)} ms after resume`);
      const fresh = await management.issueKey(after.id, {}, context);
      assert.equal((await cache.authenticate(fresh.presentedKey)).accountId, after.id);
      // Revocation still reaches the cache through the reconnected listener.
      await management.revokeKey(issued.key.id, 'after the freeze', context);
      await waitFor(
        () =>
          cache.authenticate(issued.presentedKey).then(
            () => false,
            (error) =>
              isPixelfleetError(error, 'PF_ERR_UNAUTHORIZED') && error.extensions.reason === 'revoked',
          ),
        { message: 'the revocation to reach the cache' },
      );
    } finally {
      await deployment.close();
    }
  });

  test('identity outage - a crashed PostgreSQL: refused connections fail at once, restart heals', async (t) => {
    const deployment = await deploy();
    const { management, cache } = deployment;
    try {
      const account = await management.createAccount({ name: 'Crashed' }, context);
      const issued = await management.issueKey(account.id, {}, context);
      assert.equal((await cache.authenticate(issued.presentedKey)).accountId, account.id);

      await server.crash(); // pg_ctl stop -m immediate
      await sleep(300);
      assert.equal((await cache.authenticate(issued.presentedKey)).keyId, issued.key.id);
      assert.ok(cache.stats().staleServed >= 1);
      const { ms, error } = await timedFailure(() => management.createAccount({ name: 'Down' }, context));
      assert.equal(error.code, 'PF_ERR_MANAGEMENT_UNAVAILABLE');
      assert.ok(ms < 3_000, `a refused connection took ${Math.round(ms)} ms to fail`);
      t.diagnostic(`crashed: management call failed after ${Math.round(ms)} ms`);

      await server.restart();
      const restartedAt = performance.now();
      await waitFor(() => deployment.resyncs() >= 1, {
        timeoutMs: 20_000,
        message: 'a resync after restart',
      });
      const again = await waitFor(
        () => management.createAccount({ name: 'Back' }, context).catch(() => undefined),
        { timeoutMs: 15_000, message: 'management calls to work again' },
      );
      t.diagnostic(
        `crashed: first write ${Math.round(performance.now() - restartedAt)} ms after the restart`,
      );
      // Committed data survived the immediate shutdown (crash recovery replays the WAL).
      assert.equal((await management.getAccount(account.id)).name, 'Crashed');
      assert.equal(again.name, 'Back');
      assert.equal((await cache.authenticate(issued.presentedKey)).keyId, issued.key.id);
    } finally {
      await deployment.close();
    }
  });
});
