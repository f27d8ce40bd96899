/**
 * The transport through fault proxies, the way the Raft partition tests will use it: each
 * directed link n1→n2 and n2→n1 runs through its own proxy. A silent partition is detected by
 * the idle timeout and the links come back on heal; a short stall loses nothing.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { createFaultProxy, type FaultProxy } from '../../src/resilience/chaos/index.ts';
import { freePorts, sleep, startTransportMesh, type TransportMesh, waitFor } from '../support/index.ts';

const encode = (text: string): Uint8Array => Buffer.from(text, 'utf8');
const quickLiveness = {
  heartbeatIntervalMs: 100,
  idleTimeoutMs: 600,
  handshakeTimeoutMs: 500,
  reconnectInitialDelayMs: 20,
  reconnectMaxDelayMs: 200,
};

async function partitionableMesh(t: {
  after(fn: () => unknown): void;
}): Promise<{ mesh: TransportMesh; proxies: Record<string, FaultProxy> }> {
  const [port1, port2, proxy12Port, proxy21Port] = await freePorts(4);
  const proxies: Record<string, FaultProxy> = {
    'n1->n2': createFaultProxy({
      target: { host: '127.0.0.1', port: port2! },
      listen: { port: proxy12Port! },
    }),
    'n2->n1': createFaultProxy({
      target: { host: '127.0.0.1', port: port1! },
      listen: { port: proxy21Port! },
    }),
  };
  for (const proxy of Object.values(proxies)) {
    t.after(() => proxy.close());
    await proxy.start();
  }
  const mesh = await startTransportMesh({
    nodeIds: ['n1', 'n2'],
    ports: { n1: port1!, n2: port2! },
    options: quickLiveness,
    addressOf: (from, to) => ({ host: '127.0.0.1', port: proxies[`${from}->${to}`]!.port! }),
    owner: t,
  });
  return { mesh, proxies };
}

const linkState = (mesh: TransportMesh, from: string, to: string) =>
  mesh.transports[from]!.stats().peers[to]!;

test('transport partition - a blackholed link is detected, retried, and restored on heal', {
  timeout: 30_000,
}, async (t) => {
  const { mesh, proxies } = await partitionableMesh(t);
  mesh.transports.n1!.send('n2', encode('before'));
  mesh.transports.n2!.send('n1', encode('before'));
  await waitFor(() => mesh.texts('n2').length === 1 && mesh.texts('n1').length === 1);

  for (const proxy of Object.values(proxies)) proxy.blackhole();
  await waitFor(
    () =>
      linkState(mesh, 'n1', 'n2').state !== 'connected' && linkState(mesh, 'n2', 'n1').state !== 'connected',
    { message: 'both sides to notice the silent partition' },
  );
  mesh.transports.n1!.send('n2', encode('during'));
  await waitFor(() => linkState(mesh, 'n1', 'n2').failedConnects >= 1, {
    message: 'redials to time out in the partition',
  });
  assert.deepEqual(mesh.texts('n2'), ['before']);

  for (const proxy of Object.values(proxies)) proxy.heal();
  await waitFor(
    () =>
      linkState(mesh, 'n1', 'n2').state === 'connected' && linkState(mesh, 'n2', 'n1').state === 'connected',
    { message: 'links to come back after heal' },
  );
  mesh.transports.n1!.send('n2', encode('after'));
  mesh.transports.n2!.send('n1', encode('after'));
  await waitFor(() => mesh.texts('n2').includes('after') && mesh.texts('n1').includes('after'));
  // Torn streams were reset, never resumed half-way: no frame was ever rejected.
  assert.equal(mesh.transports.n1!.stats().rejectedFrames, 0);
  assert.equal(mesh.transports.n2!.stats().rejectedFrames, 0);
});

test('transport partition - a one-way partition cuts only that direction', { timeout: 30_000 }, async (t) => {
  const { mesh, proxies } = await partitionableMesh(t);
  await waitFor(
    () =>
      linkState(mesh, 'n1', 'n2').state === 'connected' && linkState(mesh, 'n2', 'n1').state === 'connected',
  );
  proxies['n1->n2']!.blackhole('toTarget');
  mesh.transports.n1!.send('n2', encode('swallowed'));
  mesh.transports.n2!.send('n1', encode('delivered'));
  await waitFor(() => mesh.texts('n1').includes('delivered'));
  await sleep(200);
  assert.deepEqual(mesh.texts('n2'), []);
  proxies['n1->n2']!.heal();
  await waitFor(() => linkState(mesh, 'n1', 'n2').connects >= 2, {
    message: 'the torn n1→n2 link to be redialled',
  });
  mesh.transports.n1!.send('n2', encode('healed'));
  await waitFor(() => mesh.texts('n2').includes('healed'));
});

test('transport partition - a stall shorter than the idle timeout loses nothing', {
  timeout: 30_000,
}, async (t) => {
  const { mesh, proxies } = await partitionableMesh(t);
  await waitFor(() => linkState(mesh, 'n1', 'n2').state === 'connected');
  proxies['n1->n2']!.stall();
  for (let index = 0; index < 100; index += 1) mesh.transports.n1!.send('n2', encode(`m${index}`));
  await sleep(200);
  assert.equal(mesh.texts('n2').length, 0);
  proxies['n1->n2']!.heal();
  await waitFor(() => mesh.texts('n2').length === 100);
  assert.deepEqual(
    mesh.texts('n2'),
    Array.from({ length: 100 }, (_, index) => `m${index}`),
  );
  assert.equal(linkState(mesh, 'n1', 'n2').connects, 1, 'the link survived the stall');
});
