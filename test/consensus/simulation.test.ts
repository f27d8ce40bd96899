import assert from 'node:assert/strict';
import { test } from 'node:test';
import { runSimulation, type SimulationResult, type Workload } from '../../src/consensus/index.ts';
import { AppendOnlyList } from '../../src/consensus/simulator/index.ts';

/** Seeds per cluster size; raise with PIXELFLEET_SIMULATION_SEEDS for a longer soak. */
const seeds = Number(process.env.PIXELFLEET_SIMULATION_SEEDS ?? 300);
const steps = 20_000;

function runSeeds(nodes: number, first: number, count: number): SimulationResult[] {
  const results: SimulationResult[] = [];
  const failures: string[] = [];
  for (let seed = first; seed < first + count; seed++) {
    try {
      results.push(runSimulation({ seed, nodes, steps }));
    } catch (error) {
      failures.push((error as Error).message);
    }
  }
  assert.deepEqual(
    failures,
    [],
    `failing seeds (replay with npm run simulate -- --seed S):\n${failures.join('\n\n')}`,
  );
  return results;
}

function summarise(results: SimulationResult[]): Record<string, number> {
  const faults = (result: SimulationResult) =>
    Object.values(result.faults).reduce((sum, times) => sum + (times ?? 0), 0);
  return {
    seeds: results.length,
    steps: results.reduce((sum, result) => sum + result.steps, 0),
    elections: results.reduce((sum, result) => sum + result.elections, 0),
    commits: results.reduce((sum, result) => sum + result.commitIndex, 0),
    faults: results.reduce((sum, result) => sum + faults(result), 0),
    tornRecords: results.reduce((sum, result) => sum + result.tornRecords, 0),
    snapshotsInstalled: results.reduce((sum, result) => sum + result.snapshotsInstalled, 0),
  };
}

test('consensus - simulation: 3-node clusters stay safe and live under every fault kind', () => {
  const results = runSeeds(3, 1, seeds);
  const summary = summarise(results);
  console.log('3 nodes:', summary);
  const kinds = new Set(results.flatMap((result) => Object.keys(result.faults)));
  for (const kind of [
    'partition',
    'oneWayPartition',
    'crash',
    'restart',
    'lossyNetwork',
    'clockDrift',
    'transferLeadership',
    'addVoter',
    'removeVoter',
  ]) {
    assert.ok(kinds.has(kind), `fault ${kind} was injected`);
  }
  assert.ok(summary.tornRecords! > 0, 'some crashes tore an unsynced write');
  assert.ok(summary.snapshotsInstalled! > 0, 'some followers needed a snapshot');
});

test('consensus - simulation: a seed replays the exact same run', () => {
  const first = runSimulation({ seed: 4242, nodes: 3, steps: 5_000 });
  const second = runSimulation({ seed: 4242, nodes: 3, steps: 5_000 });
  assert.deepEqual(first, second);
});

test('consensus - simulation: a diverging replica is caught and reported with its seed and trace', () => {
  // A "state machine" that applies differently on one replica: the checker must notice.
  let replicas = 0;
  const broken = (): Workload => ({
    name: 'broken',
    createStateMachine() {
      const machine = new AppendOnlyList();
      if (++replicas === 2) {
        const apply = machine.apply.bind(machine);
        machine.apply = (entry) => apply({ ...entry, data: new TextEncoder().encode('corrupted') });
      }
      return machine;
    },
    nextProposal: (() => {
      let counter = 0;
      return () => `v${++counter}`;
    })(),
    checkAcknowledged() {},
  });
  assert.throws(
    () => runSimulation({ seed: 7, nodes: 3, steps: 3_000, faults: false, workload: broken }),
    (error: Error & { code?: string; extensions?: { seed?: number; trace?: string[] } }) =>
      error.code === 'PF_ERR_CONSENSUS_INVARIANT' &&
      /State Machine Safety/.test(error.message) &&
      error.message.includes('--seed 7') &&
      error.extensions?.seed === 7 &&
      (error.extensions.trace?.length ?? 0) > 0,
  );
});
