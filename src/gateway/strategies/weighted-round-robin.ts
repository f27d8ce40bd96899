/**
 * Smooth weighted round robin (the nginx algorithm): each pick adds every candidate's weight to
 * its running score, takes the highest score and subtracts the total weight from it.
 * Guarantee: over any run of W = Σweights picks from an unchanging set each candidate is picked
 * exactly its weight times, and the picks are interleaved ({5,1,1} gives a a b a c a a), not
 * bursty as in plain weighted round robin (a a a a a b c), which would hit the heavy upstream
 * with back-to-back requests.
 */
import type { BalancingStrategy, Candidate } from './types.ts';

export class SmoothWeightedRoundRobin implements BalancingStrategy {
  readonly name = 'weighted-round-robin';
  readonly #currentWeight = new Map<string, number>();

  pick(candidates: readonly Candidate[]): Candidate | undefined {
    let best: Candidate | undefined;
    let bestScore = Number.NEGATIVE_INFINITY;
    let total = 0;
    for (const candidate of candidates) {
      const score = (this.#currentWeight.get(candidate.id) ?? 0) + candidate.weight;
      this.#currentWeight.set(candidate.id, score);
      total += candidate.weight;
      if (score > bestScore) {
        best = candidate;
        bestScore = score;
      }
    }
    if (best !== undefined) this.#currentWeight.set(best.id, bestScore - total);
    return best;
  }

  requestStarted(): void {}
  requestFinished(): void {}

  forget(id: string): void {
    this.#currentWeight.delete(id);
  }
}
