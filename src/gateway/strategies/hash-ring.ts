/**
 * A consistent-hash ring with virtual nodes. Each member owns `virtualNodesPerWeight × weight`
 * points on a 32-bit circle; a key belongs to the first point clockwise from its hash.
 *
 * Guarantee: adding or removing one of n equal members moves only the keys that land on (or
 * leave) that member, about 1/n of them; every other key keeps its owner. Virtual nodes make
 * each member's share close to its weight's share (160 points per unit keep the spread within
 * a few per cent).
 */
import { createHash } from 'node:crypto';

/** The first 32 bits of SHA-256: uniform, stable across processes and versions. */
export function ringPosition(value: string): number {
  return createHash('sha256').update(value).digest().readUInt32BE(0);
}

interface RingPoint {
  position: number;
  id: string;
}

export class HashRing {
  readonly #points: RingPoint[];

  constructor(members: ReadonlyArray<{ id: string; weight: number }>, virtualNodesPerWeight = 160) {
    if (!Number.isInteger(virtualNodesPerWeight) || virtualNodesPerWeight < 1) {
      throw new RangeError('virtualNodesPerWeight must be a positive integer');
    }
    const points: RingPoint[] = [];
    for (const member of members) {
      const count = Math.max(1, Math.round(virtualNodesPerWeight * member.weight));
      for (let index = 0; index < count; index += 1) {
        points.push({ position: ringPosition(`${member.id}#${index}`), id: member.id });
      }
    }
    // Ties (two points on one position) are ordered by id so every gateway builds the same ring.
    points.sort((x, y) => x.position - y.position || (x.id < y.id ? -1 : x.id > y.id ? 1 : 0));
    this.#points = points;
  }

  get size(): number {
    return this.#points.length;
  }

  /**
   * The owner of `keyPosition`, or, when `accept` refuses it, the next distinct member clockwise
   * that `accept` admits (so a down member's keys spread over its successors, not onto one).
   */
  owner(keyPosition: number, accept: (id: string) => boolean = () => true): string | undefined {
    const points = this.#points;
    if (points.length === 0) return undefined;
    let low = 0;
    let high = points.length;
    while (low < high) {
      const middle = (low + high) >>> 1;
      if (points[middle]!.position < keyPosition) low = middle + 1;
      else high = middle;
    }
    const refused = new Set<string>();
    for (let step = 0; step < points.length; step += 1) {
      const id = points[(low + step) % points.length]!.id;
      if (refused.has(id)) continue;
      if (accept(id)) return id;
      refused.add(id);
    }
    return undefined;
  }
}
