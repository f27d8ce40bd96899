/**
 * `npm run simulate -- --seeds N [--seed S] [--nodes 3|5] [--steps K] [--queue]`
 *
 * Runs the deterministic Raft simulation for many seeds (or replays one with `--seed`), prints
 * a summary (seeds, steps, elections, commits, faults, failures with their seeds) and exits
 * non-zero if any run violated a safety or liveness property.
 */
import { parseArgs } from 'node:util';
import { isPixelfleetError } from '../../errors/index.ts';
import { queueWorkloadFactory } from './queue-machine.ts';
import { runSimulation, type SimulationResult } from './simulation.ts';

const usage =
  'usage: npm run simulate -- [--seeds N] [--seed S] [--first F] [--nodes 3|5] [--steps K] [--queue] [--trace K]';

function integerFlag(name: string, value: string | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  const parsed = Number(value);
  if (!Number.isSafeInteger(parsed) || parsed < 0) {
    process.stderr.write(`--${name} must be a non-negative integer\n${usage}\n`);
    process.exit(2);
  }
  return parsed;
}

async function main(): Promise<number> {
  const { values } = parseArgs({
    options: {
      seeds: { type: 'string' },
      seed: { type: 'string' },
      first: { type: 'string' },
      nodes: { type: 'string' },
      steps: { type: 'string' },
      trace: { type: 'string' },
      queue: { type: 'boolean' },
      help: { type: 'boolean' },
    },
  });
  if (values.help) {
    process.stdout.write(`${usage}\n`);
    return 0;
  }
  const nodes = integerFlag('nodes', values.nodes, 3);
  const steps = integerFlag('steps', values.steps, 20_000);
  const traceLength = integerFlag('trace', values.trace, 120);
  const single = values.seed === undefined ? undefined : integerFlag('seed', values.seed, 1);
  const count = single === undefined ? integerFlag('seeds', values.seeds, 20) : 1;
  const first = single ?? integerFlag('first', values.first, 1);
  const workload = values.queue ? await queueWorkloadFactory() : undefined;
  if (values.queue && !workload) {
    process.stderr.write('--queue: src/queue/state-machine.ts is not available\n');
    return 2;
  }

  const started = performance.now();
  const totals = { steps: 0, elections: 0, commits: 0, faults: 0, acknowledged: 0, reads: 0, simulatedMs: 0 };
  const faultsByKind: Record<string, number> = {};
  const failures: { seed: number; message: string }[] = [];
  let slowestRecovery = 0;
  for (let seed = first; seed < first + count; seed++) {
    let result: SimulationResult;
    try {
      result = runSimulation({
        seed,
        nodes,
        steps,
        traceLength,
        ...(workload ? { workload } : {}),
      });
    } catch (error) {
      if (!isPixelfleetError(error, 'PF_ERR_CONSENSUS_INVARIANT')) throw error;
      failures.push({ seed, message: error.message });
      process.stdout.write(
        single === undefined ? `FAIL --seed ${seed}: ${error.message.split('\n')[0]}\n` : '',
      );
      continue;
    }
    totals.steps += result.steps;
    totals.elections += result.elections;
    totals.commits += result.commitIndex;
    totals.acknowledged += result.proposals.acknowledged;
    totals.reads += result.reads.served;
    totals.simulatedMs += result.simulatedMs;
    slowestRecovery = Math.max(slowestRecovery, result.recoveryMs);
    for (const [kind, times] of Object.entries(result.faults)) {
      faultsByKind[kind] = (faultsByKind[kind] ?? 0) + (times ?? 0);
      totals.faults += times ?? 0;
    }
  }
  const seconds = (performance.now() - started) / 1000;
  const lines = [
    `seeds run:          ${count} (${first}..${first + count - 1}), ${nodes} nodes, ${steps} fault steps each${values.queue ? ', queue state machine' : ''}`,
    `steps:              ${totals.steps} (${Math.round(totals.steps / seconds)} steps/s, ${(count / seconds).toFixed(1)} seeds/s, ${seconds.toFixed(1)} s)`,
    `simulated time:     ${(totals.simulatedMs / 1000).toFixed(0)} s`,
    `elections:          ${totals.elections}`,
    `commits:            ${totals.commits} entries committed, ${totals.acknowledged} client proposals acknowledged, ${totals.reads} linearizable reads`,
    `faults injected:    ${totals.faults} (${Object.entries(faultsByKind)
      .sort()
      .map(([kind, times]) => `${kind} ${times}`)
      .join(', ')})`,
    `slowest recovery:   ${slowestRecovery} simulated ms from healing to a commit on every voter`,
    `failures:           ${failures.length}${failures.length > 0 ? ` (seeds ${failures.map((failure) => failure.seed).join(', ')})` : ''}`,
  ];
  process.stdout.write(`${lines.join('\n')}\n`);
  if (single !== undefined && failures.length > 0) process.stdout.write(`\n${failures[0]!.message}\n`);
  for (const failure of failures) {
    process.stdout.write(
      `replay: npm run simulate -- --seed ${failure.seed} --nodes ${nodes} --steps ${steps}${values.queue ? ' --queue' : ''}\n`,
    );
  }
  return failures.length > 0 ? 1 : 0;
}

process.exitCode = await main();
