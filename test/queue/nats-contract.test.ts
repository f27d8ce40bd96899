/**
 * The JobQueue contract against NatsJobQueue on a real 3-node nats-server cluster (JetStream, file
 * storage, R3). One cluster serves the whole file; each test gets its own streams (a fresh stream
 * name and subject prefix) and deletes them afterwards.
 */
import { randomUUID } from 'node:crypto';
import { after } from 'node:test';
import { jetstreamManager } from '@nats-io/jetstream';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { openNatsQueue } from '../../src/queue/nats/index.ts';
import { type NatsCluster, startNatsCluster } from '../support/index.ts';
import { runQueueContract } from './contract.ts';

let cluster: Promise<{ cluster: NatsCluster; admin: NatsConnection }> | undefined;

function sharedCluster() {
  cluster ??= (async () => {
    const started = await startNatsCluster({ nodes: 3 });
    const admin = await connect({ servers: started.urls });
    return { cluster: started, admin };
  })();
  return cluster;
}

after(async () => {
  if (cluster === undefined) return;
  const { cluster: started, admin } = await cluster;
  await admin.close();
  await started.stop();
});

runQueueContract(
  'nats (3 servers, R3)',
  async () => {
    const { cluster: started, admin } = await sharedCluster();
    const name = `T${randomUUID().replaceAll('-', '').slice(0, 12)}`;
    const queue = await openNatsQueue({
      servers: started.urls,
      stream: name,
      subjectPrefix: `test.${name}`,
      ackWaitMs: 1_000,
      pollIntervalMs: 100,
      accountRefreshMs: 250,
      requestTimeoutMs: 10_000,
      duplicateWindowMs: 20_000,
      retentionMs: 120_000,
      sweepIntervalMs: 0,
    });
    const resources = queue.resources;
    return {
      queue,
      close: async () => {
        await queue.close();
        const manager = await jetstreamManager(admin);
        for (const stream of [
          resources.jobsStream,
          resources.recordsStream,
          resources.deadLetterStream,
          resources.eventsStream,
        ]) {
          await manager.streams.delete(stream).catch(() => {});
        }
      },
    };
  },
  // JetStream redelivers a dead process's messages within AckWait by itself (nats-queue.ts).
  { releasesConsumers: false },
);
