import assert from 'node:assert/strict';
import { request as httpRequest, type IncomingHttpHeaders } from 'node:http';
import { after, before, test } from 'node:test';
import { pino } from 'pino';
import { request } from 'undici';
import type { Gateway, GatewayOptions } from '../../src/gateway/index.ts';
import { startUpstreams, type TestUpstream, withGateway as withGatewayOn } from './upstream-servers.ts';

let upstreams: TestUpstream[];

before(async () => {
  upstreams = await startUpstreams(3);
});
after(async () => {
  await Promise.all(upstreams.map((upstream) => upstream.close()));
});

function withGateway(options: Partial<GatewayOptions>, body: (gateway: Gateway) => Promise<void>) {
  return withGatewayOn(upstreams, { strategy: 'least-time', ...options }, body);
}

function resetHits() {
  for (const upstream of upstreams) {
    upstream.hits = 0;
    upstream.behaviour = 'ok';
  }
}

async function get(url: string, headers: Record<string, string> = {}) {
  const response = await request(url, { headers });
  const text = await response.body.text();
  return { status: response.statusCode, headers: response.headers, text };
}

function rawGet(url: string, headers: Record<string, string>): Promise<{ headers: IncomingHttpHeaders }> {
  return new Promise((resolve, reject) => {
    const outgoing = httpRequest(url, { headers }, (response) => {
      response.resume();
      response.once('end', () => resolve({ headers: response.headers }));
    });
    outgoing.once('error', reject);
    outgoing.end();
  });
}

test('gateway http - round robin spreads requests evenly over three upstreams', async () => {
  resetHits();
  await withGateway({ strategy: 'round-robin' }, async (gateway) => {
    const answered = new Map<string, number>();
    for (let i = 0; i < 30; i += 1) {
      const answer = await get(`${gateway.url}/v1/thing`);
      assert.equal(answer.status, 200);
      const id = String(answer.headers['x-upstream']);
      answered.set(id, (answered.get(id) ?? 0) + 1);
    }
    assert.deepEqual(
      upstreams.map((upstream) => answered.get(upstream.id)),
      [10, 10, 10],
    );
  });
});

test('gateway http - smooth weighted round robin follows the weights', async () => {
  resetHits();
  const weights = [3, 2, 1];
  await withGateway(
    {
      strategy: 'weighted-round-robin',
      upstreams: upstreams.map((upstream, index) => ({
        id: upstream.id,
        url: upstream.url,
        weight: weights[index],
      })),
    },
    async (gateway) => {
      // Counted by the answering upstream (the routing decision), not by upstream hits.
      const answered = new Map<string, number>();
      for (let i = 0; i < 60; i += 1) {
        const id = String((await get(`${gateway.url}/x`)).headers['x-upstream']);
        answered.set(id, (answered.get(id) ?? 0) + 1);
      }
      assert.deepEqual(
        upstreams.map((upstream) => answered.get(upstream.id)),
        [30, 20, 10],
      );
    },
  );
});

test('gateway http - least connections and least time use every healthy upstream; least time avoids a slow one', async () => {
  resetHits();
  await withGateway({ strategy: 'least-connections' }, async (gateway) => {
    await Promise.all(Array.from({ length: 30 }, () => get(`${gateway.url}/x`)));
    for (const upstream of upstreams) assert.ok(upstream.hits > 0, `${upstream.id} got none`);
  });
  resetHits();
  upstreams[2]!.behaviour = 'slow';
  upstreams[2]!.slowMs = 150;
  await withGateway({ strategy: 'least-time' }, async (gateway) => {
    for (let i = 0; i < 40; i += 1) assert.equal((await get(`${gateway.url}/x`)).status, 200);
    // Two random choices of three: the slow one can only win against itself, which never happens.
    assert.ok(upstreams[2]!.hits <= 3, `slow upstream got ${upstreams[2]!.hits}`);
    assert.ok(upstreams[0]!.hits + upstreams[1]!.hits >= 37);
  });
  resetHits();
});

test('gateway http - consistent hash sends one API key to one upstream', async () => {
  resetHits();
  await withGateway({ strategy: 'consistent-hash' }, async (gateway) => {
    const served = new Map<string, Set<string>>();
    for (let key = 0; key < 20; key += 1) {
      for (let i = 0; i < 3; i += 1) {
        const headers: Record<string, string> =
          i % 2 === 0 ? { authorization: `Bearer pk_test_${key}` } : { 'x-api-key': `pk_test_${key}` };
        const { headers: responseHeaders } = await get(`${gateway.url}/v1/resize`, headers);
        const set = served.get(String(key)) ?? new Set();
        set.add(String(responseHeaders['x-upstream']));
        served.set(String(key), set);
      }
    }
    for (const [key, set] of served) assert.equal(set.size, 1, `key ${key} went to ${[...set]}`);
    const used = new Set([...served.values()].flatMap((set) => [...set]));
    assert.ok(used.size >= 2, 'keys spread over more than one upstream');
  });
});

test('gateway http - adds X-Request-Id, traceparent, forwarded and deadline headers, strips hop-by-hop', async () => {
  resetHits();
  await withGateway({ strategy: 'round-robin' }, async (gateway) => {
    // node:http, because undici refuses to send hop-by-hop headers at all.
    const response = await rawGet(`${gateway.url}/v1/echo?secret=1`, {
      'x-custom': 'kept',
      'keep-alive': 'timeout=5',
      'x-drop-me': 'yes',
      connection: 'keep-alive, x-drop-me',
    });
    const seen = upstreams.find((upstream) => upstream.hits === 1)!.lastHeaders!;
    assert.match(String(seen['x-request-id']), /^[0-9a-f-]{36}$/);
    assert.equal(response.headers['x-request-id'], seen['x-request-id']);
    assert.match(String(seen.traceparent), /^00-[0-9a-f]{32}-[0-9a-f]{16}-01$/);
    assert.equal(seen['x-forwarded-for'], '127.0.0.1');
    assert.equal(seen['x-forwarded-proto'], 'http');
    assert.equal(seen['x-forwarded-host'], new URL(gateway.url).host);
    const deadline = Number(seen['pixelfleet-deadline']);
    assert.ok(deadline > 25_000 && deadline <= 30_000, `deadline ${deadline}`);
    assert.equal(seen['x-custom'], 'kept');
    assert.equal(seen['x-drop-me'], undefined);
    assert.equal(seen['keep-alive'], undefined);

    // A caller's request id and trace are kept (the gateway adds its own span to the trace).
    resetHits();
    const traceId = '4bf92f3577b34da6a3ce929d0e0e4736';
    await get(`${gateway.url}/v1/echo`, {
      'x-request-id': 'caller-id-1',
      traceparent: `00-${traceId}-00f067aa0ba902b7-01`,
      'pixelfleet-deadline': '1234',
      'x-forwarded-for': '203.0.113.9',
    });
    const next = upstreams.find((upstream) => upstream.hits === 1)!.lastHeaders!;
    assert.equal(next['x-request-id'], 'caller-id-1');
    assert.equal(String(next.traceparent).split('-')[1], traceId);
    assert.ok(Number(next['pixelfleet-deadline']) <= 1234);
    assert.equal(next['x-forwarded-for'], '203.0.113.9, 127.0.0.1');
  });
});

test('gateway http - forwards bodies and streams responses; 413 problem+json beyond the body limit', async () => {
  resetHits();
  await withGateway({ strategy: 'round-robin', maxBodyBytes: 64 * 1024 }, async (gateway) => {
    const payload = Buffer.alloc(48 * 1024, 7);
    const response = await request(`${gateway.url}/v1/resize?width=10`, { method: 'POST', body: payload });
    const answer = (await response.body.json()) as { bytes: number; url: string };
    assert.equal(response.statusCode, 200);
    assert.equal(answer.bytes, payload.length);
    assert.equal(answer.url, '/v1/resize?width=10');
    assert.ok(upstreams.some((upstream) => upstream.lastBody?.equals(payload)));

    const tooLarge = await request(`${gateway.url}/v1/resize`, {
      method: 'POST',
      body: Buffer.alloc(65 * 1024),
    });
    assert.equal(tooLarge.statusCode, 413);
    assert.equal(tooLarge.headers['content-type'], 'application/problem+json');
    assert.equal(((await tooLarge.body.json()) as { code: string }).code, 'PF_ERR_BODY_TOO_LARGE');
  });
});

test('gateway http - problem+json 503 PF_ERR_NO_UPSTREAM when no upstream is known', async () => {
  await withGateway({ upstreams: [] }, async (gateway) => {
    const response = await request(`${gateway.url}/v1/resize`);
    assert.equal(response.statusCode, 503);
    assert.equal(response.headers['content-type'], 'application/problem+json');
    assert.ok(response.headers['x-request-id']);
    assert.equal(response.headers['retry-after'], '1');
    const problem = (await response.body.json()) as { code: string; status: number; type: string };
    assert.equal(problem.code, 'PF_ERR_NO_UPSTREAM');
    assert.equal(problem.status, 503);
    const ready = await request(`${gateway.controlUrl}/readyz`);
    assert.equal(ready.statusCode, 503);
    await ready.body.dump();
  });
});

test('gateway http - control listener serves /healthz, /readyz, /status and /metrics', async () => {
  resetHits();
  await withGateway({ strategy: 'round-robin' }, async (gateway) => {
    for (let i = 0; i < 6; i += 1) await get(`${gateway.url}/x`);
    assert.equal((await get(`${gateway.controlUrl}/healthz`)).status, 200);
    assert.equal((await get(`${gateway.controlUrl}/readyz`)).status, 200);
    const status = JSON.parse((await get(`${gateway.controlUrl}/status`)).text) as {
      upstreams: Array<{ id: string; healthy: boolean; breaker: { state: string }; latencyEwmaMs: number }>;
    };
    assert.equal(status.upstreams.length, 3);
    for (const upstream of status.upstreams) {
      assert.equal(upstream.healthy, true);
      assert.equal(upstream.breaker.state, 'closed');
      assert.ok(upstream.latencyEwmaMs >= 0);
    }
    const metrics = (await get(`${gateway.controlUrl}/metrics`)).text;
    assert.match(metrics, /pixelfleet_gateway_requests_total\{upstream="api-1",status_class="2xx"\} 2/);
    assert.match(metrics, /pixelfleet_remote_call_seconds_count\{dependency="api-1"\} 2/);
    assert.match(metrics, /pixelfleet_circuit_breaker_state\{dependency="api-1"\} 0/);
    assert.match(metrics, /pixelfleet_gateway_upstream_healthy\{upstream="api-2"\} 1/);
    // The registry routes are behind the cluster secret.
    assert.equal((await get(`${gateway.controlUrl}/registry/members`)).status, 401);
    assert.equal(
      (await get(`${gateway.controlUrl}/registry/members`, { authorization: 'Bearer test-secret' })).status,
      200,
    );
  });
});

test('gateway http - one JSON access-log line per request, without the API key or query string', async () => {
  resetHits();
  const lines: Array<Record<string, unknown>> = [];
  const logger = pino(
    { level: 'info' },
    {
      write(line: string) {
        lines.push(JSON.parse(line) as Record<string, unknown>);
      },
    },
  );
  await withGateway({ strategy: 'round-robin', logger }, async (gateway) => {
    await get(`${gateway.url}/v1/resize?token=hidden`, { authorization: 'Bearer pk_never_logged' });
    await waitForLine(lines);
  });
  const access = lines.filter((line) => line.msg === 'gateway request');
  assert.equal(access.length, 1);
  const entry = access[0]!;
  assert.equal(entry.method, 'GET');
  assert.equal(entry.path, '/v1/resize');
  assert.equal(entry.status, 200);
  assert.equal(entry.attempts, 1);
  assert.match(String(entry.upstream), /^api-\d$/);
  assert.match(String(entry.requestId), /^[0-9a-f-]{36}$/);
  assert.match(String(entry.traceId), /^[0-9a-f]{32}$/);
  assert.ok(typeof entry.durationMs === 'number' && typeof entry.bytesOut === 'number');
  const all = JSON.stringify(lines);
  assert.ok(!all.includes('pk_never_logged') && !all.includes('hidden'));
});

async function waitForLine(lines: unknown[]): Promise<void> {
  for (let i = 0; i < 100 && lines.length === 0; i += 1)
    await new Promise((resolve) => setTimeout(resolve, 10));
}
