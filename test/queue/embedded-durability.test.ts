/**
 * Durability of the embedded queue against real crashes: a child process writes to the queue and
 * is killed with SIGKILL mid-stream; everything it was told is durable must be there, once.
 */
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { appendFile, mkdtemp, readdir, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { after, before, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { type EmbeddedQueue, openEmbeddedQueue, type QueueLogger } from '../../src/queue/index.ts';

const repository = fileURLToPath(new URL('../../', import.meta.url));
const node = join(repository, 'node_modules/.bin/node');
const writer = fileURLToPath(new URL('./fixtures/queue-writer.ts', import.meta.url));

let root: string;
const children = new Set<ChildProcess>();
before(async () => {
  root = await mkdtemp(join(tmpdir(), 'pixelfleet-queue-durability-'));
});
after(async () => {
  for (const child of children) child.kill('SIGKILL');
  await rm(root, { recursive: true, force: true });
});

interface Lines {
  lines: string[];
  /** Resolves when `accept` holds for the lines read so far. */
  until(accept: (lines: string[]) => boolean, timeoutMs: number): Promise<void>;
}

function startWriter(args: string[]): { child: ChildProcess; output: Lines; exited: Promise<void> } {
  const child = spawn(node, [writer, ...args], { stdio: ['ignore', 'pipe', 'inherit'] });
  children.add(child);
  const exited = new Promise<void>((resolve) =>
    child.once('exit', () => {
      children.delete(child);
      resolve();
    }),
  );
  const lines: string[] = [];
  let check: (() => void) | undefined;
  createInterface({ input: child.stdout! }).on('line', (line) => {
    lines.push(line);
    check?.();
  });
  const output: Lines = {
    lines,
    until: (accept, timeoutMs) =>
      new Promise((resolve, reject) => {
        const timer = setTimeout(
          () => reject(new Error(`child output not reached; got ${lines.length} lines`)),
          timeoutMs,
        );
        check = () => {
          if (!accept(lines)) return;
          clearTimeout(timer);
          check = undefined;
          resolve();
        };
        check();
        child.once(
          'exit',
          () => check && reject(new Error(`child exited early after ${lines.length} lines`)),
        );
      }),
  };
  return { child, output, exited };
}

async function drain(queue: EmbeddedQueue): Promise<string[]> {
  const ids: string[] = [];
  for (let job = await queue.claim({ consumer: 't', leaseMs: 60_000 }); job; ) {
    ids.push(job.id);
    await queue.ack(job.id, job.leaseId);
    job = await queue.claim({ consumer: 't', leaseMs: 60_000 });
  }
  return ids;
}

test('queue - every acknowledged enqueue and ack survives kill -9, exactly once', {
  timeout: 60_000,
}, async () => {
  const dataDir = join(root, 'kill-mid-stream');
  const enqueued: string[] = [];
  const acked: string[] = [];
  // Two crashes in a row: the second run starts from a log the first crash left behind.
  // Compacting every 300 records puts snapshot writes and segment switches in the kill window.
  for (const [round, lines] of [
    ['first', 1_200],
    ['second', 1_800],
  ] as const) {
    const { child, output, exited } = startWriter([dataDir, 'enqueue', '300', round]);
    await output.until((seen) => seen.length >= lines, 40_000);
    child.kill('SIGKILL');
    await exited;
    for (const line of output.lines) {
      if (line.startsWith('enqueued ')) enqueued.push(line.slice(9));
      else if (line.startsWith('acked ')) acked.push(line.slice(6));
    }
  }
  assert.ok(
    enqueued.length > 1_000 && acked.length > 0,
    `${enqueued.length} enqueued, ${acked.length} acked`,
  );

  const queue = await openEmbeddedQueue({ dataDir });
  try {
    for (const id of acked) {
      assert.equal((await queue.get(id))?.state, 'succeeded', `acked job ${id} was not kept as succeeded`);
    }
    const missing = [];
    for (const id of enqueued) if ((await queue.get(id)) === undefined) missing.push(id);
    assert.deepEqual(missing, [], 'acknowledged enqueues were lost');

    // Exactly once: draining the queue yields every not-yet-acked job once, and none twice.
    const drained = await drain(queue);
    assert.equal(new Set(drained).size, drained.length, 'a job was delivered twice');
    const ackedSet = new Set(acked);
    for (const id of drained)
      assert.ok(!ackedSet.has(id), `job ${id} was acked before the crash and delivered again`);
    for (const id of enqueued) assert.equal((await queue.get(id))?.state, 'succeeded');
    for (const id of enqueued.slice(0, 50)) {
      assert.equal((await queue.enqueue({ id, account: 'x', payload: {} })).duplicate, true);
    }
    const stats = await queue.stats();
    assert.equal(stats.depth, 0);
    assert.equal(stats.inflight, 0);
    assert.ok(stats.enqueuedTotal >= enqueued.length);
  } finally {
    await queue.close();
  }
});

test('queue - leases held by a killed process are expired on reopen, counting the attempt', {
  timeout: 30_000,
}, async () => {
  const dataDir = join(root, 'kill-holding-leases');
  const { child, output, exited } = startWriter([dataDir, 'hold', '10', '4']);
  await output.until((lines) => lines.includes('ready'), 20_000);
  child.kill('SIGKILL');
  await exited;
  const held = output.lines.filter((line) => line.startsWith('claimed ')).map((line) => line.slice(8));
  assert.deepEqual(held, ['job-0', 'job-1', 'job-2', 'job-3']);

  const warnings: string[] = [];
  const logger: QueueLogger = { info() {}, warn: (_details, message) => warnings.push(message), error() {} };
  const queue = await openEmbeddedQueue({ dataDir, logger });
  try {
    const stats = await queue.stats();
    assert.equal(stats.inflight, 0);
    assert.equal(stats.depth, 11);
    assert.ok(warnings.some((message) => message.includes('leases held by the previous process')));
    for (const id of held) {
      const record = (await queue.get(id))!;
      assert.equal(record.state, 'queued');
      assert.equal(record.attempts, 1);
    }
    // Redelivered jobs keep their place: the first claim gets job-0 again, as attempt 2.
    const first = (await queue.claim({ consumer: 't', leaseMs: 1000 }))!;
    assert.equal(first.id, 'job-0');
    assert.equal(first.attempt, 2);
  } finally {
    await queue.close();
  }
});

test('queue - a torn write at the end of the log is cut off and the state is intact', async () => {
  const dataDir = join(root, 'torn-write');
  const first = await openEmbeddedQueue({ dataDir });
  for (let index = 0; index < 10; index++)
    await first.enqueue({ id: `job-${index}`, account: 'a', payload: { index } });
  const claimed = (await first.claim({ consumer: 'w', leaseMs: 60_000 }))!;
  await first.ack(claimed.id, claimed.leaseId);
  await first.close();

  const directory = join(dataDir, 'queue');
  const segment = join(directory, (await readdir(directory)).find((name) => name.startsWith('segment-'))!);
  const cleanSize = (await stat(segment)).size;
  // A frame whose header promises 500 bytes, cut after 20, as a crash mid-write leaves it.
  const partial = Buffer.alloc(28);
  partial.writeUInt32LE(500, 0);
  partial.writeUInt32LE(0xdeadbeef, 4);
  partial.write('{"type":"enqueue","at"', 8);
  await appendFile(segment, partial);

  const warnings: object[] = [];
  const logger: QueueLogger = { info() {}, warn: (details) => warnings.push(details), error() {} };
  const second = await openEmbeddedQueue({ dataDir, logger });
  assert.equal((await stat(segment)).size, cleanSize);
  assert.equal(warnings.length, 1);
  assert.equal((warnings[0] as { truncatedBytes: number }).truncatedBytes, 28);
  const stats = await second.stats();
  assert.equal(stats.depth, 9);
  assert.equal(stats.ackedTotal, 1);
  assert.equal((await second.get('job-0'))?.state, 'succeeded');
  await second.enqueue({ id: 'after-repair', account: 'a', payload: {} });
  await second.close();

  // Garbage that is not even a frame header is cut the same way.
  await appendFile(segment, Buffer.from('\u0000\u0000\u0000garbage'));
  const third = await openEmbeddedQueue({ dataDir });
  assert.equal((await third.stats()).depth, 10);
  assert.equal((await third.get('after-repair'))?.state, 'queued');
  await third.close();
});
