import assert from 'node:assert/strict';
import { get } from 'node:http';
import { connect, createServer, type Server } from 'node:net';
import { after, before, test } from 'node:test';
import type { Gateway, GatewayOptions } from '../../src/gateway/index.ts';
import { waitFor } from '../support/index.ts';
import {
  refusedPort,
  startUpstreams,
  type TestUpstream,
  withGateway as withGatewayOn,
} from './upstream-servers.ts';

let upstreams: TestUpstream[];

before(async () => {
  upstreams = await startUpstreams(2);
});
after(async () => {
  await Promise.all(upstreams.map((upstream) => upstream.close()));
});

function withGateway(options: Partial<GatewayOptions>, body: (gateway: Gateway) => Promise<void>) {
  return withGatewayOn(upstreams, { mode: 'tcp', upstreams: [], ...options }, body);
}

/** One HTTP request on its own TCP connection (so every request is a new proxied connection). */
function httpOverNewConnection(gatewayUrl: string): Promise<{ status: number; upstream: string }> {
  const { hostname, port } = new URL(gatewayUrl);
  return new Promise((resolve, reject) => {
    const outgoing = get({ hostname, port, path: '/v1/x', agent: false }, (response) => {
      response.resume();
      response.once('end', () =>
        resolve({ status: response.statusCode ?? 0, upstream: String(response.headers['x-upstream']) }),
      );
    });
    outgoing.once('error', reject);
  });
}

test('gateway tcp - proxies connections byte for byte and spreads them over upstreams', async () => {
  const echo: Server = createServer((socket) => socket.pipe(socket));
  await new Promise<void>((resolve) => echo.listen(0, '127.0.0.1', resolve));
  const echoPort = (echo.address() as { port: number }).port;
  try {
    await withGateway(
      { upstreams: [{ id: 'echo', url: `tcp://127.0.0.1:${echoPort}` }] },
      async (gateway) => {
        const { hostname, port } = new URL(gateway.url);
        const payload = Buffer.alloc(256 * 1024);
        for (let i = 0; i < payload.length; i += 1) payload[i] = (i * 31) & 0xff;
        const received = await new Promise<Buffer>((resolve, reject) => {
          const socket = connect({ host: hostname, port: Number(port) });
          const chunks: Buffer[] = [];
          socket.on('data', (chunk: Buffer) => chunks.push(chunk));
          socket.once('end', () => resolve(Buffer.concat(chunks)));
          socket.once('error', reject);
          // Half-close after writing: the echo ends its side once everything came back.
          socket.end(payload);
        });
        assert.ok(received.equals(payload));
      },
    );
  } finally {
    await new Promise<void>((resolve) => echo.close(() => resolve()));
  }

  await withGateway(
    { upstreams: upstreams.map((upstream) => ({ id: upstream.id, url: upstream.url })) },
    async (gateway) => {
      const seen = new Map<string, number>();
      for (let i = 0; i < 6; i += 1) {
        const answer = await httpOverNewConnection(gateway.url);
        assert.equal(answer.status, 200);
        seen.set(answer.upstream, (seen.get(answer.upstream) ?? 0) + 1);
      }
      assert.deepEqual([...seen.values()], [3, 3]);
      const metrics = await (await fetch(`${gateway.controlUrl}/metrics`)).text();
      assert.match(metrics, /pixelfleet_gateway_tcp_connections_total\{upstream="api-1"\} 3/);
    },
  );
});

test('gateway tcp - skips a dead upstream: refused connects are retried elsewhere, then it is ejected and marked unhealthy', async () => {
  const deadPort = await refusedPort();
  const specs = [
    { id: 'dead', url: `http://127.0.0.1:${deadPort}` },
    ...upstreams.map((upstream) => ({ id: upstream.id, url: upstream.url })),
  ];
  const deadStatus = (gateway: Gateway) =>
    gateway.status().upstreams.find((upstream) => upstream.id === 'dead')!;
  await withGateway(
    { upstreams: specs, outlierDetection: { consecutiveFailures: 3, baseEjectionMs: 30_000 } },
    async (gateway) => {
      for (let i = 0; i < 12; i += 1) {
        const answer = await httpOverNewConnection(gateway.url);
        assert.equal(answer.status, 200);
        assert.notEqual(answer.upstream, 'dead');
      }
      assert.equal(deadStatus(gateway).ejected, true, 'connect failures count toward ejection');
    },
  );
  await withGateway(
    {
      upstreams: specs,
      outlierDetection: { consecutiveFailures: 1_000_000 },
      healthCheck: { kind: 'tcp', intervalMs: 50, timeoutMs: 500 },
    },
    async (gateway) => {
      await waitFor(() => !deadStatus(gateway).healthy, { timeoutMs: 5000, message: 'tcp check fails' });
      assert.equal(gateway.status().upstreams.filter((upstream) => upstream.healthy).length, 2);
    },
  );
});
