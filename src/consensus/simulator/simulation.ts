/**
 * A deterministic simulation of a Raft cluster in one process: N RaftNodes on simulated hosts,
 * a simulated network and a simulated clock, all driven by one seed. It injects faults (message
 * loss, delay, reordering, duplication; symmetric and one-way partitions; crashes that tear the
 * unsynced tail of a write; clock drift; leadership transfers; membership changes) while
 * clients propose entries and issue linearizable reads. After every step it checks Raft's safety
 * properties (see `invariants.ts`); at the end it heals every fault and checks liveness: a
 * leader is elected and a new proposal commits on every voter within a bounded time.
 *
 * A violation throws PF_ERR_CONSENSUS_INVARIANT carrying the seed, the property and the last
 * events, and the same seed replays the same run.
 */
import { isPixelfleetError, PixelfleetError } from '../../errors/index.ts';
import type { RaftOptions } from '../config.ts';
import type { Message } from '../messages.ts';
import type { RaftNode } from '../raft.ts';
import type { ReadState } from '../ready.ts';
import type { NodeId } from '../types.ts';
import { EventQueue } from './event-queue.ts';
import { SimulatedHost } from './host.ts';
import { PropertyViolation, SafetyChecker } from './invariants.ts';
import { calmNetwork, SimulatedNetwork } from './network.ts';
import { createRandom, type SeededRandom } from './random.ts';
import { Trace } from './trace.ts';
import { listWorkload, type Workload } from './workload.ts';

export type FaultKind =
  | 'partition'
  | 'oneWayPartition'
  | 'isolateLeader'
  | 'heal'
  | 'crash'
  | 'restart'
  | 'lossyNetwork'
  | 'calmNetwork'
  | 'clockDrift'
  | 'transferLeadership'
  | 'addVoter'
  | 'removeVoter';

export interface SimulationOptions {
  seed: number;
  /** Voters at bootstrap (default 3). */
  nodes?: number;
  /** Extra nodes that start outside the cluster and may be added later (default 1). */
  spares?: number;
  /** Events processed while faults are injected (default 3000). */
  steps?: number;
  /** Inject faults (default true); false runs a calm cluster. */
  faults?: boolean;
  /** How many recent events a failure report shows (default 120). */
  traceLength?: number;
  /** Clients and the replicated application (default: unique values appended to a list). */
  workload?: () => Workload;
  /** Simulated ms allowed, after healing, to elect a leader and commit a proposal everywhere. */
  livenessTimeoutMs?: number;
  /** Overrides of the Raft options (id, voters, random and storage are the simulator's). */
  raft?: Omit<RaftOptions, 'id' | 'voters' | 'random' | 'storage'>;
}

export interface SimulationResult {
  seed: number;
  nodes: number;
  /** Events processed (chaos and liveness phases). */
  steps: number;
  simulatedMs: number;
  /** Terms that had a leader. */
  elections: number;
  /** Highest committed index. */
  commitIndex: number;
  proposals: { accepted: number; acknowledged: number; refused: number };
  reads: { issued: number; served: number; refused: number };
  faults: Partial<Record<FaultKind, number>>;
  network: { sent: number; dropped: number; duplicated: number };
  tornRecords: number;
  compactions: number;
  snapshotsInstalled: number;
  /** Simulated ms from the end of the faults to the liveness proof. */
  recoveryMs: number;
}

type SimulationEvent =
  | { kind: 'tick'; host: SimulatedHost; incarnation: number }
  | { kind: 'fsync'; host: SimulatedHost; incarnation: number }
  | { kind: 'deliver'; message: Message }
  | { kind: 'propose' }
  | { kind: 'read' }
  | { kind: 'fault' }
  | { kind: 'restart'; host: SimulatedHost }
  | { kind: 'liveness' };

interface PendingProposal {
  value: string;
  term: number;
}

interface PendingRead {
  host: NodeId;
  /** Highest index acknowledged to any client before the read was issued. */
  acknowledgedBefore: number;
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();

export function runSimulation(options: SimulationOptions): SimulationResult {
  return new Simulation(options).run();
}

class Simulation {
  private readonly seed: number;
  private readonly random: SeededRandom;
  private readonly hosts: SimulatedHost[] = [];
  private readonly byId = new Map<NodeId, SimulatedHost>();
  private readonly queue = new EventQueue<SimulationEvent>();
  private readonly network: SimulatedNetwork;
  private readonly checker = new SafetyChecker();
  private readonly workload: Workload;
  private readonly trace: Trace;
  private readonly steps: number;
  private readonly faultsEnabled: boolean;
  private readonly livenessTimeoutMs: number;
  private readonly baseTickPeriod = 10;
  private now = 0;
  private stepCount = 0;
  private phase: 'chaos' | 'liveness' | 'done' = 'chaos';
  private readonly result: SimulationResult;
  private readCounter = 0;
  private readonly pendingProposals = new Map<string, PendingProposal>();
  private readonly acknowledged = new Map<number, string>();
  private highestAcknowledged = 0;
  private readonly pendingReads = new Map<string, PendingRead>();
  private readonly readStatesWaiting = new Map<NodeId, ReadState[]>();
  private readonly leaderTermSeen = new Map<NodeId, number>();
  private readonly compactThreshold = new Map<NodeId, number>();
  private lastLeader: NodeId | null = null;
  private healedAt = 0;
  private marker: { host: NodeId; index: number; term: number; value: string } | undefined;
  private markerAcknowledged = false;

  constructor(options: SimulationOptions) {
    if (!Number.isSafeInteger(options.seed)) throw new RangeError('simulation seed must be an integer');
    const nodes = options.nodes ?? 3;
    const spares = options.spares ?? 1;
    if (!Number.isSafeInteger(nodes) || nodes < 1 || nodes > 9)
      throw new RangeError('nodes must be in [1, 9]');
    if (!Number.isSafeInteger(spares) || spares < 0 || spares > 4)
      throw new RangeError('spares must be in [0, 4]');
    this.steps = options.steps ?? 3000;
    if (!Number.isSafeInteger(this.steps) || this.steps < 0)
      throw new RangeError('steps must be a non-negative integer');
    this.seed = options.seed;
    this.faultsEnabled = options.faults ?? true;
    this.livenessTimeoutMs = options.livenessTimeoutMs ?? 30_000;
    this.random = createRandom(options.seed);
    this.trace = new Trace(options.traceLength ?? 120);
    this.network = new SimulatedNetwork(this.random.fork(), calmNetwork);
    this.workload = (options.workload ?? listWorkload)();
    const createStateMachine = () => this.workload.createStateMachine();
    const raftOptions = {
      electionTick: 10,
      heartbeatTick: 1,
      // Small messages and windows so batching, pipelining limits and snapshots are exercised.
      maxSizePerMessage: this.random.pick([16, 64, 1024]),
      maxInflightMessages: this.random.pick([1, 4, 64]),
      ...options.raft,
    };
    const voterIds = Array.from({ length: nodes }, (_, position) => `n${position + 1}`);
    const allIds = Array.from({ length: nodes + spares }, (_, position) => `n${position + 1}`);
    for (const id of allIds) {
      const host = new SimulatedHost(
        id,
        voterIds.includes(id) ? voterIds : [],
        raftOptions,
        createStateMachine,
        this.random.fork(),
        this.driftedPeriod(),
      );
      this.hosts.push(host);
      this.byId.set(id, host);
      this.compactThreshold.set(id, this.random.integer(8, 60));
    }
    this.result = {
      seed: options.seed,
      nodes,
      steps: 0,
      simulatedMs: 0,
      elections: 0,
      commitIndex: 0,
      proposals: { accepted: 0, acknowledged: 0, refused: 0 },
      reads: { issued: 0, served: 0, refused: 0 },
      faults: {},
      network: { sent: 0, dropped: 0, duplicated: 0 },
      tornRecords: 0,
      compactions: 0,
      snapshotsInstalled: 0,
      recoveryMs: 0,
    };
  }

  run(): SimulationResult {
    try {
      for (const host of this.hosts) this.scheduleTick(host, this.random.integer(0, host.tickPeriod));
      this.queue.push(20, { kind: 'propose' });
      this.queue.push(50, { kind: 'read' });
      if (this.faultsEnabled) this.queue.push(this.random.integer(100, 400), { kind: 'fault' });
      while (this.stepCount < this.steps) this.step();
      this.healEverything();
      const deadline = this.now + this.livenessTimeoutMs;
      this.queue.push(this.now + 1, { kind: 'liveness' });
      while (this.phase === 'liveness') {
        if (this.now > deadline) {
          throw new PropertyViolation(
            'Liveness',
            `no leader committed a new proposal on every voter within ${this.livenessTimeoutMs} ms after healing ` +
              `(marker ${JSON.stringify(this.marker)} acknowledged ${this.markerAcknowledged}; ${this.describeCluster()})`,
          );
        }
        this.step();
      }
      this.checkFinalState();
    } catch (error) {
      throw this.failure(error);
    }
    this.result.steps = this.stepCount;
    this.result.simulatedMs = this.now;
    this.result.elections = this.checker.leaderOfTerm.size;
    this.result.commitIndex = this.checker.commitIndex;
    this.result.network = {
      sent: this.network.sent,
      dropped: this.network.dropped,
      duplicated: this.network.duplicated,
    };
    return this.result;
  }

  private failure(error: unknown): PixelfleetError {
    if (isPixelfleetError(error, 'PF_ERR_CONSENSUS_INVARIANT')) return error;
    const property = error instanceof PropertyViolation ? error.property : 'No exception';
    const detail = error instanceof Error ? error.message : String(error);
    const trace = this.trace.entries();
    return new PixelfleetError(
      'PF_ERR_CONSENSUS_INVARIANT',
      `simulation seed ${this.seed} failed at step ${this.stepCount} (t=${this.now}ms): ${detail}\n` +
        `replay: npm run simulate -- --seed ${this.seed} --nodes ${this.result.nodes} --steps ${this.steps}\n` +
        `last ${trace.length} events:\n  ${trace.join('\n  ')}`,
      { cause: error, extensions: { seed: this.seed, step: this.stepCount, property, trace } },
    );
  }

  // ---------------------------------------------------------------------------------------------
  // The event loop

  private step(): void {
    const next = this.queue.pop();
    if (!next) throw new PropertyViolation('Liveness', 'the simulation ran out of events');
    this.now = next.time;
    this.stepCount += 1;
    const event = next.event;
    switch (event.kind) {
      case 'tick':
        this.onTick(event.host, event.incarnation);
        break;
      case 'fsync':
        if (event.host.incarnation === event.incarnation && event.host.alive) this.completeReady(event.host);
        break;
      case 'deliver':
        this.onDeliver(event.message);
        break;
      case 'propose':
        this.onPropose();
        break;
      case 'read':
        this.onRead();
        break;
      case 'fault':
        this.onFault();
        break;
      case 'restart':
        this.restart(event.host);
        break;
      case 'liveness':
        this.onLiveness();
        break;
    }
    this.checkStep();
  }

  private scheduleTick(host: SimulatedHost, delay: number): void {
    this.queue.push(this.now + delay, { kind: 'tick', host, incarnation: host.incarnation });
  }

  private onTick(host: SimulatedHost, incarnation: number): void {
    if (host.incarnation !== incarnation || !host.node) return;
    host.node.tick();
    this.pump(host);
    this.scheduleTick(host, host.tickPeriod);
  }

  private onDeliver(message: Message): void {
    const host = this.byId.get(message.to);
    if (!host?.node) return;
    if (this.trace.enabled) this.trace.record(`t=${this.now} deliver ${describeMessage(message)}`);
    host.node.step(message);
    this.pump(host);
  }

  /** Takes Readies from a node and starts their writes, until one is waiting for an fsync. */
  private pump(host: SimulatedHost): void {
    while (host.node && !host.pending) {
      const ready = host.node.ready();
      if (!ready) return;
      if (ready.entries.length > 0) this.checker.observeEntries(host.id, host.node, ready.entries);
      if (ready.softState && this.trace.enabled) {
        this.trace.record(
          `t=${this.now} ${host.id} is ${ready.softState.role} (leader ${ready.softState.leader})`,
        );
      }
      if (ready.snapshot) this.checker.observeSnapshot(host.id, ready.snapshot);
      if (host.beginWrite(ready)) {
        this.queue.push(this.now + this.random.integer(0, 6), {
          kind: 'fsync',
          host,
          incarnation: host.incarnation,
        });
        return;
      }
      this.completeReady(host);
    }
  }

  /** The write is durable: send, apply, advance (in the order the Ready contract demands). */
  private completeReady(host: SimulatedHost): void {
    const ready = host.finishWrite();
    const node = host.node!;
    for (const message of ready.messages) this.send(host, message);
    if (ready.snapshot) {
      host.stateMachine.restore(ready.snapshot.data);
      host.appliedIndex = ready.snapshot.meta.index;
      this.result.snapshotsInstalled += 1;
      this.forgetProposalsCoveredBy(host.id, ready.snapshot.meta.index);
      if (this.trace.enabled)
        this.trace.record(`t=${this.now} ${host.id} installed snapshot @${ready.snapshot.meta.index}`);
    }
    for (const entry of ready.committedEntries) {
      if (entry.index !== host.appliedIndex + 1) {
        throw new PropertyViolation(
          'State Machine Safety',
          `${host.id} was handed entry ${entry.index} to apply after ${host.appliedIndex}`,
        );
      }
      this.checker.observeApplied(host.id, entry);
      host.stateMachine.apply(entry);
      host.appliedIndex = entry.index;
      if (entry.index % host.stateMachine.digestEvery === 0) {
        this.checker.observeStateDigest(host.id, entry.index, host.stateMachine.digest());
      }
      host.stateMachine.checkInvariants?.();
      this.onApplied(
        host,
        entry.index,
        entry.term,
        entry.kind === 'normal' ? decoder.decode(entry.data) : '',
      );
    }
    if (ready.readStates.length > 0) {
      const waiting = this.readStatesWaiting.get(host.id) ?? [];
      waiting.push(...ready.readStates);
      this.readStatesWaiting.set(host.id, waiting);
    }
    node.advance(ready);
    this.serveReads(host);
    this.maybeCompact(host, node);
  }

  private send(host: SimulatedHost, message: Message): void {
    this.checkSent(host, message);
    for (const delay of this.network.route(message)) {
      this.queue.push(this.now + delay, { kind: 'deliver', message });
    }
  }

  /** What a message promises must already be durable on its sender. */
  private checkSent(host: SimulatedHost, message: Message): void {
    switch (message.type) {
      case 'append':
      case 'heartbeat':
      case 'snapshot':
      case 'timeoutNow':
        this.checker.observeLeader(message.term, message.from, `sent ${message.type}`);
        break;
      case 'appendResponse': {
        if (message.reject || message.index === 0) break;
        const durableLast = host.durable.entries.at(-1)?.index ?? host.durable.snapshot?.meta.index ?? 0;
        if (durableLast < message.index) {
          throw new PropertyViolation(
            'Durability of acknowledgements',
            `${host.id} acknowledged index ${message.index} but only ${durableLast} is on its disk`,
          );
        }
        break;
      }
      case 'voteResponse': {
        if (message.reject) break;
        const hardState = host.durable.hardState;
        if (hardState.term !== message.term || hardState.vote !== message.to) {
          throw new PropertyViolation(
            'Durability of votes',
            `${host.id} granted its term-${message.term} vote to ${message.to} before persisting it`,
          );
        }
        break;
      }
      default:
        break;
    }
  }

  private onApplied(host: SimulatedHost, index: number, term: number, value: string): void {
    const key = `${host.id}:${index}`;
    const pending = this.pendingProposals.get(key);
    if (pending) {
      this.pendingProposals.delete(key);
      if (pending.term === term) {
        if (value !== pending.value) {
          throw new PropertyViolation(
            'State Machine Safety',
            `${host.id} applied ${JSON.stringify(value)} where the client's proposal ${pending.value} was`,
          );
        }
        this.acknowledged.set(index, value);
        if (index > this.highestAcknowledged) this.highestAcknowledged = index;
        this.result.proposals.acknowledged += 1;
      }
    }
    if (this.marker && this.marker.host === host.id && this.marker.index === index) {
      if (this.marker.term === term) this.markerAcknowledged = true;
      else this.marker = undefined; // lost to a leader change: propose again
    }
  }

  private serveReads(host: SimulatedHost): void {
    const waiting = this.readStatesWaiting.get(host.id);
    if (!waiting || waiting.length === 0) return;
    const stillWaiting: ReadState[] = [];
    for (const readState of waiting) {
      if (host.appliedIndex < readState.index) {
        stillWaiting.push(readState);
        continue;
      }
      const read = this.pendingReads.get(readState.context);
      if (!read || read.host !== host.id) continue;
      this.pendingReads.delete(readState.context);
      if (readState.index < read.acknowledgedBefore) {
        throw new PropertyViolation(
          'Linearizable reads',
          `read ${readState.context} on ${host.id} is served at index ${readState.index}, ` +
            `but index ${read.acknowledgedBefore} was acknowledged before it was issued`,
        );
      }
      this.result.reads.served += 1;
    }
    this.readStatesWaiting.set(host.id, stillWaiting);
  }

  private maybeCompact(host: SimulatedHost, node: RaftNode): void {
    const status = node.basicStatus();
    if (status.applied - status.snapshotIndex < this.compactThreshold.get(host.id)!) return;
    const snapshot = node.compact(status.applied, host.stateMachine.snapshot());
    host.persistSnapshot(snapshot);
    this.result.compactions += 1;
  }

  /** Checks that need the whole cluster, after every step. */
  private checkStep(): void {
    for (const host of this.hosts) {
      const node = host.node;
      if (!node) continue;
      const status = node.basicStatus();
      this.checker.observeCommit(host.id, node, status.commit);
      if (status.role === 'leader') {
        this.lastLeader = host.id;
        this.checker.observeLeader(status.term, host.id, 'role');
        if (this.leaderTermSeen.get(host.id) !== status.term) {
          this.leaderTermSeen.set(host.id, status.term);
          this.checker.checkLeaderCompleteness(host.id, node, status.term);
        }
      }
    }
  }

  // ---------------------------------------------------------------------------------------------
  // Clients

  private aliveHosts(): SimulatedHost[] {
    return this.hosts.filter((host) => host.alive);
  }

  private chooseHost(): SimulatedHost | undefined {
    const leader = this.lastLeader ? this.byId.get(this.lastLeader) : undefined;
    if (leader?.alive && this.random.chance(0.85)) return leader;
    const alive = this.aliveHosts();
    return alive.length > 0 ? this.random.pick(alive) : undefined;
  }

  private onPropose(): void {
    const host = this.chooseHost();
    const burst = this.random.chance(0.2) ? this.random.integer(2, 6) : 1;
    if (host?.node) {
      for (let count = 0; count < burst; count++) {
        const value = this.workload.nextProposal(this.random, this.now, host.stateMachine);
        try {
          const ticket = host.node.propose(encoder.encode(value));
          this.pendingProposals.set(`${host.id}:${ticket.index}`, { value, term: ticket.term });
          this.result.proposals.accepted += 1;
        } catch (error) {
          if (!isRefusal(error)) throw error;
          this.result.proposals.refused += 1;
          break;
        }
      }
      this.pump(host);
    }
    this.queue.push(this.now + this.random.integer(2, 30), { kind: 'propose' });
  }

  private onRead(): void {
    const host = this.chooseHost();
    if (host?.node) {
      const context = `read-${++this.readCounter}`;
      try {
        host.node.readIndex(context);
        this.pendingReads.set(context, { host: host.id, acknowledgedBefore: this.highestAcknowledged });
        this.result.reads.issued += 1;
      } catch (error) {
        if (!isRefusal(error)) throw error;
        this.result.reads.refused += 1;
      }
      this.pump(host);
    }
    this.queue.push(this.now + this.random.integer(10, 80), { kind: 'read' });
  }

  // ---------------------------------------------------------------------------------------------
  // Faults

  private countFault(kind: FaultKind, detail: string): void {
    this.result.faults[kind] = (this.result.faults[kind] ?? 0) + 1;
    if (this.trace.enabled) this.trace.record(`t=${this.now} FAULT ${kind} ${detail}`);
  }

  private driftedPeriod(): number {
    // Up to ±30 % clock rate difference between hosts.
    return Math.round(this.baseTickPeriod * (0.7 + this.random.next() * 0.6));
  }

  private onFault(): void {
    if (this.phase !== 'chaos') return;
    const alive = this.aliveHosts();
    const crashed = this.hosts.filter((host) => !host.alive);
    const roll = this.random.integer(0, 99);
    if (roll < 12) {
      const shuffled = [...this.hosts.map((host) => host.id)].sort(() => this.random.next() - 0.5);
      const cut = this.random.integer(1, shuffled.length - 1);
      const groups = [shuffled.slice(0, cut), shuffled.slice(cut)];
      this.network.partition(groups);
      this.countFault('partition', groups.map((group) => group.join(',')).join(' | '));
    } else if (roll < 20) {
      const id = this.random.pick(this.hosts).id;
      const outbound = this.random.chance(0.5);
      for (const other of this.hosts) {
        if (other.id === id) continue;
        if (outbound) this.network.blockOneWay(id, other.id);
        else this.network.blockOneWay(other.id, id);
      }
      this.countFault(
        'oneWayPartition',
        `${id} can ${outbound ? 'receive but not send' : 'send but not receive'}`,
      );
    } else if (roll < 28) {
      if (this.lastLeader) {
        const id = this.lastLeader;
        this.network.partition([[id], this.hosts.map((host) => host.id).filter((other) => other !== id)]);
        this.countFault('isolateLeader', id);
      }
    } else if (roll < 42) {
      this.network.heal();
      this.countFault('heal', 'all links restored');
    } else if (roll < 54) {
      if (alive.length > 1) {
        // Half the time pick a host mid-write, to exercise torn tails.
        const writing = alive.filter((candidate) => candidate.pending !== undefined);
        const host =
          writing.length > 0 && this.random.chance(0.5) ? this.random.pick(writing) : this.random.pick(alive);
        const torn = host.crash();
        this.result.tornRecords += torn.lostRecords;
        this.dropClientStateOf(host.id);
        this.queue.push(this.now + this.random.integer(20, 600), { kind: 'restart', host });
        this.countFault(
          'crash',
          `${host.id} (kept ${torn.keptRecords}, tore ${torn.lostRecords} unsynced records)`,
        );
      }
    } else if (roll < 62) {
      this.network.conditions = {
        lossRate: this.random.next() * 0.3,
        duplicateRate: this.random.next() * 0.1,
        minDelay: 1,
        maxDelay: this.random.integer(3, 15),
        slowRate: this.random.next() * 0.1,
        slowDelay: this.random.integer(20, 120),
      };
      const conditions = this.network.conditions;
      this.countFault(
        'lossyNetwork',
        `loss ${conditions.lossRate.toFixed(2)} dup ${conditions.duplicateRate.toFixed(2)} delay ≤${conditions.maxDelay}`,
      );
    } else if (roll < 70) {
      this.network.conditions = calmNetwork;
      this.countFault('calmNetwork', '');
    } else if (roll < 76) {
      const host = this.random.pick(this.hosts);
      host.tickPeriod = this.driftedPeriod();
      this.countFault('clockDrift', `${host.id} ticks every ${host.tickPeriod} ms`);
    } else if (roll < 84) {
      const leader = this.currentLeader();
      if (leader?.node) {
        const voters = leader.node.status().voters.filter((id) => id !== leader.id);
        if (voters.length > 0) {
          const target = this.random.pick(voters);
          leader.node.transferLeadership(target);
          this.pump(leader);
          this.countFault('transferLeadership', `${leader.id} -> ${target}`);
        }
      }
    } else if (roll < 92) {
      this.changeMembership();
    } else if (crashed.length > 0) {
      const host = this.random.pick(crashed);
      this.restart(host);
    }
    this.queue.push(this.now + this.random.integer(30, 300), { kind: 'fault' });
  }

  private changeMembership(): void {
    const leader = this.currentLeader();
    if (!leader?.node) return;
    const voters = leader.node.status().voters;
    const outsiders = this.hosts.map((host) => host.id).filter((id) => !voters.includes(id));
    const remove =
      voters.length > this.result.nodes || (voters.length === this.result.nodes && outsiders.length === 0);
    try {
      if (remove) {
        if (voters.length <= 1) return;
        const target = this.random.pick(voters);
        leader.node.proposeConfChange({ remove: target });
        this.countFault('removeVoter', `${leader.id} proposes removing ${target}`);
      } else {
        if (outsiders.length === 0) return;
        const target = this.random.pick(outsiders);
        leader.node.proposeConfChange({ add: target });
        this.countFault('addVoter', `${leader.id} proposes adding ${target}`);
      }
    } catch (error) {
      if (!isRefusal(error)) throw error;
    }
    this.pump(leader);
  }

  private currentLeader(): SimulatedHost | undefined {
    let best: SimulatedHost | undefined;
    let bestTerm = -1;
    for (const host of this.hosts) {
      const status = host.node?.basicStatus();
      if (status?.role === 'leader' && status.term > bestTerm) {
        best = host;
        bestTerm = status.term;
      }
    }
    return best;
  }

  private restart(host: SimulatedHost): void {
    if (host.alive) return;
    host.start();
    this.scheduleTick(host, this.random.integer(1, host.tickPeriod));
    this.countFault('restart', `${host.id} from disk (commit ${host.durable.hardState.commit})`);
    this.pump(host);
  }

  /** A snapshot skips the individual entries: the outcome of proposals it covers stays unknown. */
  private forgetProposalsCoveredBy(id: NodeId, snapshotIndex: number): void {
    for (const key of [...this.pendingProposals.keys()]) {
      const [owner, index] = key.split(':');
      if (owner === id && Number(index) <= snapshotIndex) this.pendingProposals.delete(key);
    }
    if (this.marker?.host === id && this.marker.index <= snapshotIndex) this.marker = undefined;
  }

  private dropClientStateOf(id: NodeId): void {
    for (const key of [...this.pendingProposals.keys()])
      if (key.startsWith(`${id}:`)) this.pendingProposals.delete(key);
    for (const [context, read] of [...this.pendingReads])
      if (read.host === id) this.pendingReads.delete(context);
    this.readStatesWaiting.delete(id);
    if (this.marker?.host === id) this.marker = undefined;
  }

  // ---------------------------------------------------------------------------------------------
  // Liveness

  private healEverything(): void {
    this.phase = 'liveness';
    this.healedAt = this.now;
    this.network.heal();
    this.network.conditions = calmNetwork;
    for (const host of this.hosts) if (!host.alive) this.restart(host);
    if (this.trace.enabled) this.trace.record(`t=${this.now} HEAL everything; liveness phase starts`);
  }

  private onLiveness(): void {
    const leader = this.currentLeader();
    // A client whose leader was deposed gives up on it and retries with the new leader.
    if (this.marker && !this.markerAcknowledged && leader && leader.id !== this.marker.host)
      this.marker = undefined;
    if (leader?.node && !this.marker) {
      const value = this.workload.nextProposal(this.random, this.now, leader.stateMachine);
      try {
        const ticket = leader.node.propose(encoder.encode(value));
        this.marker = { host: leader.id, index: ticket.index, term: ticket.term, value };
        this.markerAcknowledged = false;
        this.pump(leader);
      } catch (error) {
        if (!isRefusal(error)) throw error;
      }
    }
    if (this.marker && this.markerAcknowledged) {
      const owner = this.byId.get(this.marker.host)!;
      const voters = owner.node?.status().voters ?? [];
      const everyVoterApplied = voters.every(
        (id) => (this.byId.get(id)?.appliedIndex ?? 0) >= this.marker!.index,
      );
      if (everyVoterApplied) {
        this.phase = 'done';
        this.result.recoveryMs = this.now - this.healedAt;
        return;
      }
    }
    this.queue.push(this.now + 20, { kind: 'liveness' });
  }

  private checkFinalState(): void {
    // Every acknowledged proposal is in the final state (replicas at one index are identical).
    const leader = this.currentLeader();
    if (!leader) return;
    try {
      this.workload.checkAcknowledged(leader.stateMachine, this.acknowledged);
    } catch (error) {
      if (error instanceof PropertyViolation) throw error;
      throw new PropertyViolation('Durability of acknowledged proposals', (error as Error).message);
    }
  }

  private describeCluster(): string {
    return this.hosts
      .map((host) => {
        const status = host.node?.basicStatus();
        if (!status) return `${host.id}: down`;
        const base = `${host.id}: ${status.role} term ${status.term} commit ${status.commit} applied ${status.applied}`;
        if (status.role !== 'leader') return base;
        const full = host.node!.status();
        const progress = Object.entries(full.progress)
          .map(([id, follower]) => `${id} ${follower.state} match ${follower.match} next ${follower.next}`)
          .join(', ');
        return `${base} voters [${full.voters.join(',')}] progress {${progress}}`;
      })
      .join('; ');
  }
}

function isRefusal(error: unknown): boolean {
  return isPixelfleetError(error, 'PF_ERR_NOT_LEADER') || isPixelfleetError(error, 'PF_ERR_PROPOSAL_DROPPED');
}

export function describeMessage(message: Message): string {
  const head = `${message.type} ${message.from}->${message.to} t${message.term}`;
  switch (message.type) {
    case 'append':
      return `${head} prev=${message.prevIndex}/${message.prevTerm} n=${message.entries.length} commit=${message.commit}`;
    case 'appendResponse':
      return `${head} index=${message.index}${message.reject ? ` REJECT hint=${message.hint?.index}/${message.hint?.term}` : ''}`;
    case 'heartbeat':
      return `${head} commit=${message.commit}${message.context ? ` ctx=${message.context}` : ''}`;
    case 'vote':
    case 'preVote':
      return `${head} last=${message.lastIndex}/${message.lastTerm}${message.transfer ? ' transfer' : ''}`;
    case 'voteResponse':
    case 'preVoteResponse':
      return `${head} ${message.reject ? 'REJECT' : 'GRANT'}`;
    case 'snapshot':
      return `${head} @${message.snapshot.meta.index}/${message.snapshot.meta.term}`;
    default:
      return head;
  }
}
