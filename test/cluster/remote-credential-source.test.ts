import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import { test } from 'node:test';
import { isPixelfleetError } from '../../src/errors/index.ts';
import { RemoteCredentialSource } from '../../src/identity/index.ts';
import { RemotePolicy } from '../../src/resilience/remote/index.ts';

const secret = 'remote-source-test-secret-0123456789';

/** A stand-in identity internal API answering what the test says, counting calls. */
async function identityStub(answer: (path: string) => { status: number; body: unknown }) {
  let calls = 0;
  const server: Server = createServer((request, response) => {
    calls++;
    if (request.headers.authorization !== `Bearer ${secret}`) {
      response.writeHead(401, { 'content-type': 'application/problem+json' });
      response.end(JSON.stringify({ code: 'PF_ERR_CLUSTER_UNAUTHORIZED', detail: 'wrong secret' }));
      return;
    }
    const { status, body } = answer(request.url ?? '');
    response.writeHead(status, { 'content-type': 'application/json' });
    response.end(JSON.stringify(body));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address() as { port: number };
  return {
    url: `http://127.0.0.1:${address.port}`,
    calls: () => calls,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

function source(url: string, clusterSecret = secret) {
  return new RemoteCredentialSource({
    identityUrl: url,
    clusterSecret,
    policy: new RemotePolicy({
      dependency: 'identity',
      maxAttempts: 3,
      breaker: false,
      backoff: { initialDelayMs: 1, maxDelayMs: 2 },
      timeout: { minMs: 1000, maxMs: 1000, initialMs: 1000 },
    }),
  });
}

const credential = {
  key: {
    id: 'k1',
    accountId: 'a1',
    name: null,
    scopes: ['images:write'],
    createdAt: 1,
    expiresAt: null,
    revokedAt: null,
    revokedReason: null,
  },
  secretHash: Buffer.alloc(32, 7).toString('base64'),
  account: { id: 'a1', name: 'n', email: null, tier: 'free', status: 'active', createdAt: 1, closedAt: null },
  tier: { name: 'free' },
};

test('remote credential source - 200 decodes the credential, 404 is "no such key"', async (t) => {
  const stub = await identityStub((path) =>
    path.endsWith('/k1')
      ? { status: 200, body: credential }
      : { status: 404, body: { code: 'PF_ERR_NOT_FOUND' } },
  );
  const remote = source(stub.url);
  t.after(async () => {
    await remote.close();
    await stub.close();
  });
  const found = await remote.findCredential('k1');
  assert.equal(found?.key.id, 'k1');
  assert.deepEqual(found?.secretHash, new Uint8Array(32).fill(7));
  assert.equal(await remote.findCredential('nope'), undefined);
  assert.equal(await remote.getTier('nope'), undefined);
  assert.ok(remote.lastSuccessAt !== undefined);
});

test('remote credential source - 503 is retried, then surfaces as a transient failure', async (t) => {
  const stub = await identityStub(() => ({
    status: 503,
    body: { code: 'PF_ERR_SHUTTING_DOWN', detail: 'draining' },
  }));
  const remote = source(stub.url);
  t.after(async () => {
    await remote.close();
    await stub.close();
  });
  await assert.rejects(remote.findCredential('k1'), (error: unknown) =>
    isPixelfleetError(error, 'PF_ERR_SHUTTING_DOWN'),
  );
  assert.equal(stub.calls(), 3);
});

test('remote credential source - a wrong cluster secret is not retried', async (t) => {
  const stub = await identityStub(() => ({ status: 200, body: credential }));
  const remote = source(stub.url, 'another-secret-that-is-long-enough');
  t.after(async () => {
    await remote.close();
    await stub.close();
  });
  await assert.rejects(remote.findCredential('k1'), (error: unknown) =>
    isPixelfleetError(error, 'PF_ERR_CLUSTER_UNAUTHORIZED'),
  );
  assert.equal(stub.calls(), 1);
});

test('remote credential source - an unreachable identity role rejects (the edge cache then serves stale)', async (t) => {
  const stub = await identityStub(() => ({ status: 200, body: credential }));
  const url = stub.url;
  await stub.close();
  const remote = source(url);
  t.after(() => remote.close());
  await assert.rejects(remote.findCredential('k1'));
});
