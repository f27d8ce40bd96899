/**
 * The consensus transport over real loopback sockets: delivery both ways, large payloads,
 * reconnect after a peer restarts, bounded queues, membership changes and option checks.
 */
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { createServer } from 'node:net';
import { test } from 'node:test';
import { createTransport, type PeerState, type Transport } from '../../src/consensus/transport/index.ts';
import { isPixelfleetError } from '../../src/errors/index.ts';
import { freePort, freePorts, startTransportMesh, testClusterSecret, waitFor } from '../support/index.ts';

const encode = (text: string): Uint8Array => Buffer.from(text, 'utf8');
const fastReconnect = { reconnectInitialDelayMs: 20, reconnectMaxDelayMs: 200 };

test('transport - messages flow both ways in order', { timeout: 30_000 }, async (t) => {
  const mesh = await startTransportMesh({ nodeIds: ['n1', 'n2', 'n3'], owner: t });
  const count = 2000;
  for (let index = 0; index < count; index += 1) {
    mesh.transports.n1!.send('n2', encode(`n1-${index}`));
    mesh.transports.n2!.send('n1', encode(`n2-${index}`));
    mesh.transports.n3!.send('n1', encode(`n3-${index}`));
  }
  mesh.transports.n1!.send('n3', new Uint8Array(0));
  await waitFor(() => mesh.received.n2!.length === count && mesh.received.n1!.length === 2 * count, {
    message: 'all messages to arrive',
  });
  await waitFor(() => mesh.received.n3!.length === 1);
  assert.deepEqual(
    mesh.texts('n2'),
    Array.from({ length: count }, (_, index) => `n1-${index}`),
  );
  const fromN2 = mesh.received
    .n1!.filter((message) => message.from === 'n2')
    .map((m) => Buffer.from(m.payload).toString());
  const fromN3 = mesh.received
    .n1!.filter((message) => message.from === 'n3')
    .map((m) => Buffer.from(m.payload).toString());
  assert.deepEqual(
    fromN2,
    Array.from({ length: count }, (_, index) => `n2-${index}`),
  );
  assert.deepEqual(
    fromN3,
    Array.from({ length: count }, (_, index) => `n3-${index}`),
  );
  assert.equal(mesh.received.n3![0]!.payload.length, 0, 'an empty payload is delivered as such');

  const stats = mesh.transports.n1!.stats();
  assert.equal(stats.peers.n2!.sentMessages, count);
  assert.ok(stats.peers.n2!.sentFrames < count, 'small messages are batched into fewer frames');
  assert.equal(stats.inboundConnections, 2);
  assert.equal(stats.handshakeFailures, 0);
  assert.equal(stats.rejectedFrames, 0);
});

test('transport - large payloads (snapshots) arrive intact between small messages', {
  timeout: 60_000,
}, async (t) => {
  const mesh = await startTransportMesh({ nodeIds: ['n1', 'n2'], owner: t });
  const snapshot = randomBytes(24 * 1024 * 1024);
  const digest = createHash('sha256').update(snapshot).digest('hex');
  mesh.transports.n1!.send('n2', encode('before'));
  mesh.transports.n1!.send('n2', snapshot);
  mesh.transports.n1!.send('n2', encode('after'));
  mesh.transports.n2!.send('n1', snapshot);
  await waitFor(() => mesh.received.n2!.length === 3 && mesh.received.n1!.length === 1, {
    timeoutMs: 30_000,
    message: 'the snapshot to arrive both ways',
  });
  const [before, big, after] = mesh.received.n2!;
  assert.equal(Buffer.from(before!.payload).toString(), 'before');
  assert.equal(createHash('sha256').update(big!.payload).digest('hex'), digest);
  assert.equal(Buffer.from(after!.payload).toString(), 'after');
  assert.equal(createHash('sha256').update(mesh.received.n1![0]!.payload).digest('hex'), digest);
});

test('transport - a payload above maxFrameBytes is refused by the sender', { timeout: 20_000 }, async (t) => {
  const mesh = await startTransportMesh({
    nodeIds: ['n1', 'n2'],
    options: { maxFrameBytes: 1024 * 1024, maxQueuedBytesPerPeer: 8 * 1024 * 1024 },
    owner: t,
  });
  assert.equal(mesh.transports.n1!.send('n2', new Uint8Array(1024 * 1024)), false);
  assert.equal(mesh.transports.n1!.stats().peers.n2!.droppedMessages, 1);
  // Just under the limit still goes through, and many small ones are split across frames.
  assert.equal(mesh.transports.n1!.send('n2', new Uint8Array(1024 * 1024 - 64)), true);
  for (let index = 0; index < 5000; index += 1) mesh.transports.n1!.send('n2', new Uint8Array(1000));
  await waitFor(() => mesh.received.n2!.length === 5001, { message: 'everything under the frame limit' });
  assert.equal(mesh.transports.n2!.stats().rejectedFrames, 0);
});

test('transport - reconnects after the peer restarts and delivers what was queued', {
  timeout: 30_000,
}, async (t) => {
  const [port1, port2] = await freePorts(2);
  const states: PeerState[] = [];
  const received: string[] = [];
  const n1 = createTransport({
    nodeId: 'n1',
    listen: { host: '127.0.0.1', port: port1! },
    peers: { n2: { host: '127.0.0.1', port: port2! } },
    secret: testClusterSecret,
    onMessage: () => {},
    onPeerStateChange: (_peer, state) => states.push(state),
    ...fastReconnect,
  });
  t.after(() => n1.close());
  const startN2 = async (): Promise<Transport> => {
    const n2 = createTransport({
      nodeId: 'n2',
      listen: { host: '127.0.0.1', port: port2! },
      peers: { n1: { host: '127.0.0.1', port: port1! } },
      secret: testClusterSecret,
      onMessage: (_from, payload) => received.push(Buffer.from(payload).toString()),
      ...fastReconnect,
    });
    t.after(() => n2.close());
    await n2.start();
    return n2;
  };
  await n1.start();
  const first = await startN2();
  n1.send('n2', encode('hello'));
  await waitFor(() => received.length === 1);

  await first.close();
  await waitFor(() => n1.stats().peers.n2!.state !== 'connected', { message: 'n1 to notice n2 is gone' });
  for (let index = 0; index < 10; index += 1) n1.send('n2', encode(`queued-${index}`));
  await waitFor(() => n1.stats().peers.n2!.failedConnects >= 2, { message: 'n1 to retry while n2 is down' });

  await startN2();
  await waitFor(() => received.length === 11, { message: 'queued messages after the restart' });
  assert.deepEqual(
    received.slice(1),
    Array.from({ length: 10 }, (_, index) => `queued-${index}`),
  );
  const peer = n1.stats().peers.n2!;
  assert.equal(peer.connects, 2);
  assert.ok(states.includes('disconnected'));
  assert.equal(states.at(-1), 'connected');
});

test('transport - a full queue drops the oldest (or newest) and counts it', async (t) => {
  // Nothing listens on the peer's port: every payload stays queued.
  const deadPort = await freePort();
  for (const dropPolicy of ['oldest', 'newest'] as const) {
    const transport = createTransport({
      nodeId: 'n1',
      listen: { host: '127.0.0.1', port: 0 },
      peers: { n2: { host: '127.0.0.1', port: deadPort } },
      secret: testClusterSecret,
      onMessage: () => {},
      maxQueuedBytesPerPeer: 10_000,
      dropPolicy,
    });
    t.after(() => transport.close());
    await transport.start();
    let accepted = 0;
    for (let index = 0; index < 1000; index += 1) {
      if (transport.send('n2', new Uint8Array(96))) accepted += 1;
    }
    const peer = transport.stats().peers.n2!;
    assert.equal(peer.queuedMessages, 100, 'the queue holds 10 000 bytes of 100-byte framed payloads');
    assert.equal(peer.queuedBytes, 10_000);
    assert.equal(peer.droppedMessages, 900);
    assert.equal(accepted, dropPolicy === 'oldest' ? 1000 : 100);
    assert.notEqual(peer.state, 'connected');
    await transport.close();
    assert.equal(transport.stats().peers.n2!.state, 'closed');
  }
});

test('transport - unknown peers are refused until added; removed peers are cut off', {
  timeout: 30_000,
}, async (t) => {
  const [port1, port2] = await freePorts(2);
  const received: string[] = [];
  const n1 = createTransport({
    nodeId: 'n1',
    listen: { host: '127.0.0.1', port: port1! },
    peers: {},
    secret: testClusterSecret,
    onMessage: (_from, payload) => received.push(Buffer.from(payload).toString()),
    ...fastReconnect,
  });
  const n2 = createTransport({
    nodeId: 'n2',
    listen: { host: '127.0.0.1', port: port2! },
    peers: { n1: { host: '127.0.0.1', port: port1! } },
    secret: testClusterSecret,
    onMessage: () => {},
    ...fastReconnect,
  });
  t.after(() => Promise.all([n1.close(), n2.close()]));
  await Promise.all([n1.start(), n2.start()]);
  assert.equal(n1.send('n2', encode('nobody')), false);
  assert.equal(n1.stats().droppedUnknownPeer, 1);
  n2.send('n1', encode('too early'));
  await waitFor(() => n1.stats().handshakeFailures >= 1, { message: 'n1 to refuse an unknown node' });
  assert.equal(received.length, 0);

  n1.addPeer('n2', { host: '127.0.0.1', port: port2! });
  await waitFor(() => received.includes('too early'), { message: 'n2 to get in once added' });
  await waitFor(() => n1.stats().peers.n2?.state === 'connected');

  n1.removePeer('n2');
  assert.equal(n1.stats().peers.n2, undefined);
  const before = received.length;
  n2.send('n1', encode('after removal'));
  await waitFor(() => n2.stats().peers.n1!.failedConnects >= 1, { message: 'n2 to be cut off' });
  assert.equal(received.length, before);
});

test('transport - start fails with PF_ERR_TRANSPORT_UNAVAILABLE on a busy port', async (t) => {
  const blocker = createServer();
  await new Promise<void>((resolve) => blocker.listen({ host: '127.0.0.1', port: 0 }, resolve));
  t.after(() => blocker.close());
  const address = blocker.address();
  const port = typeof address === 'object' && address !== null ? address.port : 0;
  const transport = createTransport({
    nodeId: 'n1',
    listen: { host: '127.0.0.1', port },
    peers: {},
    secret: testClusterSecret,
    onMessage: () => {},
  });
  await assert.rejects(transport.start(), (error) =>
    isPixelfleetError(error, 'PF_ERR_TRANSPORT_UNAVAILABLE'),
  );
  await transport.close();
});

test('transport - rejects bad options with RangeError', () => {
  const base = {
    nodeId: 'n1',
    listen: { host: '127.0.0.1', port: 0 },
    peers: {},
    secret: testClusterSecret,
    onMessage: () => {},
  };
  assert.throws(() => createTransport({ ...base, secret: 'short' }), RangeError);
  assert.throws(() => createTransport({ ...base, nodeId: '' }), RangeError);
  assert.throws(
    () => createTransport({ ...base, peers: { n1: { host: '127.0.0.1', port: 1 } } }),
    RangeError,
  );
  assert.throws(
    () => createTransport({ ...base, peers: { n2: { host: '127.0.0.1', port: 0 } } }),
    RangeError,
  );
  assert.throws(() => createTransport({ ...base, maxQueuedBytesPerPeer: 0 }), RangeError);
  assert.throws(
    () => createTransport({ ...base, heartbeatIntervalMs: 5000, idleTimeoutMs: 1000 }),
    RangeError,
  );
  assert.throws(
    () => createTransport({ ...base, reconnectInitialDelayMs: 500, reconnectMaxDelayMs: 100 }),
    RangeError,
  );
  const transport = createTransport(base);
  assert.throws(() => transport.addPeer('n1', { host: '127.0.0.1', port: 1 }), RangeError);
});
