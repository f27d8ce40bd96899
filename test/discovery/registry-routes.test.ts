import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { test } from 'node:test';
import Fastify, { type FastifyInstance } from 'fastify';
import {
  HeartbeatClient,
  type MemberAnnouncement,
  MemberRegistry,
  type MemberView,
  registerRegistryRoutes,
} from '../../src/discovery/index.ts';
import { isPixelfleetError } from '../../src/errors/index.ts';

const secret = 'test-cluster-secret';
const auth = { authorization: `Bearer ${secret}` };

/**
 * A registry on loopback. `forceCloseConnections` is for registries closed while members still
 * beat: a member's connection that is open but has not sent its request yet would otherwise hold
 * `close()` until Node's headers timeout.
 */
async function startRegistry(
  port = 0,
  forceCloseConnections = false,
): Promise<{ app: FastifyInstance; registry: MemberRegistry; url: string; beats: () => number }> {
  const registry = new MemberRegistry();
  const app = Fastify({ forceCloseConnections });
  let beats = 0;
  app.addHook('onRequest', async (request) => {
    if (request.url === '/registry/heartbeat') beats += 1;
  });
  registerRegistryRoutes(app, { registry, clusterSecret: secret });
  const url = await app.listen({ host: '127.0.0.1', port });
  return { app, registry, url, beats: () => beats };
}

function announcement(id: string, overrides: Partial<MemberAnnouncement> = {}): MemberAnnouncement {
  return {
    id,
    role: 'api',
    url: 'http://127.0.0.1:9/',
    ready: true,
    startedAt: Date.now(),
    intervalMs: 10_000, // long: the routes test must not see the member expire under load
    ...overrides,
  };
}

async function waitFor(condition: () => boolean, timeoutMs = 5000): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > until) throw new Error('condition not met in time');
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

test('discovery routes - heartbeat, list and leave behind the cluster secret', async (t) => {
  const { app, url } = await startRegistry();
  t.after(() => app.close());

  const beat = await fetch(`${url}/registry/heartbeat`, {
    method: 'POST',
    headers: { ...auth, 'content-type': 'application/json' },
    body: JSON.stringify(announcement('api-1')),
  });
  assert.equal(beat.status, 200);
  const { members } = (await beat.json()) as { members: MemberView[] };
  assert.deepEqual(
    members.map((m) => [m.id, m.status, m.weight]),
    [['api-1', 'alive', 1]],
  );

  const listed = (await (await fetch(`${url}/registry/members`, { headers: auth })).json()) as {
    members: MemberView[];
  };
  assert.equal(listed.members[0]?.id, 'api-1');

  for (const headers of [{}, { authorization: 'Bearer wrong' }, { authorization: secret }]) {
    const refused = await fetch(`${url}/registry/members`, { headers });
    assert.equal(refused.status, 401);
    assert.equal(refused.headers.get('content-type'), 'application/problem+json');
    assert.equal(((await refused.json()) as { code: string }).code, 'PF_ERR_CLUSTER_UNAUTHORIZED');
  }

  const malformed = await fetch(`${url}/registry/heartbeat`, {
    method: 'POST',
    headers: { ...auth, 'content-type': 'application/json' },
    body: JSON.stringify({ ...announcement('api-2'), role: 'gateway' }),
  });
  assert.equal(malformed.status, 400);
  assert.equal(((await malformed.json()) as { code: string }).code, 'PF_ERR_BAD_REQUEST');
  const notJson = await fetch(`${url}/registry/heartbeat`, {
    method: 'POST',
    headers: { ...auth, 'content-type': 'application/json' },
    body: '{',
  });
  assert.equal(notJson.status, 400);
  assert.equal(notJson.headers.get('content-type'), 'application/problem+json');

  const left = await fetch(`${url}/registry/members/api-1`, { method: 'DELETE', headers: auth });
  assert.equal(left.status, 204);
  const again = await fetch(`${url}/registry/members/api-1`, { method: 'DELETE', headers: auth });
  assert.equal(again.status, 404);
});

test('discovery client - beats every interval, a stalled or dead registry does not delay the others', async (t) => {
  const good = await startRegistry();
  t.after(() => good.app.close());
  // A registry that accepts connections and never answers, and one that refuses them.
  const stalled: Server = createServer(() => {});
  await new Promise<void>((resolve) => stalled.listen(0, '127.0.0.1', resolve));
  t.after(() => {
    stalled.closeAllConnections();
    stalled.close();
  });
  const refused = createServer();
  await new Promise<void>((resolve) => refused.listen(0, '127.0.0.1', resolve));
  const refusedPort = (refused.address() as AddressInfo).port;
  await new Promise<void>((resolve) => refused.close(() => resolve()));

  const errors: unknown[] = [];
  let reported: MemberView[] = [];
  const client = new HeartbeatClient({
    registryUrls: [
      `http://127.0.0.1:${(stalled.address() as AddressInfo).port}`,
      `http://127.0.0.1:${refusedPort}/`,
      good.url,
    ],
    clusterSecret: secret,
    intervalMs: 50,
    announcement: () => announcement('api-7', { load: { inflight: 3 } }),
    onError: (error) => errors.push(error),
    onMembers: (members) => {
      reported = members;
    },
  });
  t.after(() => client.stop());
  const started = Date.now();
  client.start();
  await waitFor(() => good.beats() >= 8);
  const elapsed = Date.now() - started;
  // 8 beats at 50 ms need ≥ 350 ms; the stalled registry's 100 ms timeouts must not stretch it much.
  assert.ok(elapsed < 2000, `8 beats took ${elapsed} ms`);
  assert.equal(good.registry.member('api-7')?.status, 'alive');
  assert.deepEqual(good.registry.member('api-7')?.load, { inflight: 3 });
  assert.deepEqual(
    reported.map((m) => m.id),
    ['api-7'],
  );
  assert.ok(errors.length > 0 && errors.every((error) => isPixelfleetError(error, 'PF_ERR_REMOTE_FAILED')));

  // Graceful leave: after stop() resolves the member is gone and no late heartbeat re-adds it.
  const stopStarted = Date.now();
  await client.stop();
  assert.ok(Date.now() - stopStarted < 2500, 'leave is capped even with a stalled registry');
  assert.equal(good.registry.member('api-7'), undefined);
  const beatsAfterStop = good.beats();
  await new Promise((resolve) => setTimeout(resolve, 150));
  assert.equal(good.beats(), beatsAfterStop);
  assert.equal(good.registry.member('api-7'), undefined);
});

test('discovery client - a restarted registry relearns the member within an interval or two', async (t) => {
  const first = await startRegistry(0, true);
  const port = Number(new URL(first.url).port);
  const client = new HeartbeatClient({
    registryUrls: [first.url],
    clusterSecret: secret,
    intervalMs: 50,
    announcement: () => announcement('worker-3', { role: 'worker', url: undefined }),
  });
  t.after(() => client.stop());
  client.start();
  await waitFor(() => first.registry.member('worker-3') !== undefined);
  await first.app.close();
  const second = await startRegistry(port, true);
  t.after(() => second.app.close());
  const restartedAt = Date.now();
  await waitFor(() => second.registry.member('worker-3') !== undefined);
  assert.ok(Date.now() - restartedAt < 1000, `relearned after ${Date.now() - restartedAt} ms`);
  assert.equal(second.registry.member('worker-3')?.role, 'worker');
});

test('discovery client - a wrong secret is reported through onError and the member is not admitted', async (t) => {
  const { app, registry, url } = await startRegistry();
  t.after(() => app.close());
  const errors: unknown[] = [];
  const client = new HeartbeatClient({
    registryUrls: [url],
    clusterSecret: 'not-the-secret',
    intervalMs: 50,
    announcement: () => announcement('intruder'),
    onError: (error) => errors.push(error),
  });
  client.start();
  await waitFor(() => errors.some((error) => isPixelfleetError(error, 'PF_ERR_CLUSTER_UNAUTHORIZED')));
  await client.stop();
  // Under load a heartbeat may also time out; the refusal must be among the reports.
  assert.ok(errors.some((error) => isPixelfleetError(error, 'PF_ERR_CLUSTER_UNAUTHORIZED')));
  assert.equal(registry.member('intruder'), undefined);
  assert.throws(
    () =>
      new HeartbeatClient({ registryUrls: [], clusterSecret: 's', announcement: () => announcement('x') }),
    RangeError,
  );
  assert.throws(
    () =>
      new HeartbeatClient({
        registryUrls: ['nope'],
        clusterSecret: 's',
        announcement: () => announcement('x'),
      }),
    RangeError,
  );
});
