/**
 * The `JobQueue` contract as a reusable test suite: every implementation (embedded, Raft, ...)
 * runs it. It uses only the public interface and real time (short leases of a few hundred ms,
 * generous timeouts), never a fake clock, so it can run against a real cluster. `open` must
 * return an empty queue; ids are unique per test anyway.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { isPixelfleetError } from '../../src/errors/index.ts';
import type { ClaimedJob, JobQueue, JobRecord } from '../../src/queue/types.ts';

export interface QueueUnderTest {
  queue: JobQueue;
  /** Releases everything the queue used (files, processes, ports); the queue may already be closed. */
  close(): Promise<void>;
}

const LEASE_MS = 300;
const WAIT_MS = 5_000;
/** For tests of claim order, which hold every lease until the end. */
const ORDER_LEASE_MS = 30_000;

export interface ContractOptions {
  /**
   * Whether `releaseConsumer` takes leases back (embedded, Raft). False for a queue that detects
   * dead consumers by itself and releases none (JetStream: AckWait). Default true.
   */
  releasesConsumers?: boolean;
}

export function runQueueContract(
  name: string,
  open: () => Promise<QueueUnderTest>,
  options: ContractOptions = {},
): void {
  const releasesConsumers = options.releasesConsumers ?? true;
  async function withQueue(body: (queue: JobQueue, ids: (label: string) => string) => Promise<void>) {
    const opened = await open();
    const prefix = randomUUID().slice(0, 8);
    try {
      await body(opened.queue, (label) => `${prefix}-${label}`);
    } finally {
      await opened.close();
    }
  }

  const job = (id: string, account = 'acme', extra: { maxAttempts?: number; deadline?: number } = {}) => ({
    id,
    account,
    payload: { source: `http://127.0.0.1/inputs/${id}`, width: 320 },
    ...extra,
  });

  const claim = (
    queue: JobQueue,
    options: { leaseMs?: number; waitMs?: number; signal?: AbortSignal } = {},
  ) => queue.claim({ consumer: 'contract-worker', leaseMs: options.leaseMs ?? LEASE_MS, ...options });

  const rejectsWith = (promise: Promise<unknown>, ...codes: string[]) =>
    assert.rejects(promise, (error: unknown) => {
      assert.ok(
        codes.some((code) => isPixelfleetError(error, code as never)),
        `expected ${codes.join(' or ')}, got ${String(error)}`,
      );
      return true;
    });

  async function eventually(
    read: () => Promise<JobRecord | undefined>,
    accept: (record: JobRecord) => boolean,
  ) {
    const until = Date.now() + WAIT_MS;
    for (;;) {
      const record = await read();
      if (record && accept(record)) return record;
      if (Date.now() > until) assert.fail(`condition not reached; last record: ${JSON.stringify(record)}`);
      await sleep(25);
    }
  }

  describe(`${name} job queue contract`, () => {
    test('queue - enqueue is idempotent by id', () =>
      withQueue(async (queue, ids) => {
        const first = await queue.enqueue(job(ids('a')));
        assert.deepEqual(first, { id: ids('a'), duplicate: false, state: 'queued' });
        const second = await queue.enqueue({ ...job(ids('a')), payload: { other: true } });
        assert.deepEqual(second, { id: ids('a'), duplicate: true, state: 'queued' });
        const stats = await queue.stats();
        assert.equal(stats.depth, 1);
        assert.equal(stats.enqueuedTotal, 1);
        const claimed = await claim(queue);
        assert.deepEqual(claimed?.payload, job(ids('a')).payload);
        assert.equal(await claim(queue), undefined);
      }));

    test('queue - a finished job still deduplicates its id', () =>
      withQueue(async (queue, ids) => {
        await queue.enqueue(job(ids('a')));
        const claimed = (await claim(queue))!;
        await queue.ack(claimed.id, claimed.leaseId);
        assert.deepEqual(await queue.enqueue(job(ids('a'))), {
          id: ids('a'),
          duplicate: true,
          state: 'succeeded',
        });
        assert.equal(await claim(queue), undefined);
      }));

    test('queue - serves one account first in, first out', () =>
      withQueue(async (queue, ids) => {
        const order = ['1', '2', '3', '4', '5'].map(ids);
        for (const id of order) await queue.enqueue(job(id));
        const claimed: string[] = [];
        // Leases long enough that none runs out while the loop claims (a slow machine, a remote
        // queue): this test is about order, and a redelivery would claim a job twice.
        const hold = { leaseMs: ORDER_LEASE_MS };
        for (let next = await claim(queue, hold); next; next = await claim(queue, hold))
          claimed.push(next.id);
        assert.deepEqual(claimed, order);
      }));

    test('queue - serves accounts round robin so a busy tenant cannot starve others', () =>
      withQueue(async (queue, ids) => {
        for (let index = 0; index < 4; index++) await queue.enqueue(job(ids(`busy-${index}`), 'busy'));
        await queue.enqueue(job(ids('quiet-0'), 'quiet'));
        await queue.enqueue(job(ids('quiet-1'), 'quiet'));
        await queue.enqueue(job(ids('rare-0'), 'rare'));
        const accounts: string[] = [];
        const hold = { leaseMs: ORDER_LEASE_MS };
        for (let next = await claim(queue, hold); next; next = await claim(queue, hold))
          accounts.push(next.account);
        assert.equal(accounts.length, 7);
        assert.deepEqual(new Set(accounts.slice(0, 3)), new Set(['busy', 'quiet', 'rare']));
        assert.deepEqual(new Set(accounts.slice(3, 5)), new Set(['busy', 'quiet']));
        assert.deepEqual(accounts.slice(5), ['busy', 'busy']);
      }));

    test('queue - redelivers after lease expiry', () =>
      withQueue(async (queue, ids) => {
        await queue.enqueue(job(ids('a')));
        const first = (await claim(queue))!;
        assert.equal(first.attempt, 1);
        assert.ok(first.leaseExpiresAt >= Date.now());
        const started = Date.now();
        // The waiting claim is woken by the lease expiry.
        const second = (await claim(queue, { waitMs: WAIT_MS }))!;
        assert.ok(Date.now() - started >= LEASE_MS - 100, 'redelivered before the lease expired');
        assert.equal(second.id, first.id);
        assert.equal(second.attempt, 2);
        assert.notEqual(second.leaseId, first.leaseId);
        assert.ok((await queue.stats()).redeliveredTotal >= 1);
        await queue.ack(second.id, second.leaseId);
      }));

    test('queue - releaseConsumer hands back the leases of one consumer and its slots only', () =>
      withQueue(async (queue, ids) => {
        // Durable and non-durable jobs alike: a worker's jobs are of both kinds.
        await queue.enqueue(job(ids('slot')));
        await queue.enqueue({ ...job(ids('exact')), durable: false });
        await queue.enqueue(job(ids('other')));
        const hold = (consumer: string) => queue.claim({ consumer, leaseMs: ORDER_LEASE_MS });
        const slot = (await hold('w1/0'))!;
        const exact = (await hold('w1'))!;
        // Shares the prefix "w1" but is another worker.
        const other = (await hold('w10/0'))!;
        assert.deepEqual(
          new Set([slot.id, exact.id, other.id]),
          new Set([ids('slot'), ids('exact'), ids('other')]),
        );
        if (!releasesConsumers) {
          assert.equal(await queue.releaseConsumer('w1'), 0);
          await queue.ack(slot.id, slot.leaseId);
          await queue.ack(exact.id, exact.leaseId);
          await queue.ack(other.id, other.leaseId);
          return;
        }
        assert.equal(await queue.releaseConsumer('w1'), 2);
        // Claimable at once, long before the 30 s leases would have run out.
        const again = [(await hold('w2/0'))!, (await hold('w2/1'))!];
        assert.deepEqual(new Set(again.map((claimed) => claimed.id)), new Set([slot.id, exact.id]));
        for (const claimed of again) assert.equal(claimed.attempt, 2);
        assert.equal(await hold('w2/2'), undefined, "w10's job stays leased");
        // The dead incarnation's leases are fenced off.
        await rejectsWith(queue.ack(slot.id, slot.leaseId), 'PF_ERR_LEASE_LOST');
        await rejectsWith(queue.ack(exact.id, exact.leaseId), 'PF_ERR_LEASE_LOST');
        assert.equal(await queue.releaseConsumer('w1'), 0, 'nothing left to release');
        for (const claimed of [...again, other]) await queue.ack(claimed.id, claimed.leaseId);
        assert.equal((await queue.get(slot.id))?.state, 'succeeded');
        await assert.rejects(queue.releaseConsumer(''), TypeError);
      }));

    test('queue - releaseConsumer dead-letters a job on its last attempt', () =>
      withQueue(async (queue, ids) => {
        await queue.enqueue(job(ids('poison'), 'acme', { maxAttempts: 1 }));
        const claimed = (await queue.claim({ consumer: 'w1/0', leaseMs: ORDER_LEASE_MS }))!;
        if (!releasesConsumers) {
          assert.equal(await queue.releaseConsumer('w1'), 0);
          assert.equal((await queue.get(claimed.id))?.state, 'running', 'the lease is untouched');
          await queue.ack(claimed.id, claimed.leaseId);
          return;
        }
        assert.equal(await queue.releaseConsumer('w1'), 1);
        const record = await eventually(
          () => queue.get(claimed.id),
          (current) => current.state === 'dead',
        );
        assert.match(record.lastError ?? '', /released by w1/);
      }));

    test('queue - fences ack, nack and extend by the lease id', () =>
      withQueue(async (queue, ids) => {
        await queue.enqueue(job(ids('a')));
        const stale = (await claim(queue))!;
        const current = (await claim(queue, { waitMs: WAIT_MS }))!;
        assert.equal(current.id, stale.id);
        await rejectsWith(queue.ack(stale.id, stale.leaseId, { by: 'stale' }), 'PF_ERR_LEASE_LOST');
        await rejectsWith(
          queue.nack(stale.id, stale.leaseId, { reason: 'x', retry: false }),
          'PF_ERR_LEASE_LOST',
        );
        await rejectsWith(queue.extend(stale.id, stale.leaseId, 1_000), 'PF_ERR_LEASE_LOST');
        await queue.ack(current.id, current.leaseId, { by: 'current' });
        const record = (await queue.get(current.id))!;
        assert.equal(record.state, 'succeeded');
        assert.deepEqual(record.outcome, { by: 'current' });
        await rejectsWith(queue.ack(current.id, current.leaseId), 'PF_ERR_LEASE_LOST');
        await rejectsWith(
          queue.ack(ids('never-enqueued'), current.leaseId),
          'PF_ERR_JOB_NOT_FOUND',
          'PF_ERR_LEASE_LOST',
        );
      }));

    test('queue - ack stores the outcome and the timing of the job', () =>
      withQueue(async (queue, ids) => {
        const deadline = Date.now() + 60_000;
        await queue.enqueue(job(ids('a'), 'acme', { deadline }));
        const claimed = (await claim(queue))!;
        assert.equal(claimed.account, 'acme');
        assert.equal(claimed.deadline, deadline);
        assert.equal(claimed.maxAttempts >= 1, true);
        const running = (await queue.get(claimed.id))!;
        assert.equal(running.state, 'running');
        await queue.ack(claimed.id, claimed.leaseId, { bytesOut: 1234, cpuMs: 12.5 });
        const record = (await queue.get(claimed.id))!;
        assert.equal(record.state, 'succeeded');
        assert.equal(record.attempts, 1);
        assert.deepEqual(record.outcome, { bytesOut: 1234, cpuMs: 12.5 });
        assert.deepEqual(record.payload, job(ids('a')).payload);
        assert.ok(record.firstClaimedAt! >= record.enqueuedAt);
        assert.ok(record.finishedAt! >= record.firstClaimedAt!);
        assert.equal(record.deadline, deadline);
        assert.equal(await queue.get(ids('unknown')), undefined);
      }));

    test('queue - nack with retry redelivers, not before the backoff', () =>
      withQueue(async (queue, ids) => {
        await queue.enqueue(job(ids('a')));
        const first = (await claim(queue))!;
        await queue.nack(first.id, first.leaseId, { reason: 'upstream busy', retry: true, delayMs: 400 });
        const nackedAt = Date.now();
        assert.equal(await claim(queue), undefined, 'redelivered during the backoff');
        const second = (await claim(queue, { waitMs: WAIT_MS }))!;
        assert.ok(Date.now() - nackedAt >= 300, 'backoff not honoured');
        assert.equal(second.id, first.id);
        assert.equal(second.attempt, 2);
        assert.equal((await queue.stats()).nackedTotal, 1);
        await queue.nack(second.id, second.leaseId, { reason: 'again', retry: true });
        const third = (await claim(queue))!;
        assert.equal(third.attempt, 3);
        await queue.ack(third.id, third.leaseId);
      }));

    test('queue - nack without retry dead-letters with its reason', () =>
      withQueue(async (queue, ids) => {
        await queue.enqueue(job(ids('poison')));
        const claimed = (await claim(queue))!;
        await queue.nack(claimed.id, claimed.leaseId, { reason: 'corrupt JPEG', retry: false });
        const record = (await queue.get(claimed.id))!;
        assert.equal(record.state, 'dead');
        assert.equal(record.lastError, 'corrupt JPEG');
        const dead = await queue.deadLetters();
        assert.deepEqual(
          dead.map((entry) => entry.id),
          [claimed.id],
        );
        const stats = await queue.stats();
        assert.equal(stats.deadLetters, 1);
        assert.equal(stats.deadLetteredTotal, 1);
        assert.equal(await claim(queue), undefined);
      }));

    test('queue - dead-letters after maxAttempts deliveries', () =>
      withQueue(async (queue, ids) => {
        await queue.enqueue(job(ids('flaky'), 'acme', { maxAttempts: 2 }));
        for (let attempt = 1; attempt <= 2; attempt++) {
          const claimed = (await claim(queue))!;
          assert.equal(claimed.attempt, attempt);
          assert.equal(claimed.maxAttempts, 2);
          await queue.nack(claimed.id, claimed.leaseId, { reason: `failure ${attempt}`, retry: true });
        }
        assert.equal(await claim(queue), undefined);
        const record = (await queue.get(ids('flaky')))!;
        assert.equal(record.state, 'dead');
        assert.equal(record.attempts, 2);
        assert.equal(record.lastError, 'failure 2');
        assert.deepEqual(
          (await queue.deadLetters(10)).map((entry) => entry.id),
          [ids('flaky')],
        );
      }));

    test('queue - dead-letters a job whose every lease expired', () =>
      withQueue(async (queue, ids) => {
        await queue.enqueue(job(ids('stuck'), 'acme', { maxAttempts: 1 }));
        const claimed = (await claim(queue, { leaseMs: 200 }))!;
        const record = await eventually(
          () => queue.get(claimed.id),
          (current) => current.state === 'dead',
        );
        assert.match(record.lastError ?? '', /lease expired after 1 attempt/);
        assert.equal(record.attempts, 1);
        assert.equal(await claim(queue), undefined);
      }));

    test('queue - drops jobs whose deadline passed before they were claimed', () =>
      withQueue(async (queue, ids) => {
        await queue.enqueue(job(ids('late'), 'acme', { deadline: Date.now() + 300 }));
        const alreadyLate = await queue.enqueue(
          job(ids('born-late'), 'acme', { deadline: Date.now() - 1_000 }),
        );
        assert.equal(alreadyLate.duplicate, false);
        await sleep(500);
        assert.equal(await claim(queue), undefined);
        await eventually(
          () => queue.get(ids('late')),
          (record) => record.state === 'expired',
        );
        await eventually(
          () => queue.get(ids('born-late')),
          (record) => record.state === 'expired',
        );
        const stats = await queue.stats();
        assert.equal(stats.expiredTotal, 2);
        assert.equal(stats.depth, 0);
      }));

    test('queue - extend keeps the lease past its first expiry', () =>
      withQueue(async (queue, ids) => {
        await queue.enqueue(job(ids('slow')));
        const claimed = (await claim(queue))!;
        await sleep(100);
        const { leaseExpiresAt } = await queue.extend(claimed.id, claimed.leaseId, 2_000);
        assert.ok(leaseExpiresAt > claimed.leaseExpiresAt);
        await sleep(LEASE_MS + 200);
        assert.equal(await claim(queue), undefined, 'redelivered despite the extension');
        assert.equal((await queue.get(claimed.id))!.state, 'running');
        await queue.ack(claimed.id, claimed.leaseId);
      }));

    test('queue - long-poll claim wakes on enqueue', () =>
      withQueue(async (queue, ids) => {
        const started = Date.now();
        const waiting = claim(queue, { waitMs: 10_000 });
        await sleep(100);
        await queue.enqueue(job(ids('a')));
        const claimed = await waiting;
        assert.equal(claimed?.id, ids('a'));
        assert.ok(Date.now() - started < 5_000, 'the waiting claim was not woken');
      }));

    test('queue - long-poll claim wakes on nack', () =>
      withQueue(async (queue, ids) => {
        await queue.enqueue(job(ids('a')));
        const held = (await claim(queue))!;
        const waiting = claim(queue, { waitMs: 10_000 });
        await sleep(50);
        await queue.nack(held.id, held.leaseId, { reason: 'handing over', retry: true });
        const claimed = await waiting;
        assert.equal(claimed?.id, held.id);
        assert.equal(claimed?.attempt, 2);
      }));

    test('queue - long-poll claim gives up empty after waitMs', () =>
      withQueue(async (queue) => {
        const started = Date.now();
        assert.equal(await claim(queue, { waitMs: 300 }), undefined);
        assert.ok(Date.now() - started >= 250);
      }));

    test('queue - long-poll claim honours its abort signal', () =>
      withQueue(async (queue, ids) => {
        const controller = new AbortController();
        const waiting = claim(queue, { waitMs: 10_000, signal: controller.signal });
        setTimeout(() => controller.abort(), 100);
        await assert.rejects(waiting, { name: 'AbortError' });
        await assert.rejects(claim(queue, { waitMs: 1_000, signal: AbortSignal.abort() }), {
          name: 'AbortError',
        });
        // The aborted claim took nothing: the next job goes to the next claim.
        await queue.enqueue(job(ids('a')));
        assert.equal((await claim(queue))?.id, ids('a'));
      }));

    test('queue - waiting claims each get a different job', () =>
      withQueue(async (queue, ids) => {
        const waiting = [0, 1, 2].map(() => claim(queue, { waitMs: 10_000 }));
        await sleep(50);
        for (const label of ['a', 'b', 'c']) await queue.enqueue(job(ids(label)));
        const claimed = (await Promise.all(waiting)) as ClaimedJob[];
        assert.deepEqual(new Set(claimed.map((entry) => entry.id)), new Set(['a', 'b', 'c'].map(ids)));
      }));

    test('queue - stats count depth, inflight, totals and per-account load', () =>
      withQueue(async (queue, ids) => {
        await queue.enqueue(job(ids('a1'), 'alpha'));
        await queue.enqueue(job(ids('a2'), 'alpha'));
        await queue.enqueue(job(ids('b1'), 'beta'));
        const first = (await claim(queue))!;
        const stats = await queue.stats();
        assert.equal(stats.depth, 2);
        assert.equal(stats.inflight, 1);
        assert.equal(stats.enqueuedTotal, 3);
        assert.deepEqual(stats.perAccount, {
          alpha: { queued: 1, inflight: 1 },
          beta: { queued: 1, inflight: 0 },
        });
        await queue.ack(first.id, first.leaseId);
        const after = await queue.stats();
        assert.equal(after.inflight, 0);
        assert.equal(after.ackedTotal, 1);
        assert.deepEqual(after.perAccount.alpha, { queued: 1, inflight: 0 });
        for (let remaining = 2; remaining > 0; remaining--) {
          const next = (await claim(queue))!;
          await queue.ack(next.id, next.leaseId);
        }
        const drained = await queue.stats();
        assert.equal(drained.depth, 0);
        assert.deepEqual(drained.perAccount, {});
      }));

    test('queue - rejects invalid arguments before doing anything', () =>
      withQueue(async (queue, ids) => {
        await assert.rejects(queue.enqueue({ ...job(ids('a')), id: '' }), TypeError);
        await assert.rejects(queue.enqueue({ ...job(ids('a')), maxAttempts: 0 }), RangeError);
        await assert.rejects(queue.enqueue({ ...job(ids('a')), payload: null as never }), TypeError);
        await assert.rejects(queue.claim({ consumer: 'w', leaseMs: 0 }), RangeError);
        await assert.rejects(queue.claim({ consumer: 'w', leaseMs: 100, waitMs: -1 }), RangeError);
        assert.equal((await queue.stats()).enqueuedTotal, 0);
      }));

    test('queue - refuses work once closed', () =>
      withQueue(async (queue, ids) => {
        assert.equal(queue.writable(), true);
        const waiting = rejectsWith(claim(queue, { waitMs: 10_000 }), 'PF_ERR_QUEUE_CLOSED');
        await queue.close();
        assert.equal(queue.writable(), false);
        await waiting;
        await rejectsWith(queue.enqueue(job(ids('a'))), 'PF_ERR_QUEUE_CLOSED');
        await rejectsWith(claim(queue), 'PF_ERR_QUEUE_CLOSED');
        await queue.close();
      }));
  });
}
