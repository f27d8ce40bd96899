/**
 * Rate limiter throughput: decisions per second for each algorithm in-process (the synchronous
 * fast path over the memory store), 10 000 keys drawn at random, plus the async path over the
 * same store (one promise per decision, the shape a Redis store will have).
 *
 * Time is a synthetic clock advancing 10 µs per decision (100 000 decisions per simulated second,
 * 10 per key per second), so every algorithm sees a mix of admissions and refusals and windows
 * roll over during the run. Rounds interleave the algorithms so background load hits them alike;
 * rates are reported per wall second and per CPU second of this process (the latter is steadier
 * on a shared machine). Run: node --expose-gc bench/ratelimit.ts [--seconds=N] [--keys=N]
 * (without --expose-gc the retained heap per key is not reported).
 *
 * Then the same decisions against a real redis-server (started on a free port, stopped at the
 * end; --redis=0 skips it, --redis-only skips the memory part), on Redis's clock, for three
 * algorithms: one client awaiting each decision (round-trip bound), one client with 64 in flight
 * (node-redis pipelines commands issued in the same tick into one write), a pool of 4
 * connections, the FallbackLimiterStore in front (breaker + timeout overhead), and three client
 * processes with 64 in flight each. "per read" is commands per socket read on the server
 * (INFO total_reads_processed): how deep the automatic pipelining went.
 */
import { spawn } from 'node:child_process';
import { loadavg } from 'node:os';
import { createInterface } from 'node:readline';
import {
  type Clock,
  createAsyncRateLimiter,
  createRateLimiter,
  FallbackLimiterStore,
  FixedWindow,
  LeakyBucket,
  type LimiterAlgorithm,
  type LimiterStore,
  MemoryLimiterStore,
  openRedisConnection,
  RedisLimiterStore,
  SlidingWindowCounter,
  SlidingWindowLog,
  TokenBucket,
} from '../src/resilience/ratelimit/index.ts';
import { startRedisServer } from '../test/support/redis-server.ts';
import { median, percentileOf } from '../test/support/stats.ts';

const argument = (name: string, fallback: number): number => {
  const found = process.argv.find((value) => value.startsWith(`--${name}=`));
  return found === undefined ? fallback : Number(found.slice(name.length + 3));
};
const seconds = argument('seconds', 1.5);
const keyCount = argument('keys', 10_000);
const redisSeconds = argument('redis-seconds', 1);
const runRedis = argument('redis', 1) !== 0;
const redisOnly = process.argv.includes('--redis-only');
/** Set in the client processes this bench spawns for its three-process Redis runs. */
const clientTask = process.env.PIXELFLEET_RATELIMIT_BENCH_CLIENT;
const ROUNDS = 5;

/** Seeded PRNG (mulberry32) so every algorithm sees the same key sequence. */
function random(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let mixed = state;
    mixed = Math.imul(mixed ^ (mixed >>> 15), mixed | 1);
    mixed ^= mixed + Math.imul(mixed ^ (mixed >>> 7), mixed | 61);
    return ((mixed ^ (mixed >>> 14)) >>> 0) / 4_294_967_296;
  };
}

const keys = Array.from({ length: keyCount }, (_, index) => `account-${index}`);
const next = random(20_260_601);
const SEQUENCE_LENGTH = 1 << 20;
const sequence = Array.from({ length: SEQUENCE_LENGTH }, () => keys[Math.floor(next() * keyCount)]!);

class SyntheticClock implements Clock {
  time = 1_767_225_600_000;
  now(): number {
    return this.time;
  }
}

const algorithms: Record<string, () => LimiterAlgorithm<unknown>> = {
  'token bucket': () => new TokenBucket({ capacity: 20, refillPerSecond: 8 }) as LimiterAlgorithm<unknown>,
  'leaky bucket': () => new LeakyBucket({ capacity: 20, drainPerSecond: 8 }) as LimiterAlgorithm<unknown>,
  'fixed window': () => new FixedWindow({ limit: 16, windowMs: 2000 }) as LimiterAlgorithm<unknown>,
  'sliding window log': () =>
    new SlidingWindowLog({ limit: 16, windowMs: 2000 }) as LimiterAlgorithm<unknown>,
  'sliding window counter': () =>
    new SlidingWindowCounter({ limit: 16, windowMs: 2000 }) as LimiterAlgorithm<unknown>,
};

interface Rates {
  wall: number;
  cpu: number;
}

interface Samples {
  sync: Rates[];
  async: Rates[];
  admittedShare: number;
  heapBytesPerKey?: number;
}

const gc = (globalThis as { gc?: () => void }).gc;

/** Runs `decide` in batches for `durationMs`; returns decisions per wall and per CPU second. */
async function timed(
  durationMs: number,
  decide: (index: number) => unknown,
): Promise<Rates & { count: number }> {
  let count = 0;
  const cpuStart = process.cpuUsage();
  const start = performance.now();
  const deadline = start + durationMs;
  while (performance.now() < deadline) {
    for (let batch = 0; batch < 10_000; batch += 1) {
      const result = decide(count + batch);
      if (result instanceof Promise) await result;
    }
    count += 10_000;
  }
  const cpu = process.cpuUsage(cpuStart);
  return {
    count,
    wall: count / ((performance.now() - start) / 1000),
    cpu: count / ((cpu.user + cpu.system) / 1e6),
  };
}

async function measureSync(make: () => LimiterAlgorithm<unknown>, samples: Samples, measureHeap: boolean) {
  const clock = new SyntheticClock();
  gc?.();
  const heapBefore = process.memoryUsage().heapUsed;
  const store = new MemoryLimiterStore({ clock, maxKeys: keyCount * 2 });
  const limiter = createRateLimiter(make(), { store });
  // Warm up (JIT, and every key gets state) before timing.
  for (let index = 0; index < 200_000; index += 1) {
    clock.time += 0.01;
    limiter.take(sequence[index & (SEQUENCE_LENGTH - 1)]!);
  }
  let admitted = 0;
  const result = await timed(seconds * 1000, (index) => {
    clock.time += 0.01;
    if (limiter.take(sequence[index & (SEQUENCE_LENGTH - 1)]!).allowed) admitted += 1;
  });
  samples.sync.push(result);
  samples.admittedShare = admitted / result.count;
  if (gc !== undefined && measureHeap) {
    gc();
    samples.heapBytesPerKey = (process.memoryUsage().heapUsed - heapBefore) / store.size;
  }
}

async function measureAsync(make: () => LimiterAlgorithm<unknown>, samples: Samples) {
  const clock = new SyntheticClock();
  const limiter = createAsyncRateLimiter(make(), new MemoryLimiterStore({ clock, maxKeys: keyCount * 2 }));
  for (let index = 0; index < 100_000; index += 1) {
    clock.time += 0.01;
    await limiter.take(sequence[index & (SEQUENCE_LENGTH - 1)]!);
  }
  samples.async.push(
    await timed((seconds * 1000) / 2, (index) => {
      clock.time += 0.01;
      return limiter.take(sequence[index & (SEQUENCE_LENGTH - 1)]!);
    }),
  );
}

async function benchMemory(): Promise<void> {
  const loadBefore = loadavg()[0]!;
  const samples = new Map<string, Samples>(
    Object.keys(algorithms).map((name) => [name, { sync: [], async: [], admittedShare: 0 }]),
  );
  for (let round = 0; round < ROUNDS; round += 1) {
    for (const [name, make] of Object.entries(algorithms)) {
      // Heap in the first round only: in later rounds the previous store can still be reachable
      // from the optimised frame when the baseline is taken.
      await measureSync(make, samples.get(name)!, round === 0);
      await measureAsync(make, samples.get(name)!);
    }
  }

  const format = (value: number): string => `${(value / 1e6).toFixed(2)} M/s`;
  console.log(
    `rate limiter decisions: ${keyCount} keys random access, median of ${ROUNDS} rounds, node ${process.version}, ` +
      `load average ${loadBefore.toFixed(1)} → ${loadavg()[0]!.toFixed(1)}`,
  );
  console.log(
    'algorithm              | sync wall | sync CPU  | async wall | async CPU | admitted | heap/key',
  );
  const results = [];
  for (const [name, sample] of samples) {
    const row = {
      algorithm: name,
      syncWall: median(sample.sync.map((rate) => rate.wall))!,
      syncCpu: median(sample.sync.map((rate) => rate.cpu))!,
      asyncWall: median(sample.async.map((rate) => rate.wall))!,
      asyncCpu: median(sample.async.map((rate) => rate.cpu))!,
      admittedShare: sample.admittedShare,
      heapBytesPerKey: sample.heapBytesPerKey,
    };
    results.push(row);
    console.log(
      [
        name.padEnd(22),
        format(row.syncWall).padStart(9),
        format(row.syncCpu).padStart(9),
        format(row.asyncWall).padStart(10),
        format(row.asyncCpu).padStart(9),
        `${(row.admittedShare * 100).toFixed(1)} %`.padStart(8),
        (row.heapBytesPerKey === undefined ? 'n/a' : `${Math.round(row.heapBytesPerKey)} B`).padStart(8),
      ].join(' | '),
    );
  }
  console.log(JSON.stringify({ bench: 'ratelimit', keys: keyCount, results }));
}

const redisAlgorithms = ['token bucket', 'sliding window log', 'sliding window counter'] as const;
const IN_FLIGHT = 64;

interface RedisRun {
  decisions: number;
  wall: number;
  latencies?: number[];
}

/** `inFlight` loops taking decisions on random keys for `durationMs`; optionally records latencies. */
async function drive(
  store: LimiterStore,
  algorithm: LimiterAlgorithm<unknown>,
  inFlight: number,
  durationMs: number,
  recordLatency: boolean,
  offset = 0,
): Promise<RedisRun> {
  const limiter = createAsyncRateLimiter(algorithm, store);
  const latencies: number[] = [];
  let decisions = 0;
  let cursor = offset;
  const start = performance.now();
  const deadline = start + durationMs;
  await Promise.all(
    Array.from({ length: inFlight }, async () => {
      while (performance.now() < deadline) {
        const key = sequence[cursor++ & (SEQUENCE_LENGTH - 1)]!;
        const began = performance.now();
        await limiter.take(key);
        if (recordLatency) latencies.push(performance.now() - began);
        decisions += 1;
      }
    }),
  );
  return {
    decisions,
    wall: decisions / ((performance.now() - start) / 1000),
    ...(recordLatency ? { latencies } : {}),
  };
}

interface ClientTask {
  url: string;
  algorithm: string;
  durationMs: number;
  offset: number;
}

/** Child-process mode: connect, say ready, wait for go, drive, print the decision count. */
async function benchClient(task: ClientTask): Promise<void> {
  const connection = openRedisConnection({ url: task.url });
  await connection.ready;
  const store = new RedisLimiterStore({ redis: connection.commander, prefix: 'bench' });
  const algorithm = algorithms[task.algorithm]!();
  await drive(store, algorithm, IN_FLIGHT, 200, false, task.offset); // warm-up
  const lines = createInterface({ input: process.stdin });
  process.stdout.write('ready\n');
  for await (const line of lines) if (line === 'go') break;
  const run = await drive(store, algorithm, IN_FLIGHT, task.durationMs, false, task.offset);
  process.stdout.write(`${JSON.stringify({ decisions: run.decisions })}\n`);
  lines.close();
  await connection.close();
}

/** Three client processes at once; decisions per second summed over them. */
async function threeProcesses(url: string, algorithm: string): Promise<number> {
  const children = Array.from({ length: 3 }, (_, index) =>
    spawn(process.execPath, [import.meta.filename], {
      env: {
        ...process.env,
        PIXELFLEET_RATELIMIT_BENCH_CLIENT: JSON.stringify({
          url,
          algorithm,
          durationMs: redisSeconds * 1000,
          offset: index * 300_000,
        } satisfies ClientTask),
      },
      stdio: ['pipe', 'pipe', 'inherit'],
    }),
  );
  try {
    const outputs = children.map((child) =>
      createInterface({ input: child.stdout! })[Symbol.asyncIterator](),
    );
    const nextLine = async (index: number): Promise<string> => {
      const line = await outputs[index]!.next();
      if (line.done === true) throw new Error(`bench client ${index} exited early`);
      return line.value;
    };
    await Promise.all(children.map(async (_, index) => nextLine(index)));
    const start = performance.now();
    for (const child of children) child.stdin!.write('go\n');
    const counts = await Promise.all(
      children.map(
        async (_, index) => (JSON.parse(await nextLine(index)) as { decisions: number }).decisions,
      ),
    );
    return counts.reduce((sum, count) => sum + count, 0) / ((performance.now() - start) / 1000);
  } finally {
    for (const child of children) if (child.exitCode === null) child.kill('SIGKILL');
  }
}

async function benchRedis(): Promise<void> {
  const server = await startRedisServer();
  const single = openRedisConnection({ url: server.url });
  const pooled = openRedisConnection({ url: server.url, poolSize: 4 });
  try {
    await Promise.all([single.ready, pooled.ready]);
    const readsProcessed = async (): Promise<number> => {
      const info = String(await single.commander.sendCommand(['INFO', 'stats']));
      return Number(/total_reads_processed:(\d+)/.exec(info)?.[1] ?? Number.NaN);
    };
    const redisStore = new RedisLimiterStore({ redis: single.commander, prefix: 'bench' });
    const pooledStore = new RedisLimiterStore({ redis: pooled.commander, prefix: 'bench' });
    const fallbackStore = new FallbackLimiterStore({ shared: redisStore, shareCount: 3 });
    const memoryStore = new MemoryLimiterStore({ maxKeys: keyCount * 2 });
    const durationMs = redisSeconds * 1000;
    console.log(
      `\nrate limit decisions on Redis (redis-server on loopback, ${keyCount} keys, ${redisSeconds} s per cell, ` +
        `${IN_FLIGHT} in flight unless sequential), load average ${loadavg()[0]!.toFixed(1)}`,
    );
    console.log(
      'algorithm              | memory async | 1 client seq (p50/p99 ms) | 1 client x64 (per read) | pool of 4 | fallback x64 | 3 processes',
    );
    const results = [];
    for (const name of redisAlgorithms) {
      const algorithm = algorithms[name]!();
      await drive(redisStore, algorithm, IN_FLIGHT, 300, false); // warm-up: JIT, script load, keys
      const memory = await drive(memoryStore, algorithm, IN_FLIGHT, durationMs, false);
      const sequential = await drive(redisStore, algorithm, 1, durationMs, true);
      const readsBefore = await readsProcessed();
      const pipelined = await drive(redisStore, algorithm, IN_FLIGHT, durationMs, false);
      const perRead = pipelined.decisions / ((await readsProcessed()) - readsBefore - 1);
      const pool = await drive(pooledStore, algorithm, IN_FLIGHT, durationMs, false);
      const fallback = await drive(fallbackStore, algorithm, IN_FLIGHT, durationMs, false);
      const processes = await threeProcesses(server.url, name);
      const row = {
        algorithm: name,
        memoryAsync: memory.wall,
        sequential: sequential.wall,
        sequentialP50Ms: percentileOf(sequential.latencies!, 0.5),
        sequentialP99Ms: percentileOf(sequential.latencies!, 0.99),
        pipelined: pipelined.wall,
        commandsPerRead: perRead,
        pool: pool.wall,
        fallback: fallback.wall,
        threeProcesses: processes,
      };
      results.push(row);
      const rate = (value: number) => `${Math.round(value).toLocaleString('en-US')}/s`;
      console.log(
        [
          name.padEnd(22),
          rate(row.memoryAsync).padStart(12),
          `${rate(row.sequential)} (${row.sequentialP50Ms.toFixed(2)}/${row.sequentialP99Ms.toFixed(2)})`.padStart(
            25,
          ),
          `${rate(row.pipelined)} (${row.commandsPerRead.toFixed(1)})`.padStart(23),
          rate(row.pool).padStart(9),
          rate(row.fallback).padStart(12),
          rate(row.threeProcesses).padStart(11),
        ].join(' | '),
      );
    }
    console.log(JSON.stringify({ bench: 'ratelimit-redis', keys: keyCount, results }));
  } finally {
    await Promise.all([single.close(), pooled.close()]);
    await server.stop();
  }
}

if (clientTask !== undefined) {
  await benchClient(JSON.parse(clientTask) as ClientTask);
} else {
  if (!redisOnly) await benchMemory();
  if (runRedis) await benchRedis();
}
