/**
 * The fault-injecting proxy in front of a real echo server: it forwards faithfully, and at
 * runtime it blackholes, stalls, delays, resets and refuses, then heals.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { test } from 'node:test';
import { createFaultProxy, type FaultProxy } from '../../src/resilience/chaos/index.ts';
import { sleep, waitFor } from '../support/index.ts';

interface EchoServer {
  port: number;
  connections: number;
  /** Bytes the server received, over all connections. */
  receivedBytes: number;
  close(): Promise<void>;
}

async function startEchoServer(): Promise<EchoServer> {
  const sockets = new Set<Socket>();
  const state = { port: 0, connections: 0, receivedBytes: 0 };
  const server: Server = createServer({ allowHalfOpen: true }, (socket) => {
    state.connections += 1;
    sockets.add(socket);
    socket.on('error', () => {});
    socket.on('close', () => sockets.delete(socket));
    socket.on('data', (chunk: Buffer) => {
      state.receivedBytes += chunk.length;
      socket.write(chunk);
    });
    socket.on('end', () => socket.end());
  });
  await new Promise<void>((resolve) => server.listen({ host: '127.0.0.1', port: 0 }, resolve));
  const address = server.address();
  state.port = typeof address === 'object' && address !== null ? address.port : 0;
  return Object.assign(state, {
    close: async () => {
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  });
}

interface Client {
  socket: Socket;
  received(): Buffer;
  ended: boolean;
  closed: boolean;
  error: NodeJS.ErrnoException | null;
}

function connectClient(port: number): Promise<Client> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    const socket = connect({ host: '127.0.0.1', port, allowHalfOpen: true });
    const client: Client = {
      socket,
      received: () => Buffer.concat(chunks),
      ended: false,
      closed: false,
      error: null,
    };
    socket.on('data', (chunk: Buffer) => chunks.push(chunk));
    socket.on('end', () => {
      client.ended = true;
    });
    socket.on('error', (error) => {
      client.error = error;
    });
    socket.on('close', () => {
      client.closed = true;
    });
    socket.once('connect', () => resolve(client));
    socket.once('error', reject);
  });
}

async function setup(t: {
  after(fn: () => unknown): void;
}): Promise<{ echo: EchoServer; proxy: FaultProxy }> {
  const echo = await startEchoServer();
  t.after(() => echo.close());
  const proxy = createFaultProxy({ target: { host: '127.0.0.1', port: echo.port } });
  t.after(() => proxy.close());
  await proxy.start();
  return { echo, proxy };
}

test('chaos proxy - forwards both ways, in order, and passes on the end of stream', async (t) => {
  const { proxy } = await setup(t);
  const client = await connectClient(proxy.port!);
  const data = randomBytes(3 * 1024 * 1024);
  client.socket.end(data);
  await waitFor(() => client.ended, { message: 'the echoed stream to end' });
  assert.ok(client.received().equals(data));
  const stats = proxy.stats();
  assert.equal(stats.forwardedBytes.toTarget, data.length);
  assert.equal(stats.forwardedBytes.fromTarget, data.length);
  await waitFor(() => proxy.stats().activeConnections === 0);
});

test('chaos proxy - blackhole swallows traffic on open connections; heal resets the torn ones', async (t) => {
  const { echo, proxy } = await setup(t);
  const client = await connectClient(proxy.port!);
  client.socket.write('before');
  await waitFor(() => client.received().toString() === 'before');

  proxy.blackhole();
  client.socket.write('lost');
  await sleep(150);
  assert.equal(client.received().toString(), 'before');
  assert.equal(client.closed, false, 'the connection stays open in a blackhole');
  assert.equal(proxy.stats().discardedBytes.toTarget, 4);

  // A connection opened during the blackhole is accepted but never reaches the target.
  const connectionsBefore = echo.connections;
  const during = await connectClient(proxy.port!);
  await sleep(100);
  assert.equal(echo.connections, connectionsBefore);

  proxy.heal();
  await waitFor(() => client.closed, { message: 'the torn connection to be reset' });
  assert.equal(client.error?.code, 'ECONNRESET');
  // The untouched one is passed on now.
  during.socket.write('late');
  await waitFor(() => during.received().toString() === 'late');
  const after = await connectClient(proxy.port!);
  after.socket.write('fresh');
  await waitFor(() => after.received().toString() === 'fresh');
});

test('chaos proxy - one-way blackhole lets requests through but swallows replies', async (t) => {
  const { echo, proxy } = await setup(t);
  const client = await connectClient(proxy.port!);
  proxy.blackhole('fromTarget');
  client.socket.write('ping');
  await waitFor(() => echo.receivedBytes === 4, { message: 'the request to reach the target' });
  await sleep(100);
  assert.equal(client.received().length, 0);
  assert.equal(proxy.stats().discardedBytes.fromTarget, 4);
});

test('chaos proxy - stall holds bytes without loss until heal', async (t) => {
  const { echo, proxy } = await setup(t);
  const client = await connectClient(proxy.port!);
  proxy.stall();
  const data = randomBytes(4 * 1024 * 1024);
  client.socket.write(data);
  await sleep(200);
  assert.ok(echo.receivedBytes < data.length, 'a stalled link does not deliver everything');
  assert.equal(client.received().length, 0);
  proxy.heal();
  await waitFor(() => client.received().length === data.length, { message: 'held bytes to flow after heal' });
  assert.ok(client.received().equals(data));
  assert.equal(client.closed, false);
  assert.equal(proxy.stats().discardedBytes.toTarget, 0);
});

test('chaos proxy - delay adds latency each way and keeps order', async (t) => {
  const { proxy } = await setup(t);
  const client = await connectClient(proxy.port!);
  proxy.delay(100);
  const startedAt = performance.now();
  for (let index = 0; index < 50; index += 1) client.socket.write(`${index};`);
  const expected = Array.from({ length: 50 }, (_, index) => `${index};`).join('');
  await waitFor(() => client.received().toString() === expected, { message: 'delayed echoes in order' });
  assert.ok(performance.now() - startedAt >= 190, 'a round trip pays the delay twice');
  proxy.heal();
  const healedAt = performance.now();
  client.socket.write('x');
  await waitFor(() => client.received().toString().endsWith('x'));
  assert.ok(performance.now() - healedAt < 1000);
});

test('chaos proxy - resetConnections sends RST; refuseConnections resets new ones until heal', async (t) => {
  const { proxy } = await setup(t);
  const first = await connectClient(proxy.port!);
  proxy.resetConnections();
  await waitFor(() => first.closed);
  assert.equal(first.error?.code, 'ECONNRESET');

  const second = await connectClient(proxy.port!);
  second.socket.write('still works');
  await waitFor(() => second.received().toString() === 'still works');

  proxy.refuseConnections();
  await waitFor(() => second.closed);
  // The RST may arrive before or after the client has seen its connection established.
  await connectClient(proxy.port!).then(
    (refused) => waitFor(() => refused.closed, { message: 'a new connection to be reset' }),
    (error: NodeJS.ErrnoException) => assert.equal(error.code, 'ECONNRESET'),
  );
  proxy.heal();
  const healed = await connectClient(proxy.port!);
  healed.socket.write('back');
  await waitFor(() => healed.received().toString() === 'back');
  assert.ok(proxy.stats().resetConnections >= 3);
});

test('chaos proxy - rejects bad options with RangeError', () => {
  assert.throws(() => createFaultProxy({ target: { host: '127.0.0.1', port: -1 } }), RangeError);
  assert.throws(() => createFaultProxy({ target: { host: '', port: 1 } }), RangeError);
  const proxy = createFaultProxy({ target: { host: '127.0.0.1', port: 1 } });
  assert.throws(() => proxy.delay(-5), RangeError);
  assert.throws(() => proxy.blackhole('sideways' as 'both'), RangeError);
});
