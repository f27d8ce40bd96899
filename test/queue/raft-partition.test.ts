/**
 * Partition: every link of one node runs through a fault-injecting proxy. Blackholed, the node
 * falls behind while the majority keeps committing (and compacts its log past it); healed, it
 * catches up by InstallSnapshot without deposing the leader (pre-vote), and every replica ends
 * with the same state.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { RaftQueueClient, type RaftQueueNode } from '../../src/queue/raft/index.ts';
import { createFaultProxy, type FaultProxy } from '../../src/resilience/chaos/index.ts';
import { waitFor } from '../support/index.ts';
import { startInProcessCluster } from './fixtures/raft-in-process-cluster.ts';
import { createLedger, drainAndCheck, runEnqueueLoad } from './fixtures/raft-load.ts';

const quickLiveness = {
  heartbeatIntervalMs: 100,
  idleTimeoutMs: 600,
  handshakeTimeoutMs: 500,
  reconnectInitialDelayMs: 20,
  reconnectMaxDelayMs: 200,
};

const digest = (node: RaftQueueNode) => JSON.stringify(node.application.machine.snapshot());

test('raft queue - an isolated node catches up by snapshot after the partition heals', {
  timeout: 90_000,
}, async (t) => {
  const proxies = new Map<string, FaultProxy>();
  t.after(async () => {
    for (const proxy of proxies.values()) await proxy.close();
  });
  // Links that involve n3, in both directions, each through its own proxy.
  const isolated = 'n3';
  const cluster = await startInProcessCluster({
    size: 3,
    nodeOptions: (id, ports) => {
      const peers: Record<string, { host: string; port: number }> = {};
      for (const other of ['n1', 'n2', 'n3']) {
        if (other === id) continue;
        const direct = { host: '127.0.0.1', port: ports[other]! };
        if (id !== isolated && other !== isolated) {
          peers[other] = direct;
          continue;
        }
        const proxy = createFaultProxy({ target: direct });
        proxies.set(`${id}->${other}`, proxy);
        peers[other] = direct; // replaced below once the proxy has a port
      }
      return { peers, transport: quickLiveness, snapshotEveryBytes: 64 * 1024 };
    },
    beforeStart: async (id, options) => {
      for (const [link, proxy] of proxies) {
        const [from, to] = link.split('->');
        if (from !== id) continue;
        const { port } = await proxy.start();
        options.peers[to!] = { host: '127.0.0.1', port };
      }
    },
  });
  t.after(() => cluster.close());
  let leader = await cluster.leader();
  if (leader.id === isolated) {
    await leader.transferLeadership('n1');
    leader = await waitFor(() => {
      const node = cluster.nodes.get('n1');
      return node?.host.leaderCaughtUp ? node : undefined;
    });
  }
  const client = new RaftQueueClient({ nodes: cluster.clientAddresses() });
  t.after(() => client.close());
  const ledger = createLedger();

  let stop = false;
  let load = runEnqueueLoad(client, ledger, { inFlight: 8, prefix: 'before', shouldStop: () => stop });
  await waitFor(() => ledger.acknowledged.size >= 100);
  stop = true;
  await load;
  const node3 = cluster.nodes.get(isolated)!;
  await waitFor(() => node3.host.applied === leader.host.applied, {
    message: 'n3 in sync before the partition',
  });
  const termBefore = leader.host.role.term;

  for (const proxy of proxies.values()) proxy.blackhole();
  const appliedAtPartition = node3.host.applied;
  stop = false;
  load = runEnqueueLoad(client, ledger, { inFlight: 32, prefix: 'during', shouldStop: () => stop });
  // The majority keeps committing, and compacts its log beyond what n3 has.
  await waitFor(
    () => leader.host.status().snapshotIndex > appliedAtPartition && ledger.acknowledged.size > 3000,
    {
      timeoutMs: 40_000,
      message: 'the majority to commit and compact past the isolated node',
    },
  );
  stop = true;
  await load;
  assert.equal(ledger.unacknowledged.size, 0);
  assert.equal(node3.host.applied, appliedAtPartition, 'the isolated node applied nothing new');
  assert.ok(node3.host.role.role !== 'leader');

  for (const proxy of proxies.values()) proxy.heal();
  await waitFor(() => node3.host.applied === leader.host.applied, {
    timeoutMs: 30_000,
    message: 'the isolated node to catch up',
  });
  assert.ok(node3.host.status().snapshotsInstalled >= 1, 'caught up through InstallSnapshot');
  assert.equal(leader.host.isLeader, true, 'the returning node did not depose the leader (pre-vote)');
  assert.equal(leader.host.role.term, termBefore);
  const digests = [...cluster.nodes.values()].map(digest);
  assert.equal(new Set(digests).size, 1, 'every replica has the same state');

  const result = await drainAndCheck(client, ledger);
  assert.equal(result.lost, 0);
  assert.equal(result.duplicated, 0);
  await waitFor(() => [...cluster.nodes.values()].every((node) => node.host.applied === leader.host.applied));
  assert.equal(new Set([...cluster.nodes.values()].map(digest)).size, 1, 'replicas converge after the drain');
});
