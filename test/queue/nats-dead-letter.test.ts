/**
 * Dead letters on JetStream 2.9: a job whose every delivery lapsed (its holders died) reaches the
 * consumer's MaxDeliver and stays in the work-queue stream, delivered to nobody. It must still end
 * up dead-lettered with its reason: at once through the MAX_DELIVERIES advisory, or through the
 * sweeper when no advisory was heard.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { type NatsJobQueue, type NatsQueueOptions, openNatsQueue } from '../../src/queue/nats/index.ts';
import { type NatsCluster, startNatsCluster, waitFor } from '../support/index.ts';

describe('nats queue dead letters', () => {
  let cluster: NatsCluster;
  before(async () => {
    cluster = await startNatsCluster({ nodes: 3 });
  });
  after(() => cluster?.stop());

  async function openAll(advisories: boolean) {
    const name = `D${randomUUID().replaceAll('-', '').slice(0, 12)}`;
    const options: NatsQueueOptions = {
      servers: cluster.urls,
      stream: name,
      subjectPrefix: `dead.${name}`,
      ackWaitMs: 500,
      maxAttempts: 2,
      pollIntervalMs: 100,
      requestTimeoutMs: 10_000,
      duplicateWindowMs: 20_000,
      retentionMs: 120_000,
      sweepIntervalMs: 0,
      deadLetterAdvisories: advisories,
    };
    const keeper = await openNatsQueue(options);
    return { keeper, worker: () => openNatsQueue({ ...options, deadLetterAdvisories: false }) };
  }

  /** Two workers each claim the job and die (close without settling): every delivery lapses. */
  async function exhaustDeliveries(worker: () => Promise<NatsJobQueue>, id: string) {
    for (const attempt of [1, 2]) {
      const doomed = await worker();
      try {
        const claimed = await doomed.claim({ consumer: `doomed-${attempt}`, leaseMs: 300, waitMs: 10_000 });
        assert.equal(claimed?.id, id);
        assert.equal(claimed?.attempt, attempt);
      } finally {
        await doomed.close();
      }
    }
  }

  test('queue - the MAX_DELIVERIES advisory dead-letters a job whose holders all died', async () => {
    const { keeper, worker } = await openAll(true);
    try {
      await keeper.enqueue({ id: 'stuck-advisory', account: 'acme', payload: { n: 1 } });
      await exhaustDeliveries(worker, 'stuck-advisory');
      // Live workers keep polling; the server notices the exhausted message when it next looks
      // for something to deliver, and announces it then.
      assert.equal(await keeper.claim({ consumer: 'poller', leaseMs: 1_000, waitMs: 2_000 }), undefined);
      const record = await waitFor(
        async () => {
          const current = await keeper.get('stuck-advisory');
          return current?.state === 'dead' ? current : undefined;
        },
        { timeoutMs: 15_000, intervalMs: 100, message: 'the advisory listener to dead-letter the job' },
      );
      assert.match(record.lastError ?? '', /lease expired after 2 attempts/);
      assert.equal(keeper.diagnostics().deadLetteredByAdvisory, 1);
      assert.deepEqual(
        (await keeper.deadLetters()).map((entry) => entry.id),
        ['stuck-advisory'],
      );
      // The message left the jobs stream: nothing is queued or stuck any more.
      await waitFor(async () => (await keeper.stats()).depth === 0, { timeoutMs: 5_000 });
      assert.equal(await keeper.claim({ consumer: 'late', leaseMs: 1_000 }), undefined);
      assert.equal(await keeper.sweep(), 0);
    } finally {
      await keeper.destroy();
    }
  });

  test('queue - the sweeper dead-letters a stuck job when no advisory was heard', async () => {
    const { keeper, worker } = await openAll(false);
    try {
      await keeper.enqueue({ id: 'stuck-sweeper', account: 'acme', payload: { n: 2 } });
      await exhaustDeliveries(worker, 'stuck-sweeper');
      await keeper.enqueue({ id: 'healthy', account: 'acme', payload: { n: 3 } });
      // The healthy job is leased by a live process: the sweep must leave it alone.
      const live = (await keeper.claim({ consumer: 'alive', leaseMs: 30_000, waitMs: 5_000 }))!;
      assert.equal(live.id, 'healthy');
      // Workers keep polling: the server gives up on the exhausted message (unheard: no listener).
      assert.equal(await keeper.claim({ consumer: 'poller', leaseMs: 1_000, waitMs: 2_000 }), undefined);
      const swept = await waitFor(async () => ((await keeper.sweep()) > 0 ? true : undefined), {
        timeoutMs: 15_000,
        intervalMs: 250,
        message: 'the sweeper to find the stuck job',
      });
      assert.equal(swept, true);
      const record = (await keeper.get('stuck-sweeper'))!;
      assert.equal(record.state, 'dead');
      assert.match(record.lastError ?? '', /lease expired after 2 attempts/);
      assert.equal(keeper.diagnostics().deadLetteredBySweeper, 1);
      assert.equal(keeper.diagnostics().deadLetteredByAdvisory, 0);
      assert.equal((await keeper.get('healthy'))!.state, 'running');
      await keeper.ack(live.id, live.leaseId);
      const stats = await keeper.stats();
      assert.equal(stats.deadLetters, 1);
      assert.equal(stats.depth, 0);
      assert.equal(await keeper.sweep(), 0);
    } finally {
      await keeper.destroy();
    }
  });
});
