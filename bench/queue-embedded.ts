/**
 * Throughput of the embedded queue on local disk: enqueues per second with 1 and 256 requests
 * in flight (every enqueue waits for its fsync; group commit shares fsyncs between concurrent
 * ones), then claim+ack per second with 1 and 64 concurrent workers.
 *
 *   node bench/queue-embedded.ts [--dir <path>] [--jobs <n>]
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { type EmbeddedQueue, openEmbeddedQueue } from '../src/queue/index.ts';
import { percentile } from '../test/support/stats.ts';

const { values } = parseArgs({
  options: { dir: { type: 'string' }, jobs: { type: 'string', default: '40000' } },
});
const jobs = Number(values.jobs);
const dataDir = values.dir ?? (await mkdtemp(join(tmpdir(), 'pixelfleet-bench-queue-')));

interface Figure {
  scenario: string;
  operations: number;
  seconds: number;
  perSecond: number;
  p50Ms: number;
  p99Ms: number;
  recordsPerFsync: number;
}
const figures: Figure[] = [];

async function measure(
  queue: EmbeddedQueue,
  scenario: string,
  operations: number,
  concurrency: number,
  operation: (index: number) => Promise<void>,
): Promise<void> {
  const before = queue.storageStats();
  const latencies: number[] = [];
  let next = 0;
  const started = performance.now();
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < operations) {
        const index = next++;
        const begun = performance.now();
        await operation(index);
        latencies.push(performance.now() - begun);
      }
    }),
  );
  const seconds = (performance.now() - started) / 1000;
  const after = queue.storageStats();
  latencies.sort((a, b) => a - b);
  figures.push({
    scenario,
    operations,
    seconds: round(seconds),
    perSecond: Math.round(operations / seconds),
    p50Ms: round(percentile(latencies, 0.5)),
    p99Ms: round(percentile(latencies, 0.99)),
    recordsPerFsync: round(
      (after.appendedRecords - before.appendedRecords) /
        Math.max(1, after.syncedBatches - before.syncedBatches),
    ),
  });
}

const round = (value: number) => Math.round(value * 100) / 100;
const payload = (index: number) => ({
  source: `http://10.0.0.7:8080/inputs/${index}`,
  width: 320,
  format: 'webp',
});

try {
  const queue = await openEmbeddedQueue({ dataDir, maxAttempts: 3 });
  const single = Math.min(2_000, jobs);
  await measure(queue, 'enqueue, 1 in flight', single, 1, async (index) => {
    await queue.enqueue({
      id: `single-${index}`,
      account: `account-${index % 100}`,
      payload: payload(index),
    });
  });
  await measure(queue, 'enqueue, 256 in flight', jobs, 256, async (index) => {
    await queue.enqueue({ id: `batch-${index}`, account: `account-${index % 100}`, payload: payload(index) });
  });
  const claimAck = async () => {
    const job = await queue.claim({ consumer: 'bench', leaseMs: 60_000 });
    if (job === undefined) throw new Error('queue ran dry');
    await queue.ack(job.id, job.leaseId, { bytesOut: 1234, cpuMs: 5 });
  };
  await measure(queue, 'claim+ack, 1 worker', single, 1, claimAck);
  await measure(queue, 'claim+ack, 64 workers', jobs, 64, claimAck);
  const storage = queue.storageStats();
  await queue.close();
  console.table(figures);
  console.log(
    `log: ${storage.appendedRecords} records, ${storage.syncedBatches} fsynced batches, ${storage.compactions} compactions; data in ${dataDir}`,
  );
} finally {
  if (values.dir === undefined) await rm(dataDir, { recursive: true, force: true });
}
