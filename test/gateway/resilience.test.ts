import assert from 'node:assert/strict';
import { after, before, beforeEach, test } from 'node:test';
import { request } from 'undici';
import type { Gateway, GatewayOptions, GatewayStatus } from '../../src/gateway/index.ts';
import { waitFor } from '../support/index.ts';
import {
  refusedPort,
  startUpstreams,
  type TestUpstream,
  withGateway as withGatewayOn,
} from './upstream-servers.ts';

let upstreams: TestUpstream[];

before(async () => {
  upstreams = await startUpstreams(3);
});
after(async () => {
  await Promise.all(upstreams.map((upstream) => upstream.close()));
});
beforeEach(() => {
  for (const upstream of upstreams) {
    upstream.hits = 0;
    upstream.behaviour = 'ok';
    upstream.ready = true;
  }
});

/** Breakers and ejection that never trip, so a test sees only the mechanism it exercises. */
const inert: Partial<GatewayOptions> = {
  breaker: { minimumRequests: 1_000_000 },
  outlierDetection: { consecutiveFailures: 1_000_000 },
};

function withGateway(options: Partial<GatewayOptions>, body: (gateway: Gateway) => Promise<void>) {
  return withGatewayOn(upstreams, options, body);
}

async function send(gateway: Gateway, method = 'GET', headers: Record<string, string> = {}) {
  const response = await request(`${gateway.url}/v1/resize`, {
    method: method as 'GET',
    headers,
    body: method === 'GET' ? undefined : Buffer.from('image-bytes'),
  });
  const text = await response.body.text();
  return { status: response.statusCode, upstream: response.headers['x-upstream'], text };
}

function upstreamStatus(gateway: Gateway, id: string): GatewayStatus['upstreams'][number] {
  return gateway.status().upstreams.find((upstream) => upstream.id === id)!;
}

test('gateway resilience - retries an idempotent request on another upstream after 502/503/504', async () => {
  await withGateway(inert, async (gateway) => {
    upstreams[0]!.behaviour = 'fail-502';
    const first = await send(gateway, 'GET');
    assert.equal(first.status, 200);
    assert.notEqual(first.upstream, 'api-1');
    assert.equal(upstreams[0]!.hits, 1);
    // A POST with an Idempotency-Key is replayable too.
    upstreams[0]!.behaviour = 'fail-503';
    upstreams[1]!.behaviour = 'fail-503';
    for (let i = 0; i < 3; i += 1) {
      const answer = await send(gateway, 'POST', { 'idempotency-key': `key-${i}` });
      assert.equal(answer.status, 200);
      assert.equal(answer.upstream, 'api-3');
    }
  });
});

test('gateway resilience - a POST without Idempotency-Key is not retried once sent', async () => {
  await withGateway(inert, async (gateway) => {
    upstreams[0]!.behaviour = 'fail-503';
    const answer = await send(gateway, 'POST');
    assert.equal(answer.status, 503);
    assert.equal(upstreams[0]!.hits + upstreams[1]!.hits + upstreams[2]!.hits, 1);
    // A connection reset after the request was written: unknown whether it acted, so no retry.
    upstreams[1]!.behaviour = 'reset';
    const reset = await send(gateway, 'POST');
    assert.equal(reset.status, 502);
    assert.equal(JSON.parse(reset.text).code, 'PF_ERR_UPSTREAM_FAILED');
    assert.equal(upstreams[2]!.hits, 0);
  });
});

test('gateway resilience - a POST is retried when the connection was refused (nothing was sent)', async () => {
  const deadPort = await refusedPort();
  await withGateway(
    {
      ...inert,
      upstreams: [
        { id: 'dead', url: `http://127.0.0.1:${deadPort}` },
        { id: upstreams[0]!.id, url: upstreams[0]!.url },
      ],
    },
    async (gateway) => {
      for (let i = 0; i < 4; i += 1) {
        const answer = await send(gateway, 'POST');
        assert.equal(answer.status, 200);
        assert.equal(answer.upstream, 'api-1');
      }
      assert.equal(upstreams[0]!.hits, 4);
    },
  );
});

test('gateway resilience - retries stay within the retry budget under a 100 %-failing upstream', async () => {
  const requests = 300;
  await withGateway(
    { ...inert, retryBudget: { ratio: 0.2, minRetriesPerSecond: 0.5, windowMs: 60_000 } },
    async (gateway) => {
      upstreams[0]!.behaviour = 'fail-503';
      let failed = 0;
      for (let i = 0; i < requests; i += 1) {
        if ((await send(gateway, 'GET')).status !== 200) failed += 1;
      }
      const hits = upstreams.reduce((sum, upstream) => sum + upstream.hits, 0);
      const extra = hits - requests;
      // Budget: 20 % of 300 plus a floor of 0.5/s over the 60 s window = 60 + 30.
      assert.ok(extra <= 0.2 * requests + 30, `extra upstream requests ${extra}`);
      // A third of the requests meet the failing upstream first; the budget cannot retry them all.
      assert.ok(extra >= 0.2 * requests, `budget unused: ${extra}`);
      assert.equal(failed, upstreams[0]!.hits - extra);
      assert.ok(failed > 0);
      const metrics = await (await request(`${gateway.controlUrl}/metrics`)).body.text();
      assert.match(metrics, /pixelfleet_retry_budget_exhausted_total\{dependency="gateway"\} [1-9]/);
      assert.match(metrics, new RegExp(`pixelfleet_remote_retries_total\\{dependency="gateway"\\} ${extra}`));
    },
  );
});

test('gateway resilience - ejects an upstream after consecutive failures and brings it back after the ejection time', async () => {
  await withGateway(
    {
      breaker: { minimumRequests: 1_000_000 },
      outlierDetection: { consecutiveFailures: 3, baseEjectionMs: 600 },
    },
    async (gateway) => {
      upstreams[0]!.behaviour = 'fail-500';
      // POSTs are not retried, so every third one meets api-1 until it is ejected.
      for (let i = 0; i < 9; i += 1) await send(gateway, 'POST');
      assert.equal(upstreams[0]!.hits, 3);
      assert.equal(upstreamStatus(gateway, 'api-1').ejected, true);
      for (let i = 0; i < 6; i += 1) assert.equal((await send(gateway, 'POST')).status, 200);
      assert.equal(upstreams[0]!.hits, 3, 'no traffic while ejected');

      upstreams[0]!.behaviour = 'ok';
      await waitFor(() => !upstreamStatus(gateway, 'api-1').ejected, { timeoutMs: 5000 });
      for (let i = 0; i < 6; i += 1) await send(gateway, 'POST');
      assert.ok(upstreams[0]!.hits >= 5, 'back in rotation');

      // A second ejection lasts longer (base × times ejected).
      upstreams[0]!.behaviour = 'fail-500';
      for (let i = 0; i < 9 && !upstreamStatus(gateway, 'api-1').ejected; i += 1) await send(gateway, 'POST');
      const status = upstreamStatus(gateway, 'api-1');
      assert.equal(status.ejected, true);
      assert.equal(status.timesEjected, 2);
      assert.ok(status.ejectedUntil! - Date.now() > 700, 'second ejection ≈ 2 × base');
      const metrics = await (await request(`${gateway.controlUrl}/metrics`)).body.text();
      assert.match(metrics, /pixelfleet_gateway_ejections_total\{upstream="api-1"\} 2/);
      assert.match(metrics, /pixelfleet_gateway_upstream_ejected\{upstream="api-1"\} 1/);
    },
  );
});

test('gateway resilience - never ejects more than maxEjectionPercent of the upstreams', async () => {
  await withGateway(
    {
      breaker: { minimumRequests: 1_000_000 },
      outlierDetection: { consecutiveFailures: 2, baseEjectionMs: 30_000, maxEjectionPercent: 50 },
    },
    async (gateway) => {
      upstreams[0]!.behaviour = 'fail-500';
      upstreams[1]!.behaviour = 'fail-500';
      for (let i = 0; i < 30; i += 1) await send(gateway, 'POST');
      const status = gateway.status();
      const ejected = status.upstreams.filter((upstream) => upstream.ejected).map((upstream) => upstream.id);
      assert.equal(ejected.length, 1, `ejected ${ejected}`);
      const kept = ejected[0] === 'api-1' ? 'api-2' : 'api-1';
      assert.ok(upstreamStatus(gateway, kept).consecutiveFailures >= 2, 'over the threshold but kept');
    },
  );
});

test('gateway resilience - the per-upstream circuit breaker opens, then lets one probe through', async () => {
  await withGateway(
    {
      breaker: { minimumRequests: 4, errorRatio: 0.5, openMs: 800 },
      outlierDetection: { consecutiveFailures: 1_000_000 },
    },
    async (gateway) => {
      upstreams[0]!.behaviour = 'fail-500';
      for (let i = 0; i < 15 && upstreamStatus(gateway, 'api-1').breaker.state !== 'open'; i += 1) {
        await send(gateway, 'POST');
      }
      assert.equal(upstreamStatus(gateway, 'api-1').breaker.state, 'open');
      const hitsWhenOpened = upstreams[0]!.hits;
      for (let i = 0; i < 9; i += 1) assert.equal((await send(gateway, 'POST')).status, 200);
      assert.equal(upstreams[0]!.hits, hitsWhenOpened, 'open breaker: no traffic');

      upstreams[0]!.behaviour = 'ok';
      await waitFor(() => upstreamStatus(gateway, 'api-1').breaker.state === 'half-open', {
        timeoutMs: 5000,
      });
      for (let i = 0; i < 6; i += 1) await send(gateway, 'POST');
      assert.equal(upstreamStatus(gateway, 'api-1').breaker.state, 'closed');
      assert.ok(upstreams[0]!.hits > hitsWhenOpened);
      const metrics = await (await request(`${gateway.controlUrl}/metrics`)).body.text();
      assert.match(metrics, /pixelfleet_circuit_breaker_transitions_total\{dependency="api-1",to="open"\} 1/);
      assert.match(
        metrics,
        /pixelfleet_circuit_breaker_transitions_total\{dependency="api-1",to="closed"\} 1/,
      );
    },
  );
});

test('gateway resilience - active health checks take an unready upstream out and put it back', async () => {
  await withGateway({ ...inert, healthCheck: { intervalMs: 50, timeoutMs: 500 } }, async (gateway) => {
    upstreams[1]!.ready = false;
    await waitFor(() => !upstreamStatus(gateway, 'api-2').healthy, { timeoutMs: 5000 });
    upstreams[1]!.hits = 0;
    for (let i = 0; i < 9; i += 1) assert.equal((await send(gateway)).status, 200);
    assert.equal(upstreams[1]!.hits, 0);
    upstreams[1]!.ready = true;
    await waitFor(() => upstreamStatus(gateway, 'api-2').healthy, { timeoutMs: 5000 });
    for (let i = 0; i < 9; i += 1) await send(gateway);
    assert.ok(upstreams[1]!.hits >= 2);
  });
});

test('gateway resilience - panic routing: with no healthy upstream the least bad one still serves', async () => {
  await withGateway({ ...inert, healthCheck: { intervalMs: 50, timeoutMs: 500 } }, async (gateway) => {
    for (const upstream of upstreams) upstream.ready = false;
    await waitFor(() => gateway.status().upstreams.every((upstream) => !upstream.healthy), {
      timeoutMs: 5000,
    });
    assert.equal((await request(`${gateway.controlUrl}/readyz`)).statusCode, 503);
    for (let i = 0; i < 3; i += 1) assert.equal((await send(gateway)).status, 200);
    const metrics = await (await request(`${gateway.controlUrl}/metrics`)).body.text();
    assert.match(metrics, /pixelfleet_gateway_panic_routing_total 3/);
  });
});

test('gateway resilience - 504 PF_ERR_UPSTREAM_TIMEOUT when the propagated deadline passes', async () => {
  await withGateway(
    { ...inert, upstreams: [{ id: upstreams[0]!.id, url: upstreams[0]!.url }] },
    async (gateway) => {
      upstreams[0]!.behaviour = 'slow';
      upstreams[0]!.slowMs = 3000;
      const started = performance.now();
      const answer = await send(gateway, 'GET', { 'pixelfleet-deadline': '300' });
      assert.equal(answer.status, 504);
      assert.equal(JSON.parse(answer.text).code, 'PF_ERR_UPSTREAM_TIMEOUT');
      assert.ok(performance.now() - started < 2500);
    },
  );
});

test('gateway resilience - a large body (many chunks) is replayed byte for byte on the retry', async () => {
  await withGateway(inert, async (gateway) => {
    upstreams[0]!.behaviour = 'fail-503';
    const payload = Buffer.alloc(600 * 1024);
    for (let index = 0; index < payload.length; index++) payload[index] = (index * 31) % 251;
    const response = await request(`${gateway.url}/v1/resize`, {
      method: 'POST',
      headers: { 'idempotency-key': 'large-body-retry' },
      body: payload,
    });
    await response.body.text();
    assert.equal(response.statusCode, 200);
    assert.equal(upstreams[0]!.hits, 1, 'the first attempt was refused');
    const served = upstreams.find((upstream) => upstream.id === response.headers['x-upstream'])!;
    assert.notEqual(served.id, 'api-1');
    assert.equal(served.lastHeaders?.['content-length'], String(payload.length));
    assert.equal(served.lastHeaders?.['transfer-encoding'], undefined);
    assert.ok(served.lastBody?.equals(payload), 'the retried body arrived intact');
  });
});
