import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import Fastify, { type FastifyInstance, type InjectOptions } from 'fastify';
import { registerProblemHandlers } from '../../src/api/problem.ts';
import {
  type AccountUsageSource,
  EdgeCache,
  InProcessChangeBus,
  ProgressiveLockout,
  registerAdminRoutes,
  SqliteIdentityStore,
} from '../../src/identity/index.ts';

const token = 'test-admin-token-0123456789';

interface Harness {
  app: FastifyInstance;
  store: SqliteIdentityStore;
  bus: InProcessChangeBus;
  usageCalls: unknown[][];
}

async function startHarness(
  options: { usage?: boolean; lockout?: ProgressiveLockout } = {},
): Promise<Harness> {
  const store = new SqliteIdentityStore({ path: ':memory:' });
  const bus = new InProcessChangeBus();
  const usageCalls: unknown[][] = [];
  const usage: AccountUsageSource = {
    async accountUsage(...args) {
      usageCalls.push(args);
      return { conversions: 42, cpuSeconds: 1.5 };
    },
  };
  const app = Fastify({ logger: false });
  registerProblemHandlers(app);
  await registerAdminRoutes(app, {
    store,
    bus,
    token,
    ...(options.usage ? { usage } : {}),
    ...(options.lockout ? { lockout: options.lockout } : {}),
  });
  await app.ready();
  return { app, store, bus, usageCalls };
}

async function stopHarness(harness: Harness): Promise<void> {
  await harness.app.close();
  await harness.store.close();
}

function call(harness: Harness, options: InjectOptions & { auth?: string | null }) {
  const { auth, ...rest } = options;
  const headers: Record<string, string> = { ...(rest.headers as Record<string, string>) };
  if (auth !== null) headers.authorization = `Bearer ${auth ?? token}`;
  return harness.app.inject({ ...rest, headers });
}

describe('admin routes', () => {
  let harness: Harness;
  before(async () => {
    harness = await startHarness({ usage: true });
  });
  after(async () => {
    await stopHarness(harness);
  });

  test('admin routes - refuse requests without the right bearer token', async () => {
    const missing = await call(harness, { method: 'GET', url: '/admin/accounts', auth: null });
    assert.equal(missing.statusCode, 401);
    assert.match(String(missing.headers['content-type']), /^application\/problem\+json/);
    assert.equal(missing.json().code, 'PF_ERR_ADMIN_UNAUTHORIZED');
    assert.match(missing.json().detail, /Bearer/);
    const wrong = await call(harness, { method: 'GET', url: '/admin/accounts', auth: `${token}x` });
    assert.equal(wrong.statusCode, 401);
    assert.equal(wrong.json().detail, 'the admin token is wrong');
  });

  test('admin routes - account lifecycle: create, list, show, change tier, close', async () => {
    const created = await call(harness, {
      method: 'POST',
      url: '/admin/accounts',
      payload: { name: 'Acme Photos', email: 'ops@acme.example', tier: 'pro' },
    });
    assert.equal(created.statusCode, 201);
    const account = created.json().account;
    assert.match(account.id, /^acct_[0-9a-f]{16}$/);
    assert.equal(account.tier, 'pro');
    assert.equal(account.status, 'active');
    assert.ok(!Number.isNaN(Date.parse(account.createdAt)));

    const list = await call(harness, { method: 'GET', url: '/admin/accounts?tier=pro' });
    assert.ok(list.json().accounts.some((listed: { id: string }) => listed.id === account.id));

    const shown = await call(harness, { method: 'GET', url: `/admin/accounts/${account.id}` });
    assert.equal(shown.statusCode, 200);
    assert.equal(shown.json().account.name, 'Acme Photos');
    assert.deepEqual(shown.json().keys, []);

    const changed = await call(harness, {
      method: 'PATCH',
      url: `/admin/accounts/${account.id}`,
      payload: { tier: 'enterprise' },
    });
    assert.equal(changed.json().account.tier, 'enterprise');

    const closed = await call(harness, {
      method: 'POST',
      url: `/admin/accounts/${account.id}/close`,
      payload: { reason: 'test' },
    });
    assert.equal(closed.statusCode, 200);
    assert.equal(closed.json().account.status, 'closed');
    const again = await call(harness, {
      method: 'POST',
      url: `/admin/accounts/${account.id}/close`,
      payload: {},
    });
    assert.equal(again.statusCode, 409);
    assert.equal(again.json().code, 'PF_ERR_CONFLICT');

    const missing = await call(harness, { method: 'GET', url: '/admin/accounts/acct_nope' });
    assert.equal(missing.statusCode, 404);
    assert.equal(missing.json().code, 'PF_ERR_NOT_FOUND');
  });

  test('admin routes - validate bodies and reject unknown fields', async () => {
    const unknownField = await call(harness, {
      method: 'POST',
      url: '/admin/accounts',
      payload: { name: 'Typo', teir: 'pro' },
    });
    assert.equal(unknownField.statusCode, 400);
    assert.equal(unknownField.json().code, 'PF_ERR_INVALID_OPTION');
    assert.match(unknownField.json().detail, /unknown field "teir"/);

    const noName = await call(harness, { method: 'POST', url: '/admin/accounts', payload: {} });
    assert.equal(noName.statusCode, 400);
    assert.match(noName.json().detail, /name/);

    const badTier = await call(harness, {
      method: 'POST',
      url: '/admin/accounts',
      payload: { name: 'X', tier: 'gold' },
    });
    assert.equal(badTier.statusCode, 400);
    assert.match(badTier.json().detail, /no tier named gold/);

    const badEmail = await call(harness, {
      method: 'POST',
      url: '/admin/accounts',
      payload: { name: 'X', email: 'nope' },
    });
    assert.equal(badEmail.statusCode, 400);
  });

  test('admin routes - keys: issued once, never shown again, rotation limit, revocation reaches the edge', async () => {
    const edge = new EdgeCache({ source: harness.store, bus: harness.bus });
    const account = (
      await call(harness, { method: 'POST', url: '/admin/accounts', payload: { name: 'Keys Inc' } })
    ).json().account;
    const issued = await call(harness, {
      method: 'POST',
      url: `/admin/accounts/${account.id}/keys`,
      payload: { scopes: ['images:write', 'jobs:read'], name: 'ci', expiresInSeconds: 3600 },
    });
    assert.equal(issued.statusCode, 201);
    assert.equal(issued.headers['cache-control'], 'no-store');
    const { key, apiKey } = issued.json();
    assert.match(apiKey, /^pf_live_[0-9a-f]{16}_[0-9a-f]{64}$/);
    assert.equal(key.status, 'live');
    assert.deepEqual(key.scopes, ['images:write', 'jobs:read']);
    assert.ok(Date.parse(key.expiresAt) > Date.now());

    const principal = await edge.authenticate(apiKey);
    assert.equal(principal.accountId, account.id);

    const secret = apiKey.split('_').at(-1);
    for (const url of [
      `/admin/accounts/${account.id}/keys`,
      `/admin/accounts/${account.id}`,
      `/admin/keys/${key.id}`,
    ]) {
      const response = await call(harness, { method: 'GET', url });
      assert.equal(response.statusCode, 200, url);
      assert.equal(response.body.includes(secret), false, `${url} leaked the secret`);
      assert.equal(response.body.includes('secretHash'), false);
    }

    const second = await call(harness, {
      method: 'POST',
      url: `/admin/accounts/${account.id}/keys`,
      payload: {},
    });
    assert.equal(second.statusCode, 201);
    assert.deepEqual(second.json().key.scopes, ['images:write', 'jobs:read', 'usage:read']);
    const third = await call(harness, {
      method: 'POST',
      url: `/admin/accounts/${account.id}/keys`,
      payload: {},
    });
    assert.equal(third.statusCode, 409);
    assert.equal(third.json().code, 'PF_ERR_KEY_LIMIT_REACHED');
    assert.match(third.json().detail, /revoke one before issuing another/);

    const revoked = await call(harness, {
      method: 'POST',
      url: `/admin/keys/${key.id}/revoke`,
      payload: { reason: 'rotated' },
    });
    assert.equal(revoked.statusCode, 200);
    assert.equal(revoked.json().key.status, 'revoked');
    await assert.rejects(edge.authenticate(apiKey), /revoked/);
    const fourth = await call(harness, {
      method: 'POST',
      url: `/admin/accounts/${account.id}/keys`,
      payload: {},
    });
    assert.equal(fourth.statusCode, 201);

    const badScope = await call(harness, {
      method: 'POST',
      url: `/admin/accounts/${account.id}/keys`,
      payload: { scopes: ['images:delete'] },
    });
    assert.equal(badScope.statusCode, 400);
    assert.match(badScope.json().detail, /images:write, jobs:read, usage:read, admin/);
    const past = await call(harness, {
      method: 'POST',
      url: `/admin/accounts/${account.id}/keys`,
      payload: { expiresAt: '2001-01-01T00:00:00Z' },
    });
    assert.equal(past.statusCode, 400);
    edge.close();
  });

  test('admin routes - tiers: list, edit, create, validation', async () => {
    const list = await call(harness, { method: 'GET', url: '/admin/tiers' });
    const names = list.json().tiers.map((tier: { name: string }) => tier.name);
    assert.deepEqual(names, ['anonymous', 'free', 'pro', 'enterprise']);

    const edited = await call(harness, {
      method: 'PUT',
      url: '/admin/tiers/free',
      payload: { ratePerSecond: 7, monthlyConversions: null },
    });
    assert.equal(edited.statusCode, 200);
    assert.equal(edited.json().tier.ratePerSecond, 7);
    assert.equal(edited.json().tier.monthlyConversions, null);
    assert.equal(edited.json().tier.burst, 20);

    const typo = await call(harness, { method: 'PUT', url: '/admin/tiers/free', payload: { brust: 5 } });
    assert.equal(typo.statusCode, 400);
    assert.match(typo.json().detail, /unknown field "brust"/);
    const negative = await call(harness, { method: 'PUT', url: '/admin/tiers/free', payload: { burst: -1 } });
    assert.equal(negative.statusCode, 400);
    const incomplete = await call(harness, {
      method: 'PUT',
      url: '/admin/tiers/gold',
      payload: { burst: 5 },
    });
    assert.equal(incomplete.statusCode, 400);
    assert.match(incomplete.json().detail, /creating it needs every limit/);
  });

  test('admin routes - audit: every change with actor, address and details; filters; no way to edit', async () => {
    const created = await call(harness, {
      method: 'POST',
      url: '/admin/accounts',
      payload: { name: 'Audited' },
      headers: { 'x-pixelfleet-operator': 'alice' },
      remoteAddress: '10.1.2.3',
    });
    const accountId = created.json().account.id;
    const response = await call(harness, {
      method: 'GET',
      url: `/admin/audit?target=${encodeURIComponent(`account:${accountId}`)}`,
    });
    assert.equal(response.statusCode, 200);
    const [entry] = response.json().entries;
    assert.equal(entry.action, 'account.create');
    assert.equal(entry.actor, 'admin:alice');
    assert.equal(entry.sourceIp, '10.1.2.3');
    assert.equal(entry.details.name, 'Audited');

    const byActor = await call(harness, { method: 'GET', url: '/admin/audit?actor=admin:alice' });
    assert.equal(byActor.json().entries.length, 1);
    const paged = await call(harness, { method: 'GET', url: '/admin/audit?limit=2' });
    assert.equal(paged.json().entries.length, 2);
    const next = await call(harness, {
      method: 'GET',
      url: `/admin/audit?limit=2&before=${paged.json().nextBefore}`,
    });
    assert.ok(next.json().entries[0].id < paged.json().entries[1].id);
    const since = await call(harness, {
      method: 'GET',
      url: `/admin/audit?since=${encodeURIComponent(entry.at)}`,
    });
    assert.ok(since.json().entries.length >= 1);
    const badSince = await call(harness, { method: 'GET', url: '/admin/audit?since=yesterday' });
    assert.equal(badSince.statusCode, 400);

    for (const method of ['DELETE', 'PUT', 'PATCH', 'POST'] as const) {
      const attempt = await call(harness, { method, url: '/admin/audit', payload: {} });
      assert.equal(attempt.statusCode, 404, method);
    }
  });

  test('admin routes - usage delegates to the usage source', async () => {
    const account = (
      await call(harness, { method: 'POST', url: '/admin/accounts', payload: { name: 'Usage' } })
    ).json().account;
    const response = await call(harness, {
      method: 'GET',
      url: `/admin/accounts/${account.id}/usage?from=2025-06-01T00:00:00Z&to=2025-07-01T00:00:00Z&granularity=day`,
    });
    assert.equal(response.statusCode, 200);
    assert.deepEqual(response.json().usage, { conversions: 42, cpuSeconds: 1.5 });
    assert.deepEqual(harness.usageCalls.at(-1), [
      account.id,
      Date.parse('2025-06-01T00:00:00Z'),
      Date.parse('2025-07-01T00:00:00Z'),
      'day',
    ]);
    const badGranularity = await call(harness, {
      method: 'GET',
      url: `/admin/accounts/${account.id}/usage?granularity=week`,
    });
    assert.equal(badGranularity.statusCode, 400);
    assert.match(badGranularity.json().detail, /hour, day, month/);
  });
});

describe('admin routes (without usage, with lockout)', () => {
  test('admin routes - usage without a usage source is a clear 501', async () => {
    const harness = await startHarness();
    try {
      const account = (
        await call(harness, { method: 'POST', url: '/admin/accounts', payload: { name: 'U' } })
      ).json().account;
      const response = await call(harness, { method: 'GET', url: `/admin/accounts/${account.id}/usage` });
      assert.equal(response.statusCode, 501);
      assert.equal(response.json().code, 'PF_ERR_USAGE_NOT_CONFIGURED');
    } finally {
      await stopHarness(harness);
    }
  });

  test('admin routes - repeated bad tokens lock the address out with 429 and Retry-After', async () => {
    const harness = await startHarness({
      lockout: new ProgressiveLockout({ freeFailures: 2, baseLockoutMs: 30_000 }),
    });
    try {
      for (let i = 0; i < 3; i++) {
        const response = await call(harness, { method: 'GET', url: '/admin/tiers', auth: 'wrong-token' });
        assert.equal(response.statusCode, 401);
      }
      const locked = await call(harness, { method: 'GET', url: '/admin/tiers' });
      assert.equal(locked.statusCode, 429);
      assert.equal(locked.json().code, 'PF_ERR_AUTH_LOCKED_OUT');
      assert.equal(locked.headers['retry-after'], '30');
      const elsewhere = await call(harness, {
        method: 'GET',
        url: '/admin/tiers',
        remoteAddress: '10.9.9.9',
      });
      assert.equal(elsewhere.statusCode, 200);
    } finally {
      await stopHarness(harness);
    }
  });

  test('admin routes - a good token between bad ones does not reset the lockout count', async () => {
    const harness = await startHarness({
      lockout: new ProgressiveLockout({ freeFailures: 2, baseLockoutMs: 30_000 }),
    });
    try {
      const statuses: number[] = [];
      for (const auth of ['wrong-token', 'wrong-token', undefined, 'wrong-token', undefined]) {
        statuses.push((await call(harness, { method: 'GET', url: '/admin/tiers', auth })).statusCode);
      }
      assert.deepEqual(statuses, [401, 401, 200, 401, 429]);
    } finally {
      await stopHarness(harness);
    }
  });
});
