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
 */
import { loadavg } from 'node:os';
import {
  type Clock,
  createAsyncRateLimiter,
  createRateLimiter,
  FixedWindow,
  LeakyBucket,
  type LimiterAlgorithm,
  MemoryLimiterStore,
  SlidingWindowCounter,
  SlidingWindowLog,
  TokenBucket,
} from '../src/resilience/ratelimit/index.ts';
import { median } from '../test/support/stats.ts';

const argument = (name: string, fallback: number): number => {
  const found = process.argv.find((value) => value.startsWith(`--${name}=`));
  return found === undefined ? fallback : Number(found.slice(name.length + 3));
};
const seconds = argument('seconds', 1.5);
const keyCount = argument('keys', 10_000);
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
console.log('algorithm              | sync wall | sync CPU  | async wall | async CPU | admitted | heap/key');
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
