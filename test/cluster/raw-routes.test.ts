import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { test } from 'node:test';
import Fastify from 'fastify';
import { RawRoutes } from '../../src/cluster/http/raw-routes.ts';
import { PixelfleetError } from '../../src/errors/index.ts';
import { clusterSecretCheck } from '../../src/identity/index.ts';

const secret = 'raw-routes-test-secret-0123456789abcdef';

/** A listener as the cluster node builds it: raw routes first, fastify for the rest. */
async function listener(t: { after: (fn: () => unknown) => void }, bodyLimit = 1024) {
  const errors: unknown[] = [];
  const raw = new RawRoutes({ bodyLimit, onError: (error) => errors.push(error) });
  const check = clusterSecretCheck(secret);
  raw.add('GET', /^\/internal\/jobs\/(?<id>[^/]+)\/input$/, check, (request) => ({
    contentType: 'application/octet-stream',
    body: Buffer.from(`input of ${request.params.id} at ${request.query.get('location')}`),
  }));
  raw.add('POST', /^\/internal\/jobs\/(?<id>[^/]+)\/result$/, check, (request) => {
    if (request.params.id === 'gone') throw new PixelfleetError('PF_ERR_INPUT_GONE', 'gone');
    if (request.params.id === 'bug') throw new Error('a bug');
    return {
      status: 201,
      contentType: 'application/json',
      body: JSON.stringify({ bytes: request.body.length }),
    };
  });
  const app = Fastify({
    serverFactory: (handler) =>
      createServer((request, response) => {
        if (!raw.serve(request, response)) handler(request, response);
      }),
  });
  app.get('/healthz', async () => ({ status: 'ok' }));
  await app.listen({ host: '127.0.0.1', port: 0 });
  t.after(() => app.close());
  const base = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`;
  return { base, errors };
}

const auth = { authorization: `Bearer ${secret}` };

interface Problem {
  code: string;
  detail: string;
  instance?: string;
}
const problemOf = async (response: Response) => (await response.json()) as Problem;

test('raw routes - serve their paths, leave the rest to fastify', async (t) => {
  const { base } = await listener(t);
  const input = await fetch(`${base}/internal/jobs/j1/input?location=memory`, { headers: auth });
  assert.equal(input.status, 200);
  assert.equal(input.headers.get('content-type'), 'application/octet-stream');
  assert.equal(await input.text(), 'input of j1 at memory');

  const posted = await fetch(`${base}/internal/jobs/j1/result`, {
    method: 'POST',
    headers: auth,
    body: Buffer.alloc(700, 1),
  });
  assert.equal(posted.status, 201);
  assert.deepEqual(await posted.json(), { bytes: 700 });

  const health = await fetch(`${base}/healthz`);
  assert.deepEqual(await health.json(), { status: 'ok' });
  // Same path, other method: not a raw route, so fastify's 404.
  const wrongMethod = await fetch(`${base}/internal/jobs/j1/input`, { method: 'DELETE', headers: auth });
  assert.equal(wrongMethod.status, 404);
  await wrongMethod.arrayBuffer();
});

test('raw routes - refuse without the cluster secret before reading the body, as problem+json', async (t) => {
  const { base } = await listener(t);
  for (const headers of [{}, { authorization: 'Bearer wrong' }, { authorization: secret }]) {
    const response = await fetch(`${base}/internal/jobs/j1/input`, { headers });
    assert.equal(response.status, 401);
    assert.equal(response.headers.get('content-type'), 'application/problem+json');
    const problem = await problemOf(response);
    assert.equal(problem.code, 'PF_ERR_CLUSTER_UNAUTHORIZED');
    assert.equal(problem.instance, '/internal/jobs/j1/input');
  }
});

test('raw routes - a body over the limit is 413 and ends the connection', async (t) => {
  const { base } = await listener(t, 1024);
  const response = await fetch(`${base}/internal/jobs/j1/result`, {
    method: 'POST',
    headers: auth,
    body: Buffer.alloc(4096),
  });
  assert.equal(response.status, 413);
  assert.equal(response.headers.get('connection'), 'close');
  assert.equal((await problemOf(response)).code, 'PF_ERR_BODY_TOO_LARGE');
});

test('raw routes - a Pixelfleet error keeps its status and code; anything else is 500 and reported', async (t) => {
  const { base, errors } = await listener(t);
  const gone = await fetch(`${base}/internal/jobs/gone/result`, { method: 'POST', headers: auth, body: 'x' });
  assert.equal(gone.status, 410);
  assert.equal((await problemOf(gone)).code, 'PF_ERR_INPUT_GONE');
  assert.equal(errors.length, 0);

  const bug = await fetch(`${base}/internal/jobs/bug/result`, { method: 'POST', headers: auth, body: 'x' });
  assert.equal(bug.status, 500);
  const problem = await problemOf(bug);
  assert.equal(problem.code, 'PF_ERR_INTERNAL');
  assert.doesNotMatch(problem.detail, /a bug/, 'internals stay in the log');
  assert.equal(errors.length, 1);
});
