/**
 * The IdentityStore contract: every implementation (SQLite today, PostgreSQL later) must pass
 * these. A file per engine calls `identityStoreContract` with a factory for a fresh, empty store.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { afterEach, beforeEach, describe, test } from 'node:test';
import { isPixelfleetError } from '../../src/errors/index.ts';
import type { AuditContext, IdentityStore, NewApiKey } from '../../src/identity/index.ts';

export interface ContractClock {
  now: number;
}

export type StoreFactory = (clock: () => number) => Promise<IdentityStore>;

const context: AuditContext = { actor: 'admin:test', sourceIp: '127.0.0.1' };

function hashOf(text: string): Uint8Array {
  return new Uint8Array(createHash('sha256').update(text).digest());
}

function newKey(id: string, accountId: string, expiresAt: number | null = null): NewApiKey {
  return { id, accountId, name: null, scopes: ['images:write'], secretHash: hashOf(id), expiresAt };
}

export function identityStoreContract(engine: string, factory: StoreFactory): void {
  describe(`identity store contract (${engine})`, () => {
    const clock: ContractClock = { now: 1_750_000_000_000 };
    let store: IdentityStore;

    beforeEach(async () => {
      clock.now = 1_750_000_000_000;
      store = await factory(() => clock.now);
    });
    afterEach(async () => {
      await store.close();
    });

    test('identity store - ships the built-in tiers with anonymous disabled', async () => {
      const tiers = await store.listTiers();
      assert.deepEqual(tiers.map((tier) => tier.name).sort(), ['anonymous', 'enterprise', 'free', 'pro']);
      assert.equal((await store.getTier('anonymous'))?.enabled, false);
      assert.equal((await store.getTier('free'))?.builtIn, true);
    });

    test('identity store - creates, reads and lists accounts', async () => {
      const created = await store.createAccount(
        { id: 'acct_b', name: 'Beta', email: null, tier: 'pro' },
        context,
      );
      await store.createAccount(
        { id: 'acct_a', name: 'Alpha', email: 'a@example.com', tier: 'free' },
        context,
      );
      assert.equal(created.status, 'active');
      assert.equal(created.createdAt, clock.now);
      assert.deepEqual(await store.getAccount('acct_b'), created);
      assert.deepEqual(
        (await store.listAccounts()).map((account) => account.id),
        ['acct_a', 'acct_b'],
      );
      assert.deepEqual(
        (await store.listAccounts({ tier: 'pro' })).map((account) => account.id),
        ['acct_b'],
      );
      assert.deepEqual(
        (await store.listAccounts({ after: 'acct_a', limit: 1 })).map((account) => account.id),
        ['acct_b'],
      );
      await assert.rejects(
        store.createAccount({ id: 'acct_a', name: 'Again', email: null, tier: 'free' }, context),
        (error) => isPixelfleetError(error, 'PF_ERR_CONFLICT'),
      );
      await assert.rejects(
        store.createAccount({ id: 'acct_c', name: 'C', email: null, tier: 'gold' }, context),
        (error) => isPixelfleetError(error, 'PF_ERR_INVALID_OPTION'),
      );
      await assert.rejects(
        store.createAccount({ id: 'acct_d', name: 'D', email: null, tier: 'anonymous' }, context),
        (error) => isPixelfleetError(error, 'PF_ERR_INVALID_OPTION'),
      );
    });

    test('identity store - allows at most the live-key limit per account (rotation)', async () => {
      await store.createAccount({ id: 'acct_r', name: 'R', email: null, tier: 'free' }, context);
      await store.insertKey(newKey('k1', 'acct_r'), { maxLiveKeys: 2 }, context);
      await store.insertKey(newKey('k2', 'acct_r'), { maxLiveKeys: 2 }, context);
      await assert.rejects(store.insertKey(newKey('k3', 'acct_r'), { maxLiveKeys: 2 }, context), (error) => {
        assert.ok(isPixelfleetError(error, 'PF_ERR_KEY_LIMIT_REACHED'));
        assert.match(error.message, /revoke one/);
        assert.deepEqual(error.extensions.liveKeyIds, ['k1', 'k2']);
        return true;
      });
      const revoked = await store.revokeKey('k1', 'rotated', context);
      assert.equal(revoked.revokedAt, clock.now);
      assert.equal(revoked.revokedReason, 'rotated');
      await store.insertKey(newKey('k3', 'acct_r'), { maxLiveKeys: 2 }, context);
      assert.deepEqual(
        (await store.listKeys('acct_r')).map((key) => key.id),
        ['k1', 'k2', 'k3'],
      );
      await assert.rejects(store.revokeKey('k1', null, context), (error) =>
        isPixelfleetError(error, 'PF_ERR_CONFLICT'),
      );
      await assert.rejects(store.revokeKey('nope', null, context), (error) =>
        isPixelfleetError(error, 'PF_ERR_NOT_FOUND'),
      );
    });

    test('identity store - expired keys do not count towards the live-key limit', async () => {
      await store.createAccount({ id: 'acct_e', name: 'E', email: null, tier: 'free' }, context);
      await store.insertKey(newKey('e1', 'acct_e', clock.now + 1_000), { maxLiveKeys: 2 }, context);
      await store.insertKey(newKey('e2', 'acct_e'), { maxLiveKeys: 2 }, context);
      clock.now += 1_000;
      await store.insertKey(newKey('e3', 'acct_e'), { maxLiveKeys: 2 }, context);
      const credential = await store.findCredential('e1');
      assert.equal(credential?.key.expiresAt, clock.now);
    });

    test('identity store - a credential joins key, account and tier; secrets are never returned', async () => {
      await store.createAccount({ id: 'acct_c', name: 'C', email: null, tier: 'pro' }, context);
      const key = await store.insertKey(newKey('c1', 'acct_c'), { maxLiveKeys: 2 }, context);
      assert.equal('secretHash' in key, false);
      const credential = await store.findCredential('c1');
      assert.ok(credential);
      assert.deepEqual(credential.key, key);
      assert.equal(credential.account.id, 'acct_c');
      assert.equal(credential.tier.name, 'pro');
      assert.deepEqual(Buffer.from(credential.secretHash), Buffer.from(hashOf('c1')));
      assert.equal(await store.findCredential('missing'), undefined);
    });

    test('identity store - closing an account revokes its live keys atomically', async () => {
      await store.createAccount({ id: 'acct_x', name: 'X', email: null, tier: 'free' }, context);
      await store.insertKey(newKey('x1', 'acct_x'), { maxLiveKeys: 2 }, context);
      await store.insertKey(newKey('x2', 'acct_x'), { maxLiveKeys: 2 }, context);
      await store.revokeKey('x1', null, context);
      clock.now += 10;
      const closed = await store.closeAccount('acct_x', 'customer left', context);
      assert.equal(closed.account.status, 'closed');
      assert.equal(closed.account.closedAt, clock.now);
      assert.deepEqual(closed.revokedKeyIds, ['x2']);
      const keys = await store.listKeys('acct_x');
      assert.ok(keys.every((key) => key.revokedAt !== null));
      await assert.rejects(store.insertKey(newKey('x3', 'acct_x'), { maxLiveKeys: 2 }, context), (error) =>
        isPixelfleetError(error, 'PF_ERR_CONFLICT'),
      );
      await assert.rejects(store.closeAccount('acct_x', null, context), (error) =>
        isPixelfleetError(error, 'PF_ERR_CONFLICT'),
      );
    });

    test('identity store - edits and creates tiers, requiring every limit for a new one', async () => {
      clock.now += 5;
      const pro = await store.setTier('pro', { ratePerSecond: 150, monthlyConversions: null }, context);
      assert.equal(pro.ratePerSecond, 150);
      assert.equal(pro.monthlyConversions, null);
      assert.equal(pro.burst, 200);
      assert.equal(pro.updatedAt, clock.now);
      await assert.rejects(store.setTier('gold', { ratePerSecond: 1 }, context), (error) => {
        assert.ok(isPixelfleetError(error, 'PF_ERR_INVALID_OPTION'));
        assert.match(error.message, /missing: enabled, burst/);
        return true;
      });
      await assert.rejects(store.setTier('pro', { burst: 0 }, context), (error) =>
        isPixelfleetError(error, 'PF_ERR_INVALID_OPTION'),
      );
      const free = await store.getTier('free');
      const { name: _name, builtIn: _builtIn, updatedAt: _updatedAt, ...limits } = free!;
      const gold = await store.setTier('gold', { ...limits, burst: 50 }, context);
      assert.equal(gold.builtIn, false);
      assert.equal(gold.burst, 50);
      await store.createAccount({ id: 'acct_g', name: 'G', email: null, tier: 'gold' }, context);
      await store.setTier('gold', { enabled: false }, context);
      await assert.rejects(
        store.createAccount({ id: 'acct_h', name: 'H', email: null, tier: 'gold' }, context),
        (error) => isPixelfleetError(error, 'PF_ERR_CONFLICT'),
      );
    });

    test('identity store - changes an account tier', async () => {
      await store.createAccount({ id: 'acct_t', name: 'T', email: null, tier: 'free' }, context);
      const account = await store.changeAccountTier('acct_t', 'enterprise', context);
      assert.equal(account.tier, 'enterprise');
      await assert.rejects(store.changeAccountTier('acct_t', 'gold', context), (error) =>
        isPixelfleetError(error, 'PF_ERR_INVALID_OPTION'),
      );
    });

    test('identity store - audits every change with actor, time, target, address and details', async () => {
      await store.createAccount({ id: 'acct_a', name: 'A', email: null, tier: 'free' }, context);
      clock.now += 1;
      await store.insertKey(
        newKey('a1', 'acct_a'),
        { maxLiveKeys: 2 },
        { actor: 'admin:bob', sourceIp: '10.0.0.9' },
      );
      clock.now += 1;
      await store.revokeKey('a1', 'leaked', context);
      clock.now += 1;
      await store.setTier('free', { burst: 30 }, context);
      clock.now += 1;
      await store.closeAccount('acct_a', null, context);
      // A refused change leaves no entry.
      await assert.rejects(store.revokeKey('a1', null, context));

      const entries = await store.queryAudit();
      assert.deepEqual(
        entries.map((entry) => entry.action),
        ['account.close', 'tier.update', 'key.revoke', 'key.issue', 'account.create'],
      );
      const issue = entries[3]!;
      assert.equal(issue.actor, 'admin:bob');
      assert.equal(issue.sourceIp, '10.0.0.9');
      assert.equal(issue.target, 'key:a1');
      assert.equal(issue.at, 1_750_000_000_001);
      assert.equal(issue.details.accountId, 'acct_a');
      assert.deepEqual(entries[1]!.details.changed, { burst: { from: 20, to: 30 } });

      assert.deepEqual(
        (await store.queryAudit({ actor: 'admin:bob' })).map((entry) => entry.action),
        ['key.issue'],
      );
      assert.deepEqual(
        (await store.queryAudit({ target: 'key:*' })).map((entry) => entry.action),
        ['key.revoke', 'key.issue'],
      );
      assert.deepEqual(
        (await store.queryAudit({ since: 1_750_000_000_001, until: 1_750_000_000_003 })).map(
          (entry) => entry.action,
        ),
        ['key.revoke', 'key.issue'],
      );
      const firstPage = await store.queryAudit({ limit: 2 });
      const secondPage = await store.queryAudit({ limit: 2, before: firstPage.at(-1)!.id });
      assert.deepEqual(
        secondPage.map((entry) => entry.action),
        ['key.revoke', 'key.issue'],
      );
    });
  });
}
