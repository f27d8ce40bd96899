/**
 * `withIdempotency` wired into a real Fastify route the way POST /v1/resize and POST /v1/jobs use
 * it, over the real SQLite store: replays are byte-for-byte over HTTP, errors are problem+json.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, test } from 'node:test';
import Fastify, { type FastifyInstance } from 'fastify';
import {
  digestBody,
  fingerprintRequest,
  idempotencyKeyHeader,
  openIdempotencyStore,
  parseIdempotencyKeyHeader,
  type SqliteIdempotencyStore,
  withIdempotency,
} from '../../../src/api/idempotency/index.ts';
import { registerProblemHandlers } from '../../../src/api/problem.ts';
import { PixelfleetError } from '../../../src/errors/index.ts';
import { tempDir, waitFor } from '../../support/index.ts';

let app: FastifyInstance;
let store: SqliteIdempotencyStore;
let runs = 0;
let hold: Promise<void> | undefined;

const dir = await tempDir(undefined, 'pixelfleet-idempotency-http-');

before(async () => {
  store = openIdempotencyStore(dir.path, { sweepIntervalMs: 0 });
  app = Fastify();
  registerProblemHandlers(app);
  app.addContentTypeParser('*', { parseAs: 'buffer' }, (_request, body, done) => done(null, body));
  app.post('/v1/resize', async (request, reply) => {
    const body = request.body as Buffer;
    const query = request.query as Record<string, string>;
    const { response } = await withIdempotency(
      store,
      {
        scope: String(request.headers['x-account'] ?? 'anonymous'),
        key: parseIdempotencyKeyHeader(request.headers[idempotencyKeyHeader]),
        fingerprint: fingerprintRequest({
          method: request.method,
          path: '/v1/resize',
          query,
          headers: { accept: request.headers.accept },
          bodyDigest: digestBody(body),
        }),
        deadlineMs: Date.now() + 10_000,
      },
      async () => {
        // Validation failures are thrown before any work: the key stays free.
        if (!/^\d+$/.test(query.w ?? '')) {
          throw new PixelfleetError('PF_ERR_INVALID_OPTION', 'w must be a positive integer');
        }
        runs++;
        await hold;
        // Random output makes a re-run visible: a replay must return these exact bytes.
        return {
          status: 200,
          headers: { 'content-type': 'image/webp', 'x-pixelfleet-run': String(runs) },
          body: randomBytes(50_000),
          store: true,
        };
      },
    );
    return reply.code(response.status).headers(response.headers).send(response.body);
  });
  await app.ready();
});

after(async () => {
  await app.close();
  await store.close();
  await dir.remove();
});

const image = randomBytes(2_000);
const post = (url: string, headers: Record<string, string>, payload: Buffer = image) =>
  app.inject({
    method: 'POST',
    url,
    headers: { 'content-type': 'image/jpeg', 'x-account': 'acct_1', ...headers },
    payload,
  });

test('idempotency - a retried POST gets the first response back byte for byte', async () => {
  const first = await post('/v1/resize?w=100&h=50', { 'idempotency-key': 'k-1' });
  const retry = await post('/v1/resize?h=50&w=100', { 'idempotency-key': 'k-1' });
  assert.equal(first.statusCode, 200);
  assert.equal(first.headers['idempotent-replayed'], undefined);
  assert.equal(retry.statusCode, 200);
  assert.equal(retry.headers['idempotent-replayed'], 'true');
  assert.equal(retry.headers['x-pixelfleet-run'], first.headers['x-pixelfleet-run']);
  assert.equal(retry.headers['content-type'], 'image/webp');
  assert.ok(retry.rawPayload.equals(first.rawPayload));
  const unkeyed = await post('/v1/resize?w=100&h=50', {});
  assert.notEqual(unkeyed.headers['x-pixelfleet-run'], first.headers['x-pixelfleet-run']);
});

test('idempotency - reusing a key with another body or Accept is 422 problem+json', async () => {
  await post('/v1/resize?w=100', { 'idempotency-key': 'k-2', accept: 'image/webp' });
  for (const response of [
    await post('/v1/resize?w=100', { 'idempotency-key': 'k-2', accept: 'image/webp' }, randomBytes(10)),
    await post('/v1/resize?w=100', { 'idempotency-key': 'k-2', accept: 'image/avif' }),
    await post('/v1/resize?w=101', { 'idempotency-key': 'k-2', accept: 'image/webp' }),
  ]) {
    assert.equal(response.statusCode, 422);
    assert.equal(response.headers['content-type'], 'application/problem+json');
    assert.equal(response.json().code, 'PF_ERR_IDEMPOTENCY_KEY_REUSED');
  }
  // Another account may use the same key for anything.
  const other = await post('/v1/resize?w=7', { 'idempotency-key': 'k-2', 'x-account': 'acct_2' });
  assert.equal(other.statusCode, 200);
});

test('idempotency - a concurrent duplicate is 409 with Retry-After', async () => {
  let release!: () => void;
  hold = new Promise((resolve) => {
    release = resolve;
  });
  const runsBefore = runs;
  const first = post('/v1/resize?w=100', { 'idempotency-key': 'k-3' });
  await waitFor(() => runs > runsBefore, { message: 'the first request never started its work' });
  const duplicate = await post('/v1/resize?w=100', { 'idempotency-key': 'k-3' });
  assert.equal(duplicate.statusCode, 409);
  assert.equal(duplicate.headers['retry-after'], '1');
  assert.equal(duplicate.json().code, 'PF_ERR_IDEMPOTENCY_IN_PROGRESS');
  release();
  hold = undefined;
  assert.equal((await first).statusCode, 200);
});

test('idempotency - a validation failure is not stored, so the corrected request may reuse the key', async () => {
  const rejected = await post('/v1/resize?w=abc', { 'idempotency-key': 'k-4' });
  assert.equal(rejected.statusCode, 400);
  assert.equal(rejected.json().code, 'PF_ERR_INVALID_OPTION');
  const fixed = await post('/v1/resize?w=120', { 'idempotency-key': 'k-4' });
  assert.equal(fixed.statusCode, 200);
  assert.equal(fixed.headers['idempotent-replayed'], undefined);
});

test('idempotency - a malformed key is 400 problem+json', async () => {
  const response = await post('/v1/resize?w=100', { 'idempotency-key': 'x'.repeat(256) });
  assert.equal(response.statusCode, 400);
  assert.equal(response.json().code, 'PF_ERR_INVALID_IDEMPOTENCY_KEY');
});
