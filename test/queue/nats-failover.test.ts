/**
 * Fault: kill -9 the jobs stream's leader under steady enqueue + claim + ack load through
 * NatsJobQueue. No acknowledged enqueue may be lost, no job may be acked twice, and the gap (from
 * the kill until an enqueue, and an ack, started after it succeed) is measured and reported.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { test } from 'node:test';
import { jetstreamManager } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import { isPixelfleetError } from '../../src/errors/index.ts';
import { type NatsJobQueue, openNatsQueue } from '../../src/queue/nats/index.ts';
import { sleep, startNatsCluster, waitFor } from '../support/index.ts';

test('queue - nats: kill -9 of the stream leader loses no acknowledged job and acks none twice', async (t) => {
  const cluster = await startNatsCluster({ nodes: 3, owner: t });
  const name = `F${randomUUID().replaceAll('-', '').slice(0, 12)}`;
  const options = {
    servers: cluster.urls,
    stream: name,
    subjectPrefix: `fault.${name}`,
    ackWaitMs: 2_000,
    attemptTimeoutMs: 1_000,
    requestTimeoutMs: 30_000,
    duplicateWindowMs: 60_000,
    retentionMs: 600_000,
    pollIntervalMs: 100,
    sweepIntervalMs: 2_000,
  };
  const producer = await openNatsQueue({ ...options, name: 'fault-producer' });
  const consumer = await openNatsQueue({ ...options, name: 'fault-consumer' });
  const admin = await connect({ servers: cluster.urls });
  t.after(async () => {
    await producer.close();
    await consumer.close();
    await admin.close();
  });
  const manager = await jetstreamManager(admin);

  const acknowledged = new Set<string>();
  const unacknowledged = new Set<string>();
  const acks = new Map<string, number>();
  const errors = new Map<string, number>();
  let killedAt = Number.POSITIVE_INFINITY;
  let enqueueResumedAt: number | undefined;
  let ackResumedAt: number | undefined;
  let producing = true;
  let consuming = true;
  const note = (error: unknown) => {
    const key = isPixelfleetError(error) ? error.code : String((error as Error)?.name);
    errors.set(key, (errors.get(key) ?? 0) + 1);
  };

  let next = 0;
  const produce = async () => {
    while (producing) {
      const id = `job-${++next}`;
      const startedAt = performance.now();
      try {
        await producer.enqueue({ id, account: `acct-${next % 3}`, payload: { n: next } });
        acknowledged.add(id);
        if (startedAt > killedAt) enqueueResumedAt ??= performance.now();
      } catch (error) {
        unacknowledged.add(id);
        note(error);
      }
      await sleep(5);
    }
  };
  const work = async (queue: NatsJobQueue) => {
    while (consuming) {
      try {
        const job = await queue.claim({ consumer: 'fault-worker', leaseMs: 20_000, waitMs: 500 });
        if (job === undefined) continue;
        const startedAt = performance.now();
        await queue.ack(job.id, job.leaseId, { by: 'fault-worker' });
        acks.set(job.id, (acks.get(job.id) ?? 0) + 1);
        if (startedAt > killedAt) ackResumedAt ??= performance.now();
      } catch (error) {
        note(error);
      }
    }
  };
  const producers = Array.from({ length: 4 }, produce);
  const workers = Array.from({ length: 4 }, () => work(consumer));

  await sleep(1_500); // steady state
  const leaderName = (await manager.streams.info(name)).cluster?.leader;
  const leader = cluster.servers.find((server) => server.name === leaderName);
  assert.ok(leader, `stream leader ${leaderName} is one of the cluster's servers`);
  const beforeKill = acknowledged.size;
  killedAt = performance.now();
  await leader.kill('SIGKILL');
  await waitFor(() => enqueueResumedAt !== undefined && ackResumedAt !== undefined, {
    timeoutMs: 40_000,
    intervalMs: 50,
    message: 'enqueue and ack to resume after the leader kill',
  });
  await sleep(1_000); // keep going on the new leader
  producing = false;
  await Promise.all(producers);

  // Drain: every acknowledged job must be acked by a worker (redeliveries included).
  await waitFor(() => [...acknowledged].every((id) => acks.has(id)), {
    timeoutMs: 45_000,
    intervalMs: 100,
    message: 'the workers to ack every acknowledged job',
  }).catch(() => {});
  consuming = false;
  await Promise.all(workers);

  const lost = [...acknowledged].filter((id) => !acks.has(id));
  const ackedTwice = [...acks].filter(([, count]) => count > 1).map(([id]) => id);
  const enqueueGapMs = (enqueueResumedAt as number) - killedAt;
  const ackGapMs = (ackResumedAt as number) - killedAt;
  t.diagnostic(
    `killed ${leaderName}; enqueue resumed after ${enqueueGapMs.toFixed(0)} ms, ack after ${ackGapMs.toFixed(0)} ms; ` +
      `${acknowledged.size} acknowledged (${beforeKill} before the kill), ${unacknowledged.size} gave up, ` +
      `errors ${JSON.stringify(Object.fromEntries(errors))}, leftovers discarded ${consumer.diagnostics().leftoversDiscarded}`,
  );
  assert.deepEqual(lost, [], 'acknowledged jobs never acked');
  assert.deepEqual(ackedTwice, [], 'jobs acked twice');
  assert.ok(acknowledged.size > beforeKill, 'enqueues were acknowledged after the kill');
  for (const id of [...acknowledged].slice(-3)) {
    assert.equal((await producer.get(id))?.state, 'succeeded');
  }
});
