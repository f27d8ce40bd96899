/**
 * `npm run bench:cluster`: the price of distribution, measured in ONE run on this machine.
 *  1. the embedded service (`pixelfleet start`, every role in one process) at saturation;
 *  2. the local cluster (`pixelfleet cluster`: 1 gateway, 3 api servers, 3 Raft queue nodes,
 *     one worker per core, identity) at saturation through the gateway — target ≥ 75 % of (1);
 *  3. the gateway's added latency: the same requests at a low steady rate, open loop, sent
 *     through the gateway and straight to one api server — a cheap request (GET /v1/usage:
 *     authentication and routing, no conversion) and a resize.
 * Saturation is closed loop (autocannon, 4 connections per core); the corpus JPEGs are resized
 * to 320 px wide JPEG q80, as in `npm run bench`. Each saturation phase warms up first (`--warmup S`,
 * default 30: a dozen fresh processes are still compiling and growing their heaps after 3 s),
 * then measures for `--duration S` (default 15) and splits the CPU time by process. Options:
 * --connections N (default 4 per core), --json.
 */
import { readFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { parseArgs } from 'node:util';
import { startLocalCluster } from '../test/cluster/harness.ts';
import { childPids, corpusJpegs, startProcess } from '../test/service/harness.ts';
import { tempDir } from '../test/support/index.ts';
import { closedLoop, type LoadResult } from './closed-loop.ts';
import { type CpuSplit, sum, withCpuSplit } from './cpu-split.ts';
import { type OpenLoopResult, openLoop } from './open-loop.ts';

const { values } = parseArgs({
  options: {
    duration: { type: 'string', default: '15' },
    warmup: { type: 'string', default: '30' },
    connections: { type: 'string', default: String(availableParallelism() * 4) },
    json: { type: 'boolean', default: false },
  },
});
const durationS = Number(values.duration);
const warmupS = Number(values.warmup);
const connections = Number(values.connections);
const cores = availableParallelism();
const bodies = corpusJpegs().map((path) => readFileSync(path));
const resize = (index: number) => ({
  method: 'POST' as const,
  path: '/v1/resize?width=320&format=jpeg&quality=80',
  body: bodies[index % bodies.length]!,
});

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

/**
 * Warms up, then measures; `parts` names the processes to account for (read after the warm-up,
 * so restarted converters are the ones measured).
 */
async function saturate(
  url: string,
  auth: Record<string, string>,
  parts: () => Record<string, number[]>,
): Promise<Saturated> {
  await closedLoop({ headers: auth, url, connections, durationS: warmupS, request: resize });
  return withCpuSplit(parts(), () =>
    closedLoop({ headers: auth, url, connections, durationS, request: resize }),
  );
}

type Saturated = LoadResult & { cpu: CpuSplit };

async function embedded(): Promise<Saturated> {
  const data = await tempDir();
  const service = await startProcess(['--data-dir', data.path, '--workers', String(cores)]);
  try {
    return await saturate(service.url, { authorization: `Bearer ${service.apiKey}` }, () => ({
      'main process': [service.child.pid!],
      converters: service.workerPids(),
    }));
  } finally {
    service.kill('SIGTERM');
    await service.exited;
    data.remove();
  }
}

interface ClusterFigures {
  saturated: Saturated;
  cheap: { gateway: OpenLoopResult; direct: OpenLoopResult };
  resize: { gateway: OpenLoopResult; direct: OpenLoopResult };
}

async function cluster(): Promise<ClusterFigures> {
  const owner = new Owner();
  try {
    const region = await startLocalCluster(owner, { apiServers: 3, workers: cores, logLevel: 'warn' });
    const { apiKey } = await region.issueKey();
    const auth = { authorization: `Bearer ${apiKey}` };
    // Until every api server has announced itself to the gateway.
    for (let attempt = 0; attempt < 100; attempt++) {
      const status = (await (await fetch(`${region.gatewayControlUrl}/status`)).json()) as {
        upstreams?: unknown[];
      };
      if ((status.upstreams?.length ?? 0) >= 3) break;
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
    const saturated = await saturate(region.gatewayUrl, auth, () => {
      const members = region.pids();
      return {
        gateway: members.gateway,
        'api servers': members.api,
        'queue nodes': members.queue,
        'worker mains': members.worker,
        converters: members.worker.flatMap(childPids),
        identity: members.identity,
      };
    });
    // Authenticated and routed, no conversion: the caller's month-to-date usage.
    const cheapRequest = () => ({ method: 'GET' as const, path: '/v1/usage', headers: auth });
    const resizeRequest = (index: number) => ({
      ...resize(index),
      headers: { ...auth, 'content-type': 'image/jpeg' },
    });
    const lowRate = { durationS: Math.max(5, Math.round(durationS / 2)) };
    const direct = region.apiUrls[0]!;
    return {
      saturated,
      cheap: {
        gateway: await openLoop({ url: region.gatewayUrl, rate: 100, ...lowRate, request: cheapRequest }),
        direct: await openLoop({ url: direct, rate: 100, ...lowRate, request: cheapRequest }),
      },
      resize: {
        gateway: await openLoop({ url: region.gatewayUrl, rate: 5, ...lowRate, request: resizeRequest }),
        direct: await openLoop({ url: direct, rate: 5, ...lowRate, request: resizeRequest }),
      },
    };
  } finally {
    await owner.close();
  }
}

const fmt = (value: number, digits = 1) => value.toFixed(digits);

async function main(): Promise<void> {
  console.log(
    `${bodies.length} corpus JPEGs; ${cores} cores; ${warmupS} s of warm-up, then ${durationS} s measured, per saturation phase`,
  );
  const ours = await embedded();
  console.log(`embedded: ${fmt(ours.perSecond)} conversions/s`);
  const distributed = await cluster();
  const ratio = distributed.saturated.perSecond / ours.perSecond;
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
    '| saturated (closed loop) | conv/s | conv/s per core | p50 ms | p99 ms | errors |',
    '|---|---|---|---|---|---|',
    row('embedded (`pixelfleet start`)', ours),
    row('local cluster through the gateway', distributed.saturated),
    '',
    `cluster / embedded: ${fmt(ratio * 100)} % (target ≥ 75 %)`,
    '',
    'CPU ms per conversion while measured (/proc; the machine has ' +
      `${fmt((cores * 1000) / ours.perSecond, 2)} ms per conversion embedded, ` +
      `${fmt((cores * 1000) / distributed.saturated.perSecond, 2)} in the cluster):`,
    `- embedded: ${cpuRows(ours.cpu).join(', ')}`,
    `- cluster: ${cpuRows(distributed.saturated.cpu).join(', ')}`,
    '',
    '| low steady rate (open loop) | p50 ms | p99 ms | errors |',
    '|---|---|---|---|',
    latencyRow('GET /v1/usage, 100/s, through the gateway', distributed.cheap.gateway),
    latencyRow('GET /v1/usage, 100/s, straight to an api server', distributed.cheap.direct),
    latencyRow('resize, 5/s, through the gateway', distributed.resize.gateway),
    latencyRow('resize, 5/s, straight to an api server', distributed.resize.direct),
    '',
    `gateway's added latency, p50: ${distributed.cheap.gateway.p50 - distributed.cheap.direct.p50} ms (cheap request), ` +
      `${distributed.resize.gateway.p50 - distributed.resize.direct.p50} ms (resize)`,
  ];
  console.log(lines.join('\n'));
  if (values.json) console.log(JSON.stringify({ embedded: ours, cluster: distributed, ratio }, null, 2));
}

await main();
