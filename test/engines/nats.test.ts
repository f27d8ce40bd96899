/**
 * Proves the nats-server launcher works: a real 3-node JetStream cluster starts, serves an R3
 * stream, and leaves no process behind.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { AckPolicy, jetstream, jetstreamManager, RetentionPolicy, StorageType } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import { startNatsCluster, startNatsServer, waitFor } from '../support/index.ts';

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

test('engines - a 3-node JetStream cluster serves an R3 work-queue stream', {
  timeout: 60_000,
}, async (t) => {
  const cluster = await startNatsCluster({ nodes: 3, jetstream: true, owner: t });
  assert.equal(cluster.urls.length, 3);
  const pids = cluster.servers.map((server) => server.pid);
  const connection = await connect({ servers: cluster.urls });
  t.after(() => connection.close());

  const manager = await jetstreamManager(connection);
  await manager.streams.add({
    name: 'jobs',
    subjects: ['jobs.>'],
    retention: RetentionPolicy.Workqueue,
    storage: StorageType.File,
    num_replicas: 3,
  });
  const info = await manager.streams.info('jobs');
  assert.equal(info.config.num_replicas, 3);
  assert.ok(info.cluster?.leader, 'the stream has a leader');

  const client = jetstream(connection);
  for (let index = 0; index < 5; index += 1) {
    const ack = await client.publish('jobs.resize', `job-${index}`, { msgID: `job-${index}` });
    assert.equal(ack.seq, index + 1);
  }
  const duplicate = await client.publish('jobs.resize', 'job-0', { msgID: 'job-0' });
  assert.equal(duplicate.duplicate, true, 'the same Nats-Msg-Id is deduplicated');

  await manager.consumers.add('jobs', { durable_name: 'workers', ack_policy: AckPolicy.Explicit });
  const consumer = await client.consumers.get('jobs', 'workers');
  const received: string[] = [];
  const messages = await consumer.fetch({ max_messages: 5, expires: 5000 });
  for await (const message of messages) {
    received.push(message.string());
    await message.ackAck();
  }
  assert.deepEqual(received, ['job-0', 'job-1', 'job-2', 'job-3', 'job-4']);
  await waitForEmpty(manager);

  await connection.close();
  await cluster.stop();
  for (const pid of pids) assert.equal(isAlive(pid), false, `nats-server ${pid} was stopped`);
});

test('engines - a single nats-server restarts on the same port and keeps its stream', {
  timeout: 60_000,
}, async (t) => {
  const single = await startNatsServer({ owner: t });
  const connection = await connect({ servers: single.url, reconnectTimeWait: 100, maxReconnectAttempts: -1 });
  t.after(() => connection.close());
  const manager = await jetstreamManager(connection, { timeout: 1000 });
  await manager.streams.add({ name: 'solo', subjects: ['solo'], storage: StorageType.File });
  await jetstream(connection).publish('solo', 'kept');

  const before = single.server.pid;
  await single.server.kill('SIGKILL');
  assert.equal(single.server.running, false);
  await single.server.restart();
  assert.notEqual(single.server.pid, before);
  // A request sent before the client has reconnected is lost, so retry until one is answered.
  const info = await waitFor(() => manager.streams.info('solo'), {
    timeoutMs: 20_000,
    message: 'the restarted server to answer',
  });
  assert.equal(info.state.messages, 1);
});

async function waitForEmpty(manager: Awaited<ReturnType<typeof jetstreamManager>>): Promise<void> {
  for (let attempt = 0; attempt < 50; attempt += 1) {
    const info = await manager.streams.info('jobs');
    if (info.state.messages === 0) return;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  assert.fail('acked work-queue messages were not removed');
}
