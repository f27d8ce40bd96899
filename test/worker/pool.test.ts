import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { isPixelfleetError } from '../../src/errors/index.ts';
import {
  isRetryableConversionError,
  parseResizeOptions,
  type ResizeQuery,
  WorkerPool,
  type WorkerPoolEvent,
} from '../../src/worker/index.ts';
import { tempDir } from '../support/index.ts';
import { corpusFile, metadataOf, testLimits } from './fixtures.ts';

const photo = corpusFile('jpeg/mate-Aqua.jpg');
// Blurring the largest corpus photo at full size with sigma 300 takes over a minute of CPU:
// a conversion that is reliably still running when the test kills it or the watchdog fires.
const largest = corpusFile('jpeg/mate-TwoWings.jpg');

function options(query: ResizeQuery) {
  return parseResizeOptions(query, { limits: testLimits });
}

const thumbnail = options({ width: '320', quality: '80' });
const endless = options({ blur: '300' });

async function waitFor(condition: () => boolean, what: string, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

describe('worker pool', () => {
  const events: WorkerPoolEvent[] = [];
  let pool: WorkerPool;

  before(async () => {
    pool = new WorkerPool({
      size: 2,
      jobTimeoutMs: 30_000,
      limits: testLimits,
      heartbeatIntervalMs: 250,
      onEvent: (event) => events.push(event),
    });
    await pool.start();
  });

  after(() => pool.close());

  test('worker pool - converts in a child and reports CPU time, bytes and RSS', async () => {
    const result = await pool.convert(photo, thumbnail, {
      traceparent: '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01',
    });
    assert.ok(Buffer.isBuffer(result.output));
    const metadata = await metadataOf(result.output);
    assert.deepEqual([metadata.format, metadata.width, metadata.height], ['jpeg', 320, 200]);
    assert.deepEqual([result.width, result.height, result.format], [320, 200, 'jpeg']);
    assert.ok(result.cpuUserMicros + result.cpuSystemMicros > 0, 'CPU time measured');
    assert.ok(result.wallMs > 0);
    assert.equal(result.bytesIn, photo.length);
    assert.equal(result.bytesOut, result.output.length);
    assert.ok(result.workerRss > 10_000_000, `rss ${result.workerRss}`);
    assert.ok(result.workerId === 0 || result.workerId === 1);
    assert.equal(result.pixelsIn, 2560 * 1600);
    assert.ok(result.queueWaitMs >= 0);
  });

  test('worker pool - permanent conversion errors cross the process boundary with their code', async () => {
    const restartsBefore = pool.stats().restarts;
    const half = photo.subarray(0, photo.length / 2);
    await assert.rejects(pool.convert(half, thumbnail), (error: unknown) => {
      assert.ok(isPixelfleetError(error, 'PF_ERR_CORRUPT_IMAGE'), String(error));
      assert.equal(isRetryableConversionError(error), false);
      return true;
    });
    await assert.rejects(pool.convert(Buffer.from('not an image'), thumbnail), (error: unknown) =>
      isPixelfleetError(error, 'PF_ERR_UNSUPPORTED_FORMAT'),
    );
    assert.equal(pool.stats().restarts, restartsBefore, 'a failed conversion does not cost a child');
  });

  test('worker pool - calls queue FIFO while every child is busy', async () => {
    const calls = Array.from({ length: 6 }, () => pool.convert(photo, thumbnail));
    assert.ok(pool.stats().queued >= 4, `queued ${pool.stats().queued}`);
    const results = await Promise.all(calls);
    assert.equal(results.length, 6);
    assert.ok(results.every((result) => result.width === 320));
    assert.equal(pool.stats().queued, 0);
  });

  test('worker pool - kill -9 mid-conversion rejects retryable and the slot is restarted', async () => {
    events.length = 0;
    const before = pool.stats();
    const running = pool.convert(largest, endless);
    await waitFor(() => pool.stats().busy === 1, 'the conversion to start');
    const victim = pool.stats().workers.find((worker) => worker.state === 'busy')!;
    await sleep(200); // let the child get into libvips
    process.kill(victim.pid!, 'SIGKILL');
    await assert.rejects(running, (error: unknown) => {
      assert.ok(isPixelfleetError(error, 'PF_ERR_WORKER_CRASHED'), String(error));
      assert.equal(error.status, 500);
      assert.equal(isRetryableConversionError(error), true);
      assert.equal(error.extensions.signal, 'SIGKILL');
      return true;
    });
    const crash = events.find((event) => event.type === 'crash');
    assert.deepEqual(crash && { ...crash, pid: 0 }, {
      type: 'crash',
      workerId: victim.workerId,
      pid: 0,
      exitCode: null,
      signal: 'SIGKILL',
      duringJob: true,
    });
    assert.ok(events.some((event) => event.type === 'restart' && event.reason === 'crash'));
    await waitFor(() => pool.stats().alive === 2, 'the replacement child');
    const replaced = pool.stats().workers.find((worker) => worker.workerId === victim.workerId)!;
    assert.notEqual(replaced.pid, victim.pid);
    assert.equal(pool.stats().restarts, before.restarts + 1);
    // Both slots work again.
    const results = await Promise.all([pool.convert(photo, thumbnail), pool.convert(photo, thumbnail)]);
    assert.ok(results.every((result) => result.width === 320));
  });

  test('worker pool - the watchdog kills a conversion past its timeout; the next one succeeds', async () => {
    events.length = 0;
    const before = pool.stats();
    const startedAt = performance.now();
    await assert.rejects(pool.convert(largest, endless, { timeoutMs: 300 }), (error: unknown) => {
      assert.ok(isPixelfleetError(error, 'PF_ERR_PROCESSING_TIMEOUT'), String(error));
      assert.equal(error.status, 504);
      assert.equal(isRetryableConversionError(error), true);
      return true;
    });
    assert.ok(performance.now() - startedAt < 10_000);
    assert.ok(events.some((event) => event.type === 'timeout' && event.timeoutMs === 300));
    assert.ok(!events.some((event) => event.type === 'crash'), 'a watchdog kill is not reported as a crash');
    await waitFor(
      () => events.some((event) => event.type === 'restart' && event.reason === 'timeout'),
      'restart',
    );
    const result = await pool.convert(photo, thumbnail);
    assert.equal(result.width, 320);
    assert.equal(pool.stats().restarts, before.restarts + 1);
  });

  test('worker pool - a child that stops answering heartbeats is replaced', async () => {
    events.length = 0;
    await waitFor(() => pool.stats().alive === 2, 'both children');
    const victim = pool.stats().workers[0]!;
    process.kill(victim.pid!, 'SIGSTOP');
    await waitFor(
      () => events.some((event) => event.type === 'restart' && event.reason === 'unresponsive'),
      'the unresponsive child to be replaced',
    );
    assert.ok(events.some((event) => event.type === 'unresponsive' && event.workerId === victim.workerId));
    await waitFor(() => pool.stats().alive === 2, 'the replacement child');
    assert.equal((await pool.convert(photo, thumbnail)).width, 320);
  });

  test('worker pool - an aborted call leaves the queue; others still run', async () => {
    const busy = [pool.convert(photo, thumbnail), pool.convert(photo, thumbnail)];
    const controller = new AbortController();
    const abandoned = pool.convert(photo, thumbnail, { signal: controller.signal });
    const kept = pool.convert(photo, thumbnail);
    controller.abort(new Error('client went away'));
    await assert.rejects(abandoned, /client went away/);
    const results = await Promise.all([...busy, kept]);
    assert.equal(results.length, 3);
    await assert.rejects(pool.convert(photo, thumbnail, { signal: AbortSignal.abort() }));
  });

  test('worker pool - reports its state', () => {
    const stats = pool.stats();
    assert.equal(stats.size, 2);
    assert.ok(stats.conversions >= 10);
    assert.ok(stats.failures >= 4);
    assert.equal(stats.workers.length, 2);
  });
});

describe('worker pool lifecycle', () => {
  test('worker pool lifecycle - FIFO order; close rejects queued and later calls with PF_ERR_SHUTTING_DOWN', async () => {
    const pool = new WorkerPool({ size: 1, jobTimeoutMs: 30_000, limits: testLimits });
    await pool.start();
    // FIFO: with one child, calls complete in the order they were made.
    const order: number[] = [];
    await Promise.all(
      [100, 200, 300, 400].map((width) =>
        pool.convert(photo, options({ width: String(width) })).then((result) => order.push(result.width)),
      ),
    );
    assert.deepEqual(order, [100, 200, 300, 400]);
    const running = pool.convert(photo, thumbnail);
    const queued = pool.convert(photo, thumbnail);
    const closed = pool.close();
    await assert.rejects(queued, (error: unknown) => {
      assert.ok(isPixelfleetError(error, 'PF_ERR_SHUTTING_DOWN'));
      assert.equal(isRetryableConversionError(error), true);
      return true;
    });
    assert.equal((await running).width, 320, 'a running conversion finishes');
    await closed;
    await assert.rejects(pool.convert(photo, thumbnail), (error: unknown) =>
      isPixelfleetError(error, 'PF_ERR_SHUTTING_DOWN'),
    );
    assert.deepEqual(
      pool.stats().workers.map((worker) => worker.state),
      ['stopped'],
    );
  });

  test('worker pool lifecycle - a child that dies at once is restarted with growing backoff', async () => {
    const events: WorkerPoolEvent[] = [];
    const pool = new WorkerPool({
      size: 1,
      jobTimeoutMs: 1000,
      limits: testLimits,
      startTimeoutMs: 4000,
      maxRestartBackoffMs: 800,
      // Every child fails before running a line of its own code.
      env: { NODE_OPTIONS: '--import=data:text/javascript,process.exit(3)' },
      onEvent: (event) => events.push(event),
    });
    await assert.rejects(pool.start(), (error: unknown) => isPixelfleetError(error, 'PF_ERR_INTERNAL'));
    const backoffs = events.flatMap((event) => (event.type === 'restart' ? [event.backoffMs] : []));
    assert.ok(backoffs.length >= 3, `restarts: ${backoffs.join(', ')}`);
    assert.deepEqual(backoffs.slice(0, 3), [100, 200, 400]);
    assert.ok(backoffs.every((backoff) => backoff <= 800));
  });

  test('worker pool prefetch - a busy child is sent its next call; both convert in order', async () => {
    const pool = new WorkerPool({ size: 1, prefetch: 1, jobTimeoutMs: 30_000, limits: testLimits });
    await pool.start();
    try {
      assert.equal(pool.capacity, 2);
      const first = pool.convert(largest, options({ width: '1200', blur: '20' }));
      const second = pool.convert(photo, thumbnail);
      const third = pool.convert(photo, thumbnail);
      const stats = pool.stats();
      assert.equal(stats.busy, 1);
      assert.equal(stats.queued, 2, 'one sent ahead, one waiting in the pool');
      const [a, b, c] = await Promise.all([first, second, third]);
      assert.deepEqual([a.width, b.width, c.width], [1200, 320, 320]);
      // The sent-ahead call's queue wait runs until the child starts it: after the first ended.
      assert.ok(b.queueWaitMs >= a.wallMs * 0.5, `queue wait ${b.queueWaitMs} vs first ${a.wallMs}`);
      assert.equal(pool.stats().queued, 0);
    } finally {
      await pool.close();
    }
  });

  test('worker pool prefetch - a crash or a watchdog kill fails only the running call; the one sent ahead converts', async () => {
    const events: WorkerPoolEvent[] = [];
    const pool = new WorkerPool({
      size: 1,
      prefetch: 1,
      jobTimeoutMs: 30_000,
      limits: testLimits,
      onEvent: (event) => events.push(event),
    });
    await pool.start();
    try {
      const running = pool.convert(largest, endless);
      const ahead = pool.convert(photo, thumbnail);
      await sleep(200);
      process.kill(pool.stats().workers[0]!.pid!, 'SIGKILL');
      await assert.rejects(running, (error: unknown) => isPixelfleetError(error, 'PF_ERR_WORKER_CRASHED'));
      assert.equal((await ahead).width, 320, 'converted on the restarted child');

      const stalled = pool.convert(largest, endless, { timeoutMs: 400 });
      const next = pool.convert(photo, thumbnail, { timeoutMs: 400 });
      await assert.rejects(stalled, (error: unknown) =>
        isPixelfleetError(error, 'PF_ERR_PROCESSING_TIMEOUT'),
      );
      // Its watchdog started when the child started it, so the wait behind the stall costs nothing.
      assert.equal((await next).width, 320);
      assert.deepEqual(
        events
          .filter((event) => event.type === 'restart')
          .map((event) => event.type === 'restart' && event.reason),
        ['crash', 'timeout'],
      );
    } finally {
      await pool.close();
    }
  });

  test('worker pool spool - inputs pass through a private tmpfs spool, emptied as children read them and removed on close', async (t) => {
    const root = await tempDir();
    t.after(() => root.remove());
    // A spool a killed process left behind is removed by the next pool.
    const dead = spawnSync(process.execPath, ['-e', 'process.pid']).pid;
    mkdirSync(join(root.path, `pixelfleet-inputs-${dead}-left`));
    writeFileSync(join(root.path, `pixelfleet-inputs-${dead}-left`, '7'), photo);
    const pool = new WorkerPool({
      size: 1,
      prefetch: 1,
      jobTimeoutMs: 30_000,
      limits: testLimits,
      inputSpool: root.path,
    });
    await pool.start();
    let closed = false;
    t.after(() => (closed ? undefined : pool.close()));
    const spools = readdirSync(root.path);
    assert.deepEqual(spools.length, 1, `spools: ${spools.join(', ')}`);
    assert.match(spools[0]!, new RegExp(`^pixelfleet-inputs-${process.pid}-`));
    const spool = join(root.path, spools[0]!);
    assert.equal(statSync(spool).mode & 0o777, 0o700);

    const running = pool.convert(largest, endless);
    const ahead = pool.convert(photo, thumbnail);
    // The child reads (and unlinks) the input it converts at once, perhaps before we can look;
    // the sent-ahead input waits in the spool until the running conversion ends.
    await waitFor(() => {
      const files = readdirSync(spool);
      return files.length === 1 && statSync(join(spool, files[0]!)).size === photo.length;
    }, 'only the sent-ahead input left in the spool');
    await sleep(200);
    process.kill(pool.stats().workers[0]!.pid!, 'SIGKILL');
    await assert.rejects(running, (error: unknown) => isPixelfleetError(error, 'PF_ERR_WORKER_CRASHED'));
    assert.equal((await ahead).width, 320);
    const results = await Promise.all([pool.convert(photo, thumbnail), pool.convert(largest, thumbnail)]);
    assert.deepEqual(
      results.map((result) => result.bytesIn),
      [photo.length, largest.length],
    );
    assert.deepEqual(readdirSync(spool), [], 'no input left behind, by the children or the killed one');
    await pool.close();
    closed = true;
    assert.deepEqual(readdirSync(root.path), []);
  });

  test('worker pool spool - without a usable spool directory the bytes go in the IPC message', async () => {
    const pool = new WorkerPool({
      size: 1,
      jobTimeoutMs: 30_000,
      limits: testLimits,
      inputSpool: '/nonexistent/spool',
    });
    await pool.start();
    try {
      assert.equal((await pool.convert(photo, thumbnail)).width, 320);
    } finally {
      await pool.close();
    }
  });

  test('worker pool lifecycle - constructor rejects bad options with RangeError', () => {
    assert.throws(() => new WorkerPool({ size: 0, jobTimeoutMs: 10, limits: testLimits }), RangeError);
    assert.throws(() => new WorkerPool({ size: 1.5, jobTimeoutMs: 10, limits: testLimits }), RangeError);
    assert.throws(() => new WorkerPool({ size: 1, jobTimeoutMs: 0, limits: testLimits }), RangeError);
    for (const prefetch of [-1, 0.5]) {
      assert.throws(
        () => new WorkerPool({ size: 1, jobTimeoutMs: 10, limits: testLimits, prefetch }),
        RangeError,
      );
    }
    assert.throws(
      () => new WorkerPool({ size: 1, jobTimeoutMs: 10, limits: { ...testLimits, maxFrames: 0 } }),
      RangeError,
    );
  });
});
