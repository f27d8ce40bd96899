/**
 * Accuracy of a limit shared through Redis: three api-server-like clients — separate processes,
 * each with its own connection — hammering one key's token bucket together admit what a single
 * client alone admits in the same time, and never more than the bucket's bound
 * (capacity + rate · elapsed). Tolerance: within 10 % of the single client (start-up skew between
 * processes is the only expected difference; the measured gap is printed).
 *
 * This file is also the client: run with PIXELFLEET_REDIS_ACCURACY_CLIENT set, it connects, says
 * "ready", waits for "go" on stdin, takes as fast as it can for the given time and prints a JSON
 * line with its counts.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import {
  createAsyncRateLimiter,
  openRedisConnection,
  RedisLimiterStore,
  TokenBucket,
} from '../../../src/resilience/ratelimit/index.ts';

interface ClientTask {
  url: string;
  prefix: string;
  key: string;
  durationMs: number;
  inFlight: number;
}

interface ClientResult {
  admitted: number;
  decisions: number;
}

const capacity = 40;
const refillPerSecond = 200;
const bucket = () => new TokenBucket({ capacity, refillPerSecond, policy: 'shared' });

async function runClient(task: ClientTask): Promise<void> {
  const connection = openRedisConnection({ url: task.url });
  await connection.ready;
  const limiter = createAsyncRateLimiter(
    bucket(),
    new RedisLimiterStore({ redis: connection.commander, prefix: task.prefix }),
  );
  await limiter.take('warm-up', 0);
  const lines = createInterface({ input: process.stdin });
  process.stdout.write('ready\n');
  for await (const line of lines) if (line === 'go') break;
  const result: ClientResult = { admitted: 0, decisions: 0 };
  const deadline = performance.now() + task.durationMs;
  await Promise.all(
    Array.from({ length: task.inFlight }, async () => {
      while (performance.now() < deadline) {
        const decision = await limiter.take(task.key);
        result.decisions += 1;
        if (decision.allowed) result.admitted += 1;
      }
    }),
  );
  process.stdout.write(`${JSON.stringify(result)}\n`);
  await connection.close();
  lines.close();
}

if (process.env.PIXELFLEET_REDIS_ACCURACY_CLIENT !== undefined) {
  await runClient(JSON.parse(process.env.PIXELFLEET_REDIS_ACCURACY_CLIENT) as ClientTask);
} else {
  const { test } = await import('node:test');
  const { startRedisServer } = await import('../../support/redis-server.ts');

  /** Runs `count` client processes on one key; resolves with their results and the elapsed time. */
  async function runClients(
    task: ClientTask,
    count: number,
  ): Promise<{ results: ClientResult[]; elapsedMs: number }> {
    const children = Array.from({ length: count }, () =>
      spawn(process.execPath, [import.meta.filename], {
        env: { ...process.env, PIXELFLEET_REDIS_ACCURACY_CLIENT: JSON.stringify(task) },
        stdio: ['pipe', 'pipe', 'inherit'],
      }),
    );
    try {
      const outputs = children.map((child) =>
        createInterface({ input: child.stdout! })[Symbol.asyncIterator](),
      );
      const nextLine = async (index: number): Promise<string> => {
        const line = await outputs[index]!.next();
        if (line.done === true) throw new Error(`client ${index} exited early`);
        return line.value;
      };
      await Promise.all(children.map(async (_, index) => assert.equal(await nextLine(index), 'ready')));
      const started = performance.now();
      for (const child of children) child.stdin!.write('go\n');
      const results = await Promise.all(
        children.map(async (_, index) => JSON.parse(await nextLine(index)) as ClientResult),
      );
      return { results, elapsedMs: performance.now() - started };
    } finally {
      for (const child of children) if (child.exitCode === null) child.kill('SIGKILL');
    }
  }

  test('accuracy - three client processes sharing a token bucket on Redis admit what one would', async (context) => {
    const server = await startRedisServer({ owner: context });
    const base = { url: server.url, prefix: `accuracy-${process.pid}`, durationMs: 2000, inFlight: 4 };
    const single = await runClients({ ...base, key: 'single' }, 1);
    const shared = await runClients({ ...base, key: 'shared' }, 3);
    const admittedAlone = single.results[0]!.admitted;
    const admittedTogether = shared.results.reduce((sum, result) => sum + result.admitted, 0);
    const decisionsTogether = shared.results.reduce((sum, result) => sum + result.decisions, 0);
    // The token bucket bound over the whole run, on one clock (Redis TIME; same machine).
    const bound = capacity + (refillPerSecond * shared.elapsedMs) / 1000;
    const gap = Math.abs(admittedTogether - admittedAlone) / admittedAlone;
    context.diagnostic(
      `alone: ${admittedAlone} admitted of ${single.results[0]!.decisions}; three processes: ` +
        `${admittedTogether} admitted of ${decisionsTogether} (${shared.results.map((result) => result.admitted).join(' + ')}); ` +
        `bound ${bound.toFixed(0)} over ${shared.elapsedMs.toFixed(0)} ms; gap ${(gap * 100).toFixed(1)} %; ` +
        `ideal ${capacity + (refillPerSecond * base.durationMs) / 1000}`,
    );
    assert.ok(decisionsTogether > admittedTogether * 2, 'demand exceeded the limit throughout');
    assert.ok(admittedTogether <= bound + 1, `${admittedTogether} admitted, bound ${bound.toFixed(1)}`);
    assert.ok(gap <= 0.1, `three processes admitted ${admittedTogether}, one alone ${admittedAlone}`);
    for (const result of shared.results) assert.ok(result.admitted > 0, 'every process got a share');
  });
}
