/**
 * Entry point of a conversion child process (started by `WorkerPool` with child_process.fork).
 * Isolation is the point: a libvips crash, a runaway allocation or a stuck decode takes down this
 * process only, and the parent's watchdog can SIGKILL it without touching anyone else's request.
 *
 * Guarantees: one conversion at a time (requests that arrive while busy wait in order), so the
 * process-wide CPU counters measured around a conversion belong to that conversion alone; every
 * reply carries the cost (user and system CPU µs, wall ms) and the child's RSS; pings are
 * answered immediately; the child exits when the parent disconnects.
 */
import { readFileSync, unlinkSync } from 'node:fs';
import sharp from 'sharp';
import { serialiseError } from './conversion_errors.ts';
import { convertImage } from './pipeline.ts';
import type { ChildMessage, ConversionCost, ConvertRequest, ParentMessage } from './protocol.ts';

// One libvips thread per conversion and one conversion per process: the pool scales by
// processes, and CPU time measured per process is then the cost of exactly one job.
sharp.concurrency(1);
// Each input is seen once; libvips' operation cache would only hold memory.
sharp.cache(false);

function send(message: ChildMessage): void {
  process.send?.(message);
}

const backlog: ConvertRequest[] = [];
let converting = false;

async function convertOne(request: ConvertRequest): Promise<void> {
  const cpuBefore = process.cpuUsage();
  const startedAt = performance.now();
  const cost = (): ConversionCost => {
    const cpu = process.cpuUsage(cpuBefore);
    return {
      cpuUserMicros: cpu.user,
      cpuSystemMicros: cpu.system,
      wallMs: performance.now() - startedAt,
      rss: process.memoryUsage.rss(),
    };
  };
  try {
    let input = request.input;
    if (request.inputPath !== undefined) {
      input = readFileSync(request.inputPath);
      unlinkSync(request.inputPath);
    }
    if (input === undefined) throw new Error('a convert request carried no input');
    const image = await convertImage(input, request.options, request.limits);
    send({ type: 'converted', jobId: request.jobId, image, ...cost() });
  } catch (error) {
    send({ type: 'failed', jobId: request.jobId, error: serialiseError(error), ...cost() });
  }
}

async function drain(): Promise<void> {
  if (converting) return;
  converting = true;
  try {
    for (let request = backlog.shift(); request !== undefined; request = backlog.shift()) {
      await convertOne(request);
    }
  } finally {
    converting = false;
  }
}

if (process.send === undefined) {
  process.stderr.write('src/worker/child.ts must be started by WorkerPool (child_process.fork)\n');
  process.exit(2);
}

process.on('message', (message: ParentMessage) => {
  if (message.type === 'ping') {
    send({ type: 'pong', id: message.id, rss: process.memoryUsage.rss() });
  } else if (message.type === 'convert') {
    backlog.push(message);
    void drain();
  }
});

// The parent went away (exit, crash or close()): nobody will read our results.
process.on('disconnect', () => process.exit(0));
// Ctrl-C in a terminal signals the whole foreground process group, this child included. The
// parent drains its in-flight requests first and then closes the pool, so stopping is its call:
// dying here would fail (and redo) the very conversions the drain is waiting for.
process.on('SIGINT', () => {});

send({ type: 'ready', pid: process.pid, rss: process.memoryUsage.rss() });
