/**
 * The deterministic Raft simulator: seeded runs of a whole cluster under faults, with Raft's
 * safety properties checked after every step and liveness checked after healing.
 */
export { PropertyViolation, SafetyChecker } from './invariants.ts';
export { calmNetwork, type NetworkConditions, SimulatedNetwork } from './network.ts';
export { queueWorkloadFactory } from './queue-machine.ts';
export { createRandom, type SeededRandom } from './random.ts';
export {
  type FaultKind,
  runSimulation,
  type SimulationOptions,
  type SimulationResult,
} from './simulation.ts';
export { AppendOnlyList, type ReplicatedStateMachine } from './state-machines.ts';
export { listWorkload, type Workload } from './workload.ts';
