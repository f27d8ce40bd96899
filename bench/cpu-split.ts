/**
 * Where a benchmark phase's CPU went: each named group of processes' user + system time (Linux
 * `/proc`, 10 ms clock ticks) and this process's own (the load generator), per successful
 * request. Used by `npm run bench` and `npm run bench:cluster`.
 */
import { cpuTicks } from '../test/service/harness.ts';
import type { LoadResult } from './closed-loop.ts';

/** CPU milliseconds per successful request, by part; `load generator` is this process. */
export type CpuSplit = Record<string, number>;

const tickMs = 10;

/** Runs `phase` and splits the CPU it cost between `parts` (name → pids) and the load generator. */
export async function withCpuSplit<T extends LoadResult>(
  parts: Record<string, number[]>,
  phase: () => Promise<T>,
): Promise<T & { cpu: CpuSplit }> {
  const ticks = () => Object.entries(parts).map(([, pids]) => sum(pids.map(cpuTicks)));
  const before = ticks();
  const ownBefore = process.cpuUsage();
  const result = await phase();
  const own = process.cpuUsage(ownBefore);
  const after = ticks();
  const done = Math.max(1, result.succeeded);
  const cpu: CpuSplit = {};
  Object.keys(parts).forEach((part, at) => {
    cpu[part] = ((after[at]! - before[at]!) * tickMs) / done;
  });
  cpu['load generator'] = (own.user + own.system) / 1000 / done;
  return { ...result, cpu };
}

/** The CPU of every part but the load generator: the server's, per request. */
export function serverCpu(split: CpuSplit): number {
  return sum(Object.entries(split).flatMap(([part, ms]) => (part === 'load generator' ? [] : [ms])));
}

export function sum(values: number[]): number {
  return values.reduce((total, value) => total + value, 0);
}
