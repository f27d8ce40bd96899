import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import Fastify, { type FastifyInstance } from 'fastify';
import { registerProblemHandlers } from '../../src/api/problem.ts';
import { runAdminCommand } from '../../src/cli/admin.ts';
import {
  EdgeCache,
  ensureAdminToken,
  InProcessChangeBus,
  openIdentityStore,
  registerAdminRoutes,
  type SqliteIdentityStore,
} from '../../src/identity/index.ts';

interface Output {
  code: number;
  stdout: string;
  stderr: string;
}

describe('admin cli', () => {
  let dataDir: string;
  let store: SqliteIdentityStore;
  let bus: InProcessChangeBus;
  let app: FastifyInstance;
  let env: NodeJS.ProcessEnv;

  async function admin(...argv: string[]): Promise<Output> {
    const stdout: string[] = [];
    const stderr: string[] = [];
    const code = await runAdminCommand(argv, env, {
      stdout: (text) => stdout.push(text),
      stderr: (text) => stderr.push(text),
    });
    return { code, stdout: stdout.join('\n'), stderr: stderr.join('\n') };
  }

  async function adminJson<T>(...argv: string[]): Promise<T> {
    const output = await admin(...argv, '--json');
    assert.equal(output.code, 0, output.stderr);
    return JSON.parse(output.stdout) as T;
  }

  before(async () => {
    dataDir = mkdtempSync(join(tmpdir(), 'pixelfleet-admin-cli-'));
    // As the server does on first start: generate the token into the data dir.
    const { token, source } = ensureAdminToken(dataDir, {});
    assert.equal(source, 'generated');
    store = openIdentityStore(dataDir);
    bus = new InProcessChangeBus();
    app = Fastify({ logger: false });
    registerProblemHandlers(app);
    await registerAdminRoutes(app, { store, bus, token });
    await app.listen({ host: '127.0.0.1', port: 0 });
    const address = app.server.address();
    assert.ok(address !== null && typeof address === 'object');
    env = { PIXELFLEET_DATA_DIR: dataDir, PIXELFLEET_ADMIN_PORT: String(address.port), USER: 'carol' };
  });

  after(async () => {
    await app.close();
    await store.close();
    rmSync(dataDir, { recursive: true, force: true });
  });

  test('admin cli - the generated admin token file is private (0600)', () => {
    assert.equal(statSync(join(dataDir, 'admin-token')).mode & 0o777, 0o600);
    assert.equal(ensureAdminToken(dataDir, {}).source, 'file');
  });

  test('admin cli - help for the whole command, a group and each command', async () => {
    const overview = await admin('--help');
    assert.equal(overview.code, 0);
    for (const command of ['accounts create', 'keys issue', 'keys revoke', 'tiers set', 'usage', 'audit']) {
      assert.match(overview.stdout, new RegExp(command));
    }
    const group = await admin('keys', '--help');
    assert.equal(group.code, 0);
    assert.match(group.stdout, /keys issue/);
    for (const command of [
      ['accounts', 'create'],
      ['accounts', 'list'],
      ['accounts', 'show'],
      ['accounts', 'close'],
      ['keys', 'issue'],
      ['keys', 'revoke'],
      ['keys', 'list'],
      ['tiers', 'set'],
      ['tiers', 'list'],
      ['usage'],
      ['audit'],
    ]) {
      const help = await admin(...command, '--help');
      assert.equal(help.code, 0, command.join(' '));
      assert.match(help.stdout, new RegExp(`^Usage: pixelfleet admin ${command.join(' ')}`));
      assert.match(help.stdout, /--admin-port/);
    }
    assert.match((await admin('tiers', 'set', '--help')).stdout, /--monthly-conversions/);
  });

  test('admin cli - usage mistakes exit 2 with a pointer to --help', async () => {
    const unknown = await admin('acounts', 'list');
    assert.equal(unknown.code, 2);
    assert.match(unknown.stderr, /unknown command 'acounts'/);
    const missingName = await admin('accounts', 'create');
    assert.equal(missingName.code, 2);
    assert.match(missingName.stderr, /needs --name/);
    assert.match(missingName.stderr, /--help/);
    const badFlag = await admin('accounts', 'list', '--colour');
    assert.equal(badFlag.code, 2);
    const missingArgument = await admin('keys', 'revoke');
    assert.equal(missingArgument.code, 2);
    assert.match(missingArgument.stderr, /<key id>/);
    const badDuration = await admin('keys', 'issue', 'acct_x', '--expires-in', 'forever');
    assert.equal(badDuration.code, 2);
  });

  test('admin cli - accounts, keys, revocation, tiers and audit end to end', async () => {
    const edge = new EdgeCache({ source: store, bus });
    try {
      const created = await admin('accounts', 'create', '--name', 'Acme Photos', '--tier', 'pro');
      assert.equal(created.code, 0, created.stderr);
      const accountId = /Created account (acct_[0-9a-f]+)/.exec(created.stdout)?.[1];
      assert.ok(accountId, created.stdout);

      const listed = await admin('accounts', 'list');
      assert.match(listed.stdout, /ACCOUNT ID\s+NAME\s+TIER/);
      assert.match(listed.stdout, new RegExp(`${accountId}\\s+Acme Photos\\s+pro\\s+active`));

      const issued = await admin(
        'keys',
        'issue',
        accountId,
        '--scope',
        'images:write',
        '--name',
        'ci',
        '--expires-in',
        '30d',
      );
      assert.equal(issued.code, 0, issued.stderr);
      const apiKey = /pf_live_[0-9a-f]{16}_[0-9a-f]{64}/.exec(issued.stdout)?.[0];
      assert.ok(apiKey, issued.stdout);
      assert.match(issued.stdout, /shown once/);
      const keyId = apiKey.split('_')[2]!;
      assert.equal((await edge.authenticate(apiKey)).accountId, accountId);

      const second = await adminJson<{ key: { id: string; scopes: string[] }; apiKey: string }>(
        'keys',
        'issue',
        accountId,
        '--scope',
        'images:write,usage:read',
      );
      assert.deepEqual(second.key.scopes, ['images:write', 'usage:read']);
      const third = await admin('keys', 'issue', accountId);
      assert.equal(third.code, 1);
      assert.match(third.stderr, /409 .*revoke one before issuing another \(PF_ERR_KEY_LIMIT_REACHED\)/);

      const keys = await admin('keys', 'list', accountId);
      assert.match(keys.stdout, new RegExp(`${keyId}\\s+ci\\s+live\\s+images:write`));
      assert.equal(keys.stdout.includes(apiKey.split('_')[3]!), false, 'keys list printed a secret');

      const revoked = await admin('keys', 'revoke', keyId, '--reason', 'rotated');
      assert.equal(revoked.code, 0, revoked.stderr);
      assert.match(revoked.stdout, new RegExp(`Revoked key ${keyId}`));
      await assert.rejects(edge.authenticate(apiKey), /revoked/);

      const shown = await admin('accounts', 'show', accountId);
      assert.match(shown.stdout, /Tier\s+pro/);
      assert.match(shown.stdout, /revoked/);

      const tiers = await admin('tiers', 'list');
      assert.match(tiers.stdout, /enterprise\s+yes\s+1000/);
      assert.match(tiers.stdout, /anonymous\s+no/);
      const setTier = await admin(
        'tiers',
        'set',
        'pro',
        '--burst',
        '250',
        '--max-input-bytes',
        '30MiB',
        '--monthly-conversions',
        'unlimited',
      );
      assert.equal(setTier.code, 0, setTier.stderr);
      const pro = (
        await adminJson<{
          tiers: { name: string; burst: number; maxInputBytes: number; monthlyConversions: null }[];
        }>('tiers', 'list')
      ).tiers.find((tier) => tier.name === 'pro');
      assert.equal(pro?.burst, 250);
      assert.equal(pro?.maxInputBytes, 30 * 1024 * 1024);
      assert.equal(pro?.monthlyConversions, null);
      const badTier = await admin('tiers', 'set', 'pro', '--burst', '0');
      assert.equal(badTier.code, 1);
      assert.match(badTier.stderr, /PF_ERR_INVALID_OPTION/);

      const audit = await admin('audit', '--target', `key:${keyId}`, '--since', '1h');
      assert.equal(audit.code, 0, audit.stderr);
      assert.match(audit.stdout, /admin:carol\s+key\.revoke/);
      assert.match(audit.stdout, /admin:carol\s+key\.issue/);
      assert.match(audit.stdout, /127\.0\.0\.1/);
      const auditJson = await adminJson<{ entries: { action: string }[] }>(
        'audit',
        '--action',
        'tier.update',
        '--operator',
        'x',
      );
      assert.equal(auditJson.entries[0]?.action, 'tier.update');

      const closed = await admin('accounts', 'close', accountId, '--reason', 'test over');
      assert.equal(closed.code, 0, closed.stderr);
      await assert.rejects(edge.authenticate(second.apiKey), /closed/);
    } finally {
      edge.close();
    }
  });

  test('admin cli - usage without a usage store says so', async () => {
    const { account } = await adminJson<{ account: { id: string } }>('accounts', 'create', '--name', 'U');
    const output = await admin('usage', account.id);
    assert.equal(output.code, 1);
    assert.match(output.stderr, /501 .*PF_ERR_USAGE_NOT_CONFIGURED/);
  });

  test('admin cli - the token can come from PIXELFLEET_ADMIN_TOKEN; a wrong one is refused', async () => {
    const saved = env;
    env = { ...saved, PIXELFLEET_ADMIN_TOKEN: 'definitely-not-the-token' };
    try {
      const output = await admin('tiers', 'list');
      assert.equal(output.code, 1);
      assert.match(output.stderr, /401 .*PF_ERR_ADMIN_UNAUTHORIZED/);
    } finally {
      env = saved;
    }
  });

  test('admin cli - a missing token file is a clear configuration error', async () => {
    const emptyDir = mkdtempSync(join(tmpdir(), 'pixelfleet-admin-cli-empty-'));
    try {
      const output = await admin('tiers', 'list', '--data-dir', emptyDir);
      assert.equal(output.code, 2);
      assert.match(output.stderr, /no admin token/);
      assert.match(output.stderr, /admin-token/);
    } finally {
      rmSync(emptyDir, { recursive: true, force: true });
    }
  });

  test('admin cli - an unreachable admin listener is a clear error', async () => {
    // A port that was free a moment ago: nothing listens there now.
    const probe = createServer();
    await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
    const port = (probe.address() as { port: number }).port;
    await new Promise((resolve) => probe.close(resolve));
    const output = await admin('accounts', 'list', '--admin-port', String(port));
    assert.equal(output.code, 1);
    assert.match(
      output.stderr,
      new RegExp(`cannot reach the admin listener at http://127\\.0\\.0\\.1:${port}/admin`),
    );
    assert.match(output.stderr, /is `pixelfleet start` running\?/);
    assert.match(output.stderr, /ECONNREFUSED/);
  });
});
