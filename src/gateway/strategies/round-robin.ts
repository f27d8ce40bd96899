/**
 * Round robin: candidates in turn, ignoring weights. Guarantee: over any run of k·n picks from
 * an unchanging set of n candidates each is picked exactly k times.
 */
import type { BalancingStrategy, Candidate } from './types.ts';

export class RoundRobin implements BalancingStrategy {
  readonly name = 'round-robin';
  #next = 0;

  pick(candidates: readonly Candidate[]): Candidate | undefined {
    if (candidates.length === 0) return undefined;
    const chosen = candidates[this.#next % candidates.length]!;
    // Wrap early so the counter never grows without bound on a long-lived gateway.
    this.#next = (this.#next + 1) % candidates.length;
    return chosen;
  }

  requestStarted(): void {}
  requestFinished(): void {}
  forget(): void {}
}
