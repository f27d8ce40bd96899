/**
 * Least connections: the candidate with the fewest requests in flight relative to its weight;
 * ties are broken at random so that a burst arriving at an idle set does not all land on the
 * first upstream in list order.
 */
import type { BalancingStrategy, Candidate } from './types.ts';

export class LeastConnections implements BalancingStrategy {
  readonly name = 'least-connections';
  readonly #inflight = new Map<string, number>();
  readonly #random: () => number;

  constructor(options: { random?: () => number } = {}) {
    this.#random = options.random ?? Math.random;
  }

  pick(candidates: readonly Candidate[]): Candidate | undefined {
    let best: Candidate | undefined;
    let bestLoad = Number.POSITIVE_INFINITY;
    let ties = 0;
    for (const candidate of candidates) {
      const load = (this.#inflight.get(candidate.id) ?? 0) / candidate.weight;
      if (load < bestLoad) {
        best = candidate;
        bestLoad = load;
        ties = 1;
      } else if (load === bestLoad) {
        // Reservoir sampling over the tied candidates: each is kept with equal probability.
        ties += 1;
        if (this.#random() * ties < 1) best = candidate;
      }
    }
    return best;
  }

  inflight(id: string): number {
    return this.#inflight.get(id) ?? 0;
  }

  requestStarted(id: string): void {
    this.#inflight.set(id, (this.#inflight.get(id) ?? 0) + 1);
  }

  requestFinished(id: string): void {
    const count = this.#inflight.get(id);
    if (count !== undefined) this.#inflight.set(id, Math.max(0, count - 1));
  }

  forget(id: string): void {
    this.#inflight.delete(id);
  }
}
