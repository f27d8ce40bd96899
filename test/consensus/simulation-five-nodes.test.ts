import assert from 'node:assert/strict';
import { test } from 'node:test';
import { queueWorkloadFactory, runSimulation } from '../../src/consensus/index.ts';

const seeds = Number(process.env.PIXELFLEET_SIMULATION_SEEDS ?? 200);
const steps = 20_000;

test('consensus - simulation: 5-node clusters stay safe and live under every fault kind', () => {
  const failures: string[] = [];
  let elections = 0;
  for (let seed = 1001; seed < 1001 + seeds; seed++) {
    try {
      elections += runSimulation({ seed, nodes: 5, steps }).elections;
    } catch (error) {
      failures.push((error as Error).message);
    }
  }
  assert.deepEqual(
    failures,
    [],
    `failing seeds (replay with npm run simulate -- --seed S --nodes 5):\n${failures.join('\n\n')}`,
  );
  assert.ok(elections > seeds, 'faults forced re-elections');
});

test('consensus - simulation: the job queue state machine stays identical on every replica', async (context) => {
  const workload = await queueWorkloadFactory();
  if (!workload) {
    context.skip('src/queue/state-machine.ts is not available');
    return;
  }
  const failures: string[] = [];
  let acknowledged = 0;
  for (const [seed, nodes] of [
    [1, 3],
    [2, 3],
    [3, 5],
    [4, 3],
    [5, 5],
    [6, 3],
    [7, 5],
    [8, 3],
  ] as const) {
    try {
      acknowledged += runSimulation({ seed, nodes, steps, workload }).proposals.acknowledged;
    } catch (error) {
      failures.push((error as Error).message);
    }
  }
  assert.deepEqual(
    failures,
    [],
    `failing seeds (replay with npm run simulate -- --queue --seed S):\n${failures.join('\n\n')}`,
  );
  assert.ok(acknowledged > 0);
});
