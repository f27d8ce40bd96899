/**
 * The transport against hostile or confused traffic: a wrong secret, garbage from a stray
 * process, a silent connection, a replayed handshake, and frames that a man in the middle
 * tampers with, forges, replays or reorders. Each must be refused, counted, and must close
 * the link without delivering anything it carried; honest traffic must resume afterwards.
 */
import assert from 'node:assert/strict';
import { createHmac, randomBytes } from 'node:crypto';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { test } from 'node:test';
import { freePorts, startTransportMesh, type TransportMesh, waitFor } from '../support/index.ts';

const encode = (text: string): Uint8Array => Buffer.from(text, 'utf8');
const fastReconnect = { reconnectInitialDelayMs: 20, reconnectMaxDelayMs: 200 };

/** Returns the frames to forward in place of `frame` (frame 0 is HELLO, 1 is PROOF). */
type Rewrite = (connectionIndex: number, frameIndex: number, frame: Buffer) => Buffer[];

interface FrameMitm {
  port: number;
  /** Raw dialer→acceptor bytes of the first connection. */
  recorded: Buffer[];
  close(): Promise<void>;
}

/** A man in the middle that sees the dialer's frames one by one and may rewrite them. */
async function startFrameMitm(listenPort: number, targetPort: number, rewrite: Rewrite): Promise<FrameMitm> {
  const recorded: Buffer[] = [];
  const sockets = new Set<Socket>();
  let connections = 0;
  const server: Server = createServer((client) => {
    const connectionIndex = connections;
    connections += 1;
    const upstream = connect({ host: '127.0.0.1', port: targetPort });
    for (const socket of [client, upstream]) {
      sockets.add(socket);
      socket.on('error', () => {});
      socket.on('close', () => {
        sockets.delete(socket);
        client.destroy();
        upstream.destroy();
      });
    }
    upstream.on('data', (chunk: Buffer) => client.write(chunk));
    let pending = Buffer.alloc(0);
    let frameIndex = 0;
    client.on('data', (chunk: Buffer) => {
      if (connectionIndex === 0) recorded.push(chunk);
      pending = Buffer.concat([pending, chunk]);
      while (pending.length >= 4 && pending.length >= 4 + pending.readUInt32BE(0)) {
        const length = 4 + pending.readUInt32BE(0);
        const frame = Buffer.from(pending.subarray(0, length));
        pending = pending.subarray(length);
        for (const out of rewrite(connectionIndex, frameIndex, frame)) upstream.write(out);
        frameIndex += 1;
      }
    });
  });
  await new Promise<void>((resolve) => server.listen({ host: '127.0.0.1', port: listenPort }, resolve));
  return {
    port: listenPort,
    recorded,
    close: async () => {
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/** n1 dials n2 through the man in the middle; n2 dials n1 directly. */
async function meshThroughMitm(
  t: { after(fn: () => unknown): void },
  rewrite: Rewrite,
): Promise<{ mesh: TransportMesh; mitm: FrameMitm }> {
  const [port1, port2, mitmPort] = await freePorts(3);
  const mitm = await startFrameMitm(mitmPort!, port2!, rewrite);
  t.after(() => mitm.close());
  const mesh = await startTransportMesh({
    nodeIds: ['n1', 'n2'],
    ports: { n1: port1!, n2: port2! },
    options: fastReconnect,
    addressOf: (from, to, port) => ({
      host: '127.0.0.1',
      port: from === 'n1' && to === 'n2' ? mitmPort! : port,
    }),
    owner: t,
  });
  return { mesh, mitm };
}

async function whenConnected(mesh: TransportMesh, connects: number): Promise<void> {
  await waitFor(
    () =>
      mesh.transports.n1!.stats().peers.n2!.state === 'connected' &&
      mesh.transports.n1!.stats().peers.n2!.connects >= connects,
    { message: `n1 to be connected to n2 (connect #${connects})` },
  );
}

function flipByte(frame: Buffer, offset: number): Buffer {
  const copy = Buffer.from(frame);
  copy[offset] = copy[offset]! ^ 0x01;
  return copy;
}

/** Runs a closed-link scenario: send `first` on connection 0 (rewritten), then `after` on connection 1. */
async function expectLinkKilled(
  mesh: TransportMesh,
  sendOnFirstConnection: () => Promise<void>,
  expectedTexts: string[],
): Promise<void> {
  await whenConnected(mesh, 1);
  await sendOnFirstConnection();
  await waitFor(() => mesh.transports.n2!.stats().rejectedFrames === 1, { message: 'n2 to reject a frame' });
  await whenConnected(mesh, 2);
  mesh.transports.n1!.send('n2', encode('after'));
  await waitFor(() => mesh.texts('n2').includes('after'), { message: 'honest traffic to resume' });
  assert.deepEqual(mesh.texts('n2'), expectedTexts);
  assert.equal(mesh.transports.n2!.stats().rejectedFrames, 1);
}

test('transport security - a node with the wrong secret is refused on both sides', {
  timeout: 20_000,
}, async (t) => {
  const mesh = await startTransportMesh({
    nodeIds: ['n1', 'n2'],
    options: (id) => ({
      ...fastReconnect,
      secret: id === 'n1' ? 'the-right-cluster-secret' : 'a-wrong-cluster-secret!',
    }),
    owner: t,
  });
  mesh.transports.n1!.send('n2', encode('secret stuff'));
  mesh.transports.n2!.send('n1', encode('secret stuff'));
  await waitFor(
    () =>
      mesh.transports.n1!.stats().peers.n2!.failedConnects >= 2 &&
      mesh.transports.n2!.stats().peers.n1!.failedConnects >= 2,
    { message: 'both sides to fail their handshakes repeatedly' },
  );
  for (const id of ['n1', 'n2']) {
    const stats = mesh.transports[id]!.stats();
    assert.ok(stats.handshakeFailures >= 2, `${id} counts handshake failures`);
    assert.equal(stats.inboundConnections, 0);
    assert.equal(stats.receivedMessages, 0);
    assert.match(Object.values(stats.peers)[0]!.lastError ?? '', /cluster secret|closed during handshake/);
  }
});

test('transport security - garbage and silent connections from a stray process are closed', {
  timeout: 20_000,
}, async (t) => {
  const mesh = await startTransportMesh({
    nodeIds: ['n1', 'n2'],
    options: { handshakeTimeoutMs: 300 },
    owner: t,
  });
  const target = mesh.ports.n2!;
  const closedAfter = (bytes: Buffer | null): Promise<void> =>
    new Promise((resolve) => {
      const socket = connect({ host: '127.0.0.1', port: target }, () => {
        if (bytes !== null) socket.write(bytes);
      });
      socket.on('error', () => {});
      socket.on('close', () => resolve());
      socket.resume();
    });
  const baseline = mesh.transports.n2!.stats().handshakeFailures;
  await closedAfter(Buffer.from('GET / HTTP/1.1\r\nHost: n2\r\n\r\n'));
  await closedAfter(randomBytes(64));
  await closedAfter(null); // says nothing: dropped at the handshake deadline
  await waitFor(() => mesh.transports.n2!.stats().handshakeFailures === baseline + 3);
  assert.equal(mesh.transports.n2!.stats().receivedMessages, 0);
});

test('transport security - a recorded handshake cannot be replayed', { timeout: 20_000 }, async (t) => {
  const { mesh, mitm } = await meshThroughMitm(t, (_connection, _frame, frame) => [frame]);
  await whenConnected(mesh, 1);
  mesh.transports.n1!.send('n2', encode('original'));
  await waitFor(() => mesh.texts('n2').length === 1);
  const failuresBefore = mesh.transports.n2!.stats().handshakeFailures;
  await new Promise<void>((resolve) => {
    const replay = connect({ host: '127.0.0.1', port: mesh.ports.n2! }, () => {
      for (const chunk of mitm.recorded) replay.write(chunk);
    });
    replay.on('error', () => {});
    replay.on('close', () => resolve());
    replay.resume();
  });
  await waitFor(() => mesh.transports.n2!.stats().handshakeFailures === failuresBefore + 1);
  assert.deepEqual(mesh.texts('n2'), ['original'], 'nothing from the replay was delivered');
});

test('transport security - a tampered frame kills the link and delivers nothing', {
  timeout: 20_000,
}, async (t) => {
  const { mesh } = await meshThroughMitm(t, (connection, index, frame) =>
    connection === 0 && index === 2 ? [flipByte(frame, frame.length - 40)] : [frame],
  );
  await expectLinkKilled(mesh, async () => {
    mesh.transports.n1!.send('n2', encode('tampered'));
  }, ['after']);
});

test('transport security - a frame forged with a guessed key is refused', { timeout: 20_000 }, async (t) => {
  const forge = (genuine: Buffer): Buffer => {
    // Same layout and sequence number as the genuine frame, MAC'd with a key the forger made up.
    const body = genuine.subarray(0, genuine.length - 32);
    const mac = createHmac('sha256', randomBytes(32)).update(body).digest();
    return Buffer.concat([body, mac]);
  };
  const { mesh } = await meshThroughMitm(t, (connection, index, frame) =>
    connection === 0 && index === 2 ? [forge(frame)] : [frame],
  );
  await expectLinkKilled(mesh, async () => {
    mesh.transports.n1!.send('n2', encode('forged'));
  }, ['after']);
});

test('transport security - a replayed frame is refused after the original', {
  timeout: 20_000,
}, async (t) => {
  const { mesh } = await meshThroughMitm(t, (connection, index, frame) =>
    connection === 0 && index === 2 ? [frame, frame] : [frame],
  );
  await expectLinkKilled(mesh, async () => {
    mesh.transports.n1!.send('n2', encode('once'));
  }, ['once', 'after']);
});

test('transport security - reordered frames are refused', { timeout: 20_000 }, async (t) => {
  let held: Buffer | null = null;
  const { mesh } = await meshThroughMitm(t, (connection, index, frame) => {
    if (connection !== 0) return [frame];
    if (index === 2) {
      held = frame;
      return [];
    }
    if (index === 3 && held !== null) return [frame, held];
    return [frame];
  });
  await expectLinkKilled(mesh, async () => {
    mesh.transports.n1!.send('n2', encode('first'));
    await new Promise((resolve) => setTimeout(resolve, 50));
    mesh.transports.n1!.send('n2', encode('second'));
  }, ['after']);
});

test('transport security - a bad frame pipelined right behind the handshake is refused', {
  timeout: 20_000,
}, async (t) => {
  let proof: Buffer | null = null;
  const { mesh } = await meshThroughMitm(t, (connection, index, frame) => {
    if (connection !== 0) return [frame];
    if (index === 1) {
      proof = frame; // hold PROOF so it reaches the acceptor in the same write as the bad frame
      return [];
    }
    if (index === 2 && proof !== null) return [Buffer.concat([proof, flipByte(frame, frame.length - 40)])];
    return [frame];
  });
  // The dialer considers itself connected once it has sent PROOF, so send straight away.
  await waitFor(() => mesh.transports.n1!.stats().peers.n2!.state === 'connected');
  mesh.transports.n1!.send('n2', encode('pipelined'));
  await waitFor(() => mesh.transports.n2!.stats().rejectedFrames === 1, { message: 'n2 to reject a frame' });
  await whenConnected(mesh, 2);
  mesh.transports.n1!.send('n2', encode('after'));
  await waitFor(() => mesh.texts('n2').includes('after'));
  assert.deepEqual(mesh.texts('n2'), ['after']);
  assert.equal(mesh.transports.n2!.stats().inboundConnections, 1);
});
