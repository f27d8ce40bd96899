/**
 * Real upstream HTTP servers for gateway tests: each counts the requests it served, remembers
 * the last request's headers and body, and answers according to a behaviour the test switches
 * at will (ok, 500, 503 with or without Retry-After, slow, not ready).
 */

import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { pino } from 'pino';
import { type Gateway, type GatewayOptions, startGateway } from '../../src/gateway/index.ts';

export type Behaviour = 'ok' | 'fail-500' | 'fail-502' | 'fail-503' | 'shed-503' | 'slow' | 'reset';

export interface TestUpstream {
  id: string;
  url: string;
  port: number;
  behaviour: Behaviour;
  ready: boolean;
  /** Requests served (health checks excluded). */
  hits: number;
  healthChecks: number;
  lastHeaders: IncomingHttpHeaders | undefined;
  lastBody: Buffer | undefined;
  slowMs: number;
  server: Server;
  close(): Promise<void>;
}

export async function startUpstream(id: string, port = 0): Promise<TestUpstream> {
  const upstream: TestUpstream = {
    id,
    url: '',
    port: 0,
    behaviour: 'ok',
    ready: true,
    hits: 0,
    healthChecks: 0,
    lastHeaders: undefined,
    lastBody: undefined,
    slowMs: 2000,
    server: undefined as unknown as Server,
    close: async () => {},
  };
  const server = createServer((request, response) => {
    if (request.url === '/readyz') {
      upstream.healthChecks += 1;
      response.writeHead(upstream.ready ? 200 : 503, { 'content-type': 'application/json' });
      response.end(JSON.stringify({ status: upstream.ready ? 'ready' : 'not ready' }));
      return;
    }
    const chunks: Buffer[] = [];
    request.on('data', (chunk: Buffer) => chunks.push(chunk));
    request.on('end', () => {
      upstream.hits += 1;
      upstream.lastHeaders = request.headers;
      upstream.lastBody = Buffer.concat(chunks);
      const answer = (status: number, extra: Record<string, string> = {}) => {
        const body = JSON.stringify({
          upstream: id,
          method: request.method,
          url: request.url,
          bytes: upstream.lastBody?.length,
        });
        response.writeHead(status, { 'content-type': 'application/json', 'x-upstream': id, ...extra });
        response.end(body);
      };
      switch (upstream.behaviour) {
        case 'ok':
          return answer(200);
        case 'fail-500':
          return answer(500);
        case 'fail-502':
          return answer(502);
        case 'fail-503':
          return answer(503);
        case 'shed-503':
          return answer(503, { 'retry-after': '1' });
        case 'slow': {
          const timer = setTimeout(() => answer(200), upstream.slowMs);
          response.once('close', () => clearTimeout(timer));
          return;
        }
        case 'reset':
          request.socket.destroy();
          return;
      }
    });
  });
  server.keepAliveTimeout = 5000;
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
  const address = server.address() as AddressInfo;
  upstream.port = address.port;
  upstream.url = `http://127.0.0.1:${address.port}`;
  upstream.server = server;
  upstream.close = () =>
    new Promise<void>((resolve) => {
      server.close(() => resolve());
      server.closeAllConnections();
    });
  return upstream;
}

export async function startUpstreams(count: number): Promise<TestUpstream[]> {
  return Promise.all(Array.from({ length: count }, (_, index) => startUpstream(`api-${index + 1}`)));
}

/** A port that refuses connections: listened on, then closed. */
export async function refusedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

const silent = pino({ level: 'silent' });

/**
 * Runs `body` against a gateway on loopback with test defaults (silent log, no default metrics,
 * no active health checks, round robin, the given upstreams as static ones), then closes it.
 */
export async function withGateway(
  upstreams: readonly TestUpstream[],
  options: Partial<GatewayOptions>,
  body: (gateway: Gateway) => Promise<void>,
): Promise<void> {
  const gateway = await startGateway({
    host: '127.0.0.1',
    port: 0,
    controlHost: '127.0.0.1',
    controlPort: 0,
    clusterSecret: 'test-secret',
    logger: silent,
    defaultMetrics: false,
    healthCheck: false,
    strategy: 'round-robin',
    upstreams: upstreams.map((upstream) => ({ id: upstream.id, url: upstream.url })),
    ...options,
  });
  try {
    await body(gateway);
  } finally {
    await gateway.close();
  }
}
