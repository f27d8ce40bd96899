/**
 * Throughput of the transport: 200-byte payloads (about a Raft AppendEntries with one job
 * descriptor) between two transports in one process, MAC'd and batched. The sender keeps a
 * bounded amount in flight, as a Raft leader with a flow-control window would, so nothing is
 * dropped. The figure is reported as a diagnostic; the assertion only guards against collapse.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { startTransportMesh } from '../support/index.ts';

const payloadBytes = 200;
const measureMs = 3000;
/** Keep at most this much queued for the peer: well under the drop bound. */
const windowBytes = 4 * 1024 * 1024;

test('transport throughput - 200-byte messages between two transports', { timeout: 30_000 }, async (t) => {
  let received = 0;
  const mesh = await startTransportMesh({ nodeIds: ['n1', 'n2'], owner: t });
  const sender = mesh.transports.n1!;
  // Count instead of storing: the mesh's inbox would otherwise hold millions of payloads.
  mesh.received.n2!.push = (...items) => {
    received += items.length;
    return 0;
  };
  const payload = new Uint8Array(payloadBytes).fill(7);

  const run = (durationMs: number): Promise<{ sent: number; received: number; elapsedMs: number }> =>
    new Promise((resolve) => {
      const startReceived = received;
      const startedAt = performance.now();
      let sent = 0;
      const pump = (): void => {
        const elapsed = performance.now() - startedAt;
        if (elapsed >= durationMs) {
          resolve({ sent, received: received - startReceived, elapsedMs: elapsed });
          return;
        }
        while (sender.stats().peers.n2!.queuedBytes < windowBytes) {
          for (let index = 0; index < 1000; index += 1) sender.send('n2', payload);
          sent += 1000;
        }
        setImmediate(pump);
      };
      pump();
    });

  await run(300); // warm up: JIT, socket buffers
  const result = await run(measureMs);
  const perSecond = Math.round((result.received / result.elapsedMs) * 1000);
  const megabytesPerSecond = ((perSecond * payloadBytes) / 1e6).toFixed(1);
  const stats = sender.stats().peers.n2!;
  const summary = `transport throughput: ${perSecond} messages/s of ${payloadBytes} B (${megabytesPerSecond} MB/s payload), ${Math.round(stats.sentMessages / stats.sentFrames)} messages/frame, dropped ${stats.droppedMessages}`;
  t.diagnostic(summary);
  console.log(summary);
  assert.equal(stats.droppedMessages, 0);
  assert.equal(mesh.transports.n2!.stats().rejectedFrames, 0);
  assert.ok(perSecond > 10_000, `throughput collapsed: ${perSecond}/s`);
});

test('transport throughput - one-at-a-time round trips (request/response latency)', {
  timeout: 30_000,
}, async (t) => {
  let onReply: (() => void) | null = null;
  const mesh = await startTransportMesh({ nodeIds: ['n1', 'n2'], owner: t });
  // n2 echoes everything back; n1 resolves the waiting round trip.
  mesh.received.n2!.push = (...items) => {
    for (const item of items) mesh.transports.n2!.send(item.from, item.payload);
    return 0;
  };
  mesh.received.n1!.push = () => {
    onReply?.();
    return 0;
  };
  const payload = new Uint8Array(payloadBytes);
  const roundTrips: number[] = [];
  for (let index = 0; index < 2000; index += 1) {
    const startedAt = performance.now();
    await new Promise<void>((resolve) => {
      onReply = resolve;
      mesh.transports.n1!.send('n2', payload);
    });
    roundTrips.push(performance.now() - startedAt);
  }
  roundTrips.sort((a, b) => a - b);
  const percentile = (p: number): string => roundTrips[Math.floor((roundTrips.length - 1) * p)]!.toFixed(3);
  const summary = `transport round trip (${payloadBytes} B): p50 ${percentile(0.5)} ms, p99 ${percentile(0.99)} ms`;
  t.diagnostic(summary);
  console.log(summary);
  assert.equal(roundTrips.length, 2000);
});
