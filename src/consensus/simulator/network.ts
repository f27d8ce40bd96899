/**
 * The simulated network between nodes: per-link blocking (symmetric and one-way partitions),
 * random loss, duplication and delay (random delays reorder messages). Decides only when, and
 * how many times, a message arrives; the simulation schedules the deliveries.
 */
import type { Message } from '../messages.ts';
import type { NodeId } from '../types.ts';
import type { SeededRandom } from './random.ts';

export interface NetworkConditions {
  /** Probability a message is lost. */
  lossRate: number;
  /** Probability a delivered message arrives twice. */
  duplicateRate: number;
  /** Usual one-way delay range, in simulated ms. */
  minDelay: number;
  maxDelay: number;
  /** Probability of a much slower delivery (up to `slowDelay`), which reorders messages. */
  slowRate: number;
  slowDelay: number;
}

export const calmNetwork: NetworkConditions = {
  lossRate: 0,
  duplicateRate: 0,
  minDelay: 1,
  maxDelay: 5,
  slowRate: 0,
  slowDelay: 0,
};

export class SimulatedNetwork {
  conditions: NetworkConditions;
  private readonly blocked = new Set<string>();
  private readonly random: SeededRandom;
  sent = 0;
  dropped = 0;
  duplicated = 0;

  constructor(random: SeededRandom, conditions: NetworkConditions) {
    this.random = random;
    this.conditions = conditions;
  }

  blockOneWay(from: NodeId, to: NodeId): void {
    this.blocked.add(`${from}>${to}`);
  }

  /** Symmetric partition: no message crosses between the groups. */
  partition(groups: NodeId[][]): void {
    for (const group of groups) {
      for (const other of groups) {
        if (other === group) continue;
        for (const from of group) for (const to of other) this.blockOneWay(from, to);
      }
    }
  }

  heal(): void {
    this.blocked.clear();
  }

  isBlocked(from: NodeId, to: NodeId): boolean {
    return this.blocked.has(`${from}>${to}`);
  }

  describeBlocked(): string {
    return [...this.blocked].sort().join(' ');
  }

  /** Delays (one per delivery) for a message; empty when it is lost. */
  route(message: Message): number[] {
    this.sent += 1;
    const conditions = this.conditions;
    if (this.isBlocked(message.from, message.to) || this.random.chance(conditions.lossRate)) {
      this.dropped += 1;
      return [];
    }
    const delays = [this.delay()];
    if (this.random.chance(conditions.duplicateRate)) {
      this.duplicated += 1;
      delays.push(this.delay());
    }
    return delays;
  }

  private delay(): number {
    const conditions = this.conditions;
    if (conditions.slowRate > 0 && this.random.chance(conditions.slowRate)) {
      return this.random.integer(conditions.maxDelay, Math.max(conditions.slowDelay, conditions.maxDelay));
    }
    return this.random.integer(conditions.minDelay, conditions.maxDelay);
  }
}
