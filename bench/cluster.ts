/**
 * `npm run bench:cluster`: the price of distribution, measured in ONE run on this machine.
 *  1. the embedded service (`pixelfleet start`, every role in one process) at saturation;
 *  2. the local cluster (`pixelfleet cluster`: 1 gateway, 3 api servers, 3 Raft queue nodes,
 *     one worker per core, identity) at saturation through the gateway — target ≥ 75 % of (1);
 *  3. the gateway's added latency: the same requests at a low steady rate, open loop, sent
 *     through the gateway and straight to one api server — a cheap request (GET /v1/usage:
 *     authentication and routing, no conversion) and a resize.
 *
 * Both systems run side by side, and only one is ever awake: the other's whole process group is
 * stopped (SIGSTOP, a second after its load ended, see `freeze`), so it takes no CPU at all, and
 * continued (SIGCONT) for its turn. The
 * saturation phases alternate, embedded then cluster, then cluster then embedded, and so on
 * (`--rounds`, default 5), so a shared machine's slow minute falls on both sides instead of on
 * whichever happened to run then: one sequential pair swung from 69 % to 86 % between runs on
 * the same machine. The ratio reported is the median of the rounds' ratios, with the lowest
 * and the ratio of the totals beside it.
 *
 * Each system warms up once (`--warmup S`, default 30: a dozen fresh processes are still
 * compiling and growing their heaps after 3 s); each turn re-warms for `--rewarm S` (default 5:
 * a cluster continued after seconds of silence re-elects, re-registers and re-checks health)
 * before it is measured for `--duration S` (default 10), with the CPU time split by process.
 * Each turn also reports the machine's idle share (`/proc/stat`): a side that leaves CPU idle
 * was limited by the load's concurrency, not by its CPU. Saturation is closed loop
 * (autocannon, `--connections N`, default 4 per core); the corpus
 * JPEGs are resized to 320 px wide JPEG q80, as in `npm run bench`. `--json` adds the raw figures.
 */
import { readFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { parseArgs } from 'node:util';
import { startLocalCluster } from '../test/cluster/harness.ts';
import { childPids, corpusJpegs, startProcess } from '../test/service/harness.ts';
import { onExit, sleep, tempDir, waitFor } from '../test/support/index.ts';
import { closedLoop, type LoadResult } from './closed-loop.ts';
import { type CpuSplit, sum, withCpuSplit } from './cpu-split.ts';
import { type OpenLoopResult, openLoop } from './open-loop.ts';

const { values } = parseArgs({
  options: {
    duration: { type: 'string', default: '10' },
    warmup: { type: 'string', default: '30' },
    rewarm: { type: 'string', default: '5' },
    rounds: { type: 'string', default: '5' },
    connections: { type: 'string', default: String(availableParallelism() * 4) },
    json: { type: 'boolean', default: false },
  },
});
const durationS = Number(values.duration);
const warmupS = Number(values.warmup);
const rewarmS = Number(values.rewarm);
const rounds = Number(values.rounds);
const connections = Number(values.connections);
const cores = availableParallelism();
const bodies = corpusJpegs().map((path) => readFileSync(path));
const resize = (index: number) => ({
  method: 'POST' as const,
  path: '/v1/resize?width=320&format=jpeg&quality=80',
  body: bodies[index % bodies.length]!,
});

/** The middle value (the mean of the two middle ones for an even count). */
function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2;
}

/** Runs the after-hooks a test context would, for the harnesses. */
class Owner {
  readonly #hooks: (() => unknown)[] = [];
  after(hook: () => unknown): void {
    this.#hooks.push(hook);
  }
  async close(): Promise<void> {
    for (const hook of this.#hooks.reverse()) await hook();
  }
}

/** `idle`: the share of the machine's CPU time nobody used (idle and iowait, `/proc/stat`). */
type Saturated = LoadResult & { cpu: CpuSplit; idle: number };

/** Idle and total CPU ticks of the whole machine so far. */
function machineTicks(): { idle: number; total: number } {
  const fields = readFileSync('/proc/stat', 'utf8')
    .split('\n')[0]!
    .trim()
    .split(/\s+/)
    .slice(1, 9)
    .map(Number);
  return { idle: fields[3]! + fields[4]!, total: sum(fields) };
}

/** One system under test: its own process group, stopped while the other one is measured. */
interface Contender {
  name: string;
  url: string;
  auth: Record<string, string>;
  /** Leader of the process group (started detached). */
  groupPid: number;
  /** Processes to account the CPU of, by part (read per turn: a restarted converter is new). */
  parts(): Record<string, number[]>;
  /** Resolves once the system serves again after being continued. */
  ready(): Promise<void>;
  turns: Saturated[];
}

/**
 * Stops the side once the requests the load generator abandoned at its deadline have finished:
 * a conversion frozen mid-way would outlive its watchdog (10 s) while the other side is measured,
 * and its converter would be killed and restarted on thaw.
 */
async function freeze(contender: Contender): Promise<void> {
  await sleep(1000);
  process.kill(-contender.groupPid, 'SIGSTOP');
}

async function thaw(contender: Contender): Promise<void> {
  process.kill(-contender.groupPid, 'SIGCONT');
  await contender.ready();
}

function load(contender: Contender, seconds: number): Promise<LoadResult> {
  return closedLoop({
    headers: contender.auth,
    url: contender.url,
    connections,
    durationS: seconds,
    request: resize,
  });
}

/** One measured turn: continue, re-warm, measure with the CPU split, stop again. */
async function turn(contender: Contender): Promise<void> {
  const convertersBefore = contender.parts().converters!.join();
  await thaw(contender);
  await load(contender, rewarmS);
  const before = machineTicks();
  const split = await withCpuSplit(contender.parts(), () => load(contender, durationS));
  const after = machineTicks();
  const measured = { ...split, idle: (after.idle - before.idle) / Math.max(1, after.total - before.total) };
  await freeze(contender);
  // A restarted converter is a cold one: say so rather than let it pass as noise.
  if (contender.parts().converters!.join() !== convertersBefore) {
    console.log(`  (a converter of the ${contender.name} side was restarted during this turn)`);
  }
  contender.turns.push(measured);
}

/** The turns together: conversions per second over all of them, CPU per conversion over all. */
function combined(turns: Saturated[]): Saturated {
  const succeeded = sum(turns.map((t) => t.succeeded));
  const requests = sum(turns.map((t) => t.requests));
  const cpu: CpuSplit = {};
  for (const t of turns) {
    for (const [part, ms] of Object.entries(t.cpu))
      cpu[part] = (cpu[part] ?? 0) + (ms * t.succeeded) / succeeded;
  }
  return {
    perSecond: sum(turns.map((t) => t.perSecond)) / turns.length,
    p50: median(turns.map((t) => t.p50)),
    p99: median(turns.map((t) => t.p99)),
    p999: median(turns.map((t) => t.p999)),
    errorRate: requests === 0 ? 0 : (requests - succeeded) / requests,
    requests,
    succeeded,
    cpu,
    idle: sum(turns.map((t) => t.idle)) / turns.length,
  };
}

async function embedded(owner: Owner): Promise<Contender> {
  const data = await tempDir();
  const service = await startProcess(['--data-dir', data.path, '--workers', String(cores)], {
    detached: true,
  });
  // Its own process group (to stop it as a whole), so Ctrl-C of the benchmark no longer reaches
  // it: kill it on the way out, stopped or not.
  const forget = onExit(() => process.kill(-service.child.pid!, 'SIGKILL'));
  owner.after(async () => {
    forget();
    process.kill(-service.child.pid!, 'SIGCONT');
    service.kill('SIGTERM');
    await service.exited;
    data.remove();
  });
  return {
    name: 'embedded',
    url: service.url,
    auth: { authorization: `Bearer ${service.apiKey}` },
    groupPid: service.child.pid!,
    parts: () => ({ 'main process': [service.child.pid!], converters: service.workerPids() }),
    ready: async () => {},
    turns: [],
  };
}

type Region = Awaited<ReturnType<typeof startLocalCluster>>;

/** Until every api server is an upstream of the gateway again (after a start or a SIGCONT). */
async function upstreamsReady(region: Region, expected: number): Promise<void> {
  await waitFor(
    async () => {
      const status = (await (await fetch(`${region.gatewayControlUrl}/status`)).json()) as {
        upstreams?: { healthy: boolean; ejected: boolean }[];
      };
      const healthy = (status.upstreams ?? []).filter((upstream) => upstream.healthy && !upstream.ejected);
      return healthy.length >= expected;
    },
    { timeoutMs: 30_000, intervalMs: 200, message: `the gateway to see ${expected} healthy api servers` },
  );
}

async function cluster(owner: Owner): Promise<{ contender: Contender; region: Region; apiKey: string }> {
  const region = await startLocalCluster(owner, { apiServers: 3, workers: cores, logLevel: 'warn' });
  // Registered after startLocalCluster's stop hook, so it runs first (hooks run last first): a
  // stopped group would not hear the Ctrl-C that stops it.
  owner.after(() => {
    process.kill(-region.child.pid!, 'SIGCONT');
  });
  const { apiKey } = await region.issueKey();
  await upstreamsReady(region, 3);
  const contender: Contender = {
    name: 'cluster',
    url: region.gatewayUrl,
    auth: { authorization: `Bearer ${apiKey}` },
    groupPid: region.child.pid!,
    parts: () => {
      const members = region.pids();
      return {
        gateway: members.gateway,
        'api servers': members.api,
        'queue nodes': members.queue,
        'worker mains': members.worker,
        converters: members.worker.flatMap(childPids),
        identity: members.identity,
      };
    },
    ready: async () => {
      // Seconds of silence look like failures to every timer in the region: let the heartbeats,
      // elections and health checks that were due run, then wait for the upstreams.
      await sleep(1500);
      await upstreamsReady(region, 3);
    },
    turns: [],
  };
  return { contender, region, apiKey };
}

/** The gateway's added latency: the same requests at a low rate, through it and direct. */
async function latencies(region: Region, apiKey: string) {
  const auth = { authorization: `Bearer ${apiKey}` };
  // Authenticated and routed, no conversion: the caller's month-to-date usage.
  const cheapRequest = () => ({ method: 'GET' as const, path: '/v1/usage', headers: auth });
  const resizeRequest = (index: number) => ({
    ...resize(index),
    headers: { ...auth, 'content-type': 'image/jpeg' },
  });
  const lowRate = { durationS: Math.max(5, Math.round(durationS / 2)) };
  const direct = region.apiUrls[0]!;
  return {
    cheap: {
      gateway: await openLoop({ url: region.gatewayUrl, rate: 100, ...lowRate, request: cheapRequest }),
      direct: await openLoop({ url: direct, rate: 100, ...lowRate, request: cheapRequest }),
    },
    resize: {
      gateway: await openLoop({ url: region.gatewayUrl, rate: 5, ...lowRate, request: resizeRequest }),
      direct: await openLoop({ url: direct, rate: 5, ...lowRate, request: resizeRequest }),
    },
  };
}

const fmt = (value: number, digits = 1) => value.toFixed(digits);

async function main(): Promise<void> {
  console.log(
    `${bodies.length} corpus JPEGs; ${cores} cores; ${warmupS} s of warm-up each, then ${rounds} rounds ` +
      `of ${durationS} s measured per side (${rewarmS} s re-warm per turn), the idle side stopped`,
  );
  const owner = new Owner();
  try {
    const ours = await embedded(owner);
    await load(ours, warmupS);
    await freeze(ours);
    const { contender: theirs, region, apiKey } = await cluster(owner);
    await load(theirs, warmupS);
    await freeze(theirs);

    const ratios: number[] = [];
    for (let round = 0; round < rounds; round++) {
      // Alternate which side goes first, so a drift in the machine's speed falls on both.
      const order = round % 2 === 0 ? [ours, theirs] : [theirs, ours];
      for (const contender of order) await turn(contender);
      const ratio = theirs.turns[round]!.perSecond / ours.turns[round]!.perSecond;
      ratios.push(ratio);
      console.log(
        `round ${round + 1}: embedded ${fmt(ours.turns[round]!.perSecond)} conv/s, ` +
          `cluster ${fmt(theirs.turns[round]!.perSecond)} conv/s: ${fmt(ratio * 100)} % ` +
          `(machine idle ${fmt(ours.turns[round]!.idle * 100)} and ${fmt(theirs.turns[round]!.idle * 100)} %)`,
      );
    }
    await thaw(theirs);
    const latency = await latencies(region, apiKey);

    const embeddedAll = combined(ours.turns);
    const clusterAll = combined(theirs.turns);
    const middleRatio = median(ratios);
    const lowestRatio = Math.min(...ratios);
    const cpuRows = (split: CpuSplit) => [
      ...Object.entries(split).map(([part, ms]) => `${part} ${fmt(ms, 2)}`),
      `total ${fmt(sum(Object.values(split)), 2)}`,
    ];
    const row = (name: string, result: LoadResult) =>
      `| ${name} | ${fmt(result.perSecond)} | ${fmt(result.perSecond / cores)} | ${result.p50} | ${result.p99} | ${fmt(result.errorRate * 100, 2)} % |`;
    const latencyRow = (name: string, result: OpenLoopResult) =>
      `| ${name} | ${result.p50} | ${result.p99} | ${fmt(result.errorRate * 100, 2)} % |`;
    const lines = [
      '',
      `| saturated (closed loop, mean of ${rounds} turns; median p50/p99) | conv/s | conv/s per core | p50 ms | p99 ms | errors |`,
      '|---|---|---|---|---|---|',
      row('embedded (`pixelfleet start`)', embeddedAll),
      row('local cluster through the gateway', clusterAll),
      '',
      `cluster / embedded: ${fmt(middleRatio * 100)} % (median of ${rounds} rounds; lowest ${fmt(lowestRatio * 100)} %, ` +
        `totals ${fmt((clusterAll.perSecond / embeddedAll.perSecond) * 100)} %; target ≥ 75 %)`,
      '',
      'CPU ms per conversion while measured (/proc; the machine has ' +
        `${fmt((cores * 1000) / embeddedAll.perSecond, 2)} ms per conversion embedded, ` +
        `${fmt((cores * 1000) / clusterAll.perSecond, 2)} in the cluster):`,
      `- embedded: ${cpuRows(embeddedAll.cpu).join(', ')}; machine idle ${fmt(embeddedAll.idle * 100)} %`,
      `- cluster: ${cpuRows(clusterAll.cpu).join(', ')}; machine idle ${fmt(clusterAll.idle * 100)} %`,
      '',
      '| low steady rate (open loop) | p50 ms | p99 ms | errors |',
      '|---|---|---|---|',
      latencyRow('GET /v1/usage, 100/s, through the gateway', latency.cheap.gateway),
      latencyRow('GET /v1/usage, 100/s, straight to an api server', latency.cheap.direct),
      latencyRow('resize, 5/s, through the gateway', latency.resize.gateway),
      latencyRow('resize, 5/s, straight to an api server', latency.resize.direct),
      '',
      `gateway's added latency, p50: ${latency.cheap.gateway.p50 - latency.cheap.direct.p50} ms (cheap request), ` +
        `${latency.resize.gateway.p50 - latency.resize.direct.p50} ms (resize)`,
    ];
    console.log(lines.join('\n'));
    if (values.json) {
      console.log(
        JSON.stringify(
          { embedded: ours.turns, cluster: theirs.turns, ratios, median: middleRatio, latency },
          null,
          2,
        ),
      );
    }
  } finally {
    await owner.close();
  }
}

await main();
