/**
 * Consistent-hash affinity: requests with the same key (a hashed API key, or the client address)
 * go to the same upstream while it is eligible, which gives a client read-your-writes against
 * that upstream's local state. The ring is built over every known member, eligible or not, so
 * an upstream turning unhealthy moves only its own keys (to the next eligible member clockwise)
 * and they come back when it recovers. Requests without a key fall back to round robin.
 */
import { HashRing, ringPosition } from './hash-ring.ts';
import { RoundRobin } from './round-robin.ts';
import type { BalancingStrategy, Candidate, PickRequest } from './types.ts';

export class ConsistentHash implements BalancingStrategy {
  readonly name = 'consistent-hash';
  readonly #virtualNodesPerWeight: number;
  readonly #keyless = new RoundRobin();
  #ring: HashRing | undefined;
  #ringSignature = '';
  #ringMembers: readonly Candidate[] | undefined;

  constructor(options: { virtualNodesPerWeight?: number } = {}) {
    this.#virtualNodesPerWeight = options.virtualNodesPerWeight ?? 160;
    if (!Number.isInteger(this.#virtualNodesPerWeight) || this.#virtualNodesPerWeight < 1) {
      throw new RangeError('virtualNodesPerWeight must be a positive integer');
    }
  }

  pick(candidates: readonly Candidate[], request: PickRequest = {}): Candidate | undefined {
    if (candidates.length === 0) return undefined;
    if (request.affinityKey === undefined) return this.#keyless.pick(candidates);
    const ring = this.#ringFor(request.members ?? candidates);
    const byId = new Map(candidates.map((candidate) => [candidate.id, candidate]));
    const ownerId = ring.owner(ringPosition(request.affinityKey), (id) => byId.has(id));
    // A candidate missing from `members` is not on the ring; serve the key anyway.
    return ownerId === undefined ? this.#keyless.pick(candidates) : byId.get(ownerId);
  }

  requestStarted(): void {}
  requestFinished(): void {}
  forget(): void {}

  /** Rebuilt only when membership or weights change: building costs 160 hashes per member. */
  #ringFor(members: readonly Candidate[]): HashRing {
    // The gateway passes the same array until membership changes: skip the signature then.
    if (this.#ring !== undefined && members === this.#ringMembers) return this.#ring;
    this.#ringMembers = members;
    const signature = members
      .map((member) => `${member.id}\u0000${member.weight}`)
      .sort()
      .join('\u0001');
    if (this.#ring === undefined || signature !== this.#ringSignature) {
      this.#ring = new HashRing(members, this.#virtualNodesPerWeight);
      this.#ringSignature = signature;
    }
    return this.#ring;
  }
}
