import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { pino } from 'pino';
import { request } from 'undici';
import { HeartbeatClient, type MemberAnnouncement } from '../../src/discovery/index.ts';
import { type Gateway, startGateway } from '../../src/gateway/index.ts';
import { waitFor } from '../support/index.ts';
import { startUpstreams, type TestUpstream } from './upstream-servers.ts';

const silent = pino({ level: 'silent' });
const secret = 'discovery-test-secret';
const intervalMs = 50;
let upstreams: TestUpstream[];
let gateway: Gateway;

before(async () => {
  upstreams = await startUpstreams(3);
  gateway = await startGateway({
    host: '127.0.0.1',
    port: 0,
    controlHost: '127.0.0.1',
    controlPort: 0,
    clusterSecret: secret,
    logger: silent,
    defaultMetrics: false,
    healthCheck: false,
    strategy: 'round-robin',
    registrySweepIntervalMs: 25,
  });
});
after(async () => {
  await gateway.close();
  await Promise.all(upstreams.map((upstream) => upstream.close()));
});

function announcement(upstream: TestUpstream, ready = true): MemberAnnouncement {
  return { id: upstream.id, role: 'api', url: upstream.url, ready, startedAt: 1, intervalMs };
}

function heartbeatClient(upstream: TestUpstream, ready: () => boolean = () => true): HeartbeatClient {
  return new HeartbeatClient({
    registryUrls: [gateway.controlUrl],
    clusterSecret: secret,
    intervalMs,
    announcement: () => announcement(upstream, ready()),
  });
}

function routedIds(): string[] {
  return gateway
    .status()
    .upstreams.map((upstream) => upstream.id)
    .sort();
}

async function spread(count: number): Promise<Map<string, number>> {
  const counts = new Map<string, number>();
  for (let i = 0; i < count; i += 1) {
    const response = await request(`${gateway.url}/v1/x`);
    await response.body.dump();
    assert.equal(response.statusCode, 200);
    const id = String(response.headers['x-upstream']);
    counts.set(id, (counts.get(id) ?? 0) + 1);
  }
  return counts;
}

test('gateway discovery - upstreams announced by heartbeat are routed to; a graceful leave drains', async () => {
  const clients = upstreams.map((upstream) => heartbeatClient(upstream));
  try {
    for (const client of clients) client.start();
    await waitFor(() => routedIds().length === 3, { timeoutMs: 5000, message: 'three upstreams registered' });
    const counts = await spread(9);
    assert.deepEqual([...counts.values()], [3, 3, 3]);

    // A request in flight on api-3 finishes after api-3 leaves; new requests avoid it.
    upstreams[2]!.behaviour = 'slow';
    upstreams[2]!.slowMs = 400;
    // Round robin over three: one of three concurrent requests lands on api-3.
    const pending = Array.from({ length: 3 }, () =>
      request(`${gateway.url}/v1/slow`).then(async (response) => {
        await response.body.dump();
        return response.statusCode;
      }),
    );
    await waitFor(() => gateway.status().upstreams.find((upstream) => upstream.id === 'api-3')!.inflight > 0);
    await clients[2]!.stop();
    await waitFor(() => !routedIds().includes('api-3'), { timeoutMs: 5000 });
    assert.deepEqual(
      gateway.status().draining.map((upstream) => upstream.id),
      ['api-3'],
    );
    const after = await spread(6);
    assert.equal(after.get('api-3'), undefined);
    assert.deepEqual(
      await Promise.all(pending),
      [200, 200, 200],
      'the draining upstream finished its request',
    );
    upstreams[2]!.behaviour = 'ok';
  } finally {
    await Promise.all(clients.map((client) => client.stop()));
  }
  await waitFor(() => routedIds().length === 0, { timeoutMs: 5000 });
});

test('gateway discovery - a member that misses heartbeats is dropped; one not ready is not routed', async () => {
  let notReady = true;
  const readyLater = heartbeatClient(upstreams[1]!, () => !notReady);
  readyLater.start();
  // api-1 heartbeats by hand so the test can go silent without a graceful leave.
  const beat = async () => {
    const response = await request(`${gateway.controlUrl}/registry/heartbeat`, {
      method: 'POST',
      headers: { authorization: `Bearer ${secret}`, 'content-type': 'application/json' },
      body: JSON.stringify(announcement(upstreams[0]!)),
    });
    await response.body.dump();
    assert.equal(response.statusCode, 200);
  };
  await beat();
  const timer = setInterval(() => void beat().catch(() => {}), intervalMs);
  try {
    await waitFor(() => routedIds().includes('api-1'), { timeoutMs: 5000 });
    await new Promise((resolve) => setTimeout(resolve, intervalMs * 4));
    assert.deepEqual(routedIds(), ['api-1'], 'api-2 announces not ready');
    notReady = false;
    await waitFor(() => routedIds().includes('api-2'), { timeoutMs: 5000 });

    clearInterval(timer);
    const silentSince = Date.now();
    await waitFor(() => !routedIds().includes('api-1'), { timeoutMs: 5000, message: 'api-1 dropped' });
    // Suspect after 3 missed intervals stops routing; dead after 6 drops it from the registry.
    assert.ok(Date.now() - silentSince >= intervalMs * 3 - 10);
    assert.deepEqual(routedIds(), ['api-2']);
    const counts = await spread(4);
    assert.deepEqual([...counts.keys()], ['api-2']);
  } finally {
    clearInterval(timer);
    await readyLater.stop();
  }
});
