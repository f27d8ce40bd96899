/**
 * Application state machines the simulator replicates. Each must be deterministic: the same
 * entries applied in the same order give the same `digest()`, which the simulator compares
 * across replicas at identical applied indexes.
 */
import type { Entry } from '../types.ts';

export interface ReplicatedStateMachine {
  /** Applies one committed entry (noop and config entries too; most machines ignore them). */
  apply(entry: Entry): void;
  snapshot(): Uint8Array;
  restore(data: Uint8Array): void;
  /** A fingerprint of the whole state. */
  digest(): string;
  /** Compare digests every this many applied entries (1 = every entry; larger for costly digests). */
  readonly digestEvery: number;
  /** Extra invariants over one replica's state; throw an Error describing a violation. */
  checkInvariants?(): void;
}

const decoder = new TextDecoder();
const encoder = new TextEncoder();

/** FNV-1a over a string, chained onto a previous hash. */
export function chainHash(previous: number, value: string): number {
  let hash = previous >>> 0 || 0x811c9dc5;
  for (let position = 0; position < value.length; position++) {
    hash ^= value.charCodeAt(position);
    hash = Math.imul(hash, 0x01000193) >>> 0;
  }
  return hash;
}

/** The simplest replicated state: every normal entry's data appended to a list. */
export class AppendOnlyList implements ReplicatedStateMachine {
  readonly digestEvery = 1;
  values: string[] = [];
  private hash = 0;

  apply(entry: Entry): void {
    if (entry.kind !== 'normal') return;
    const value = decoder.decode(entry.data);
    this.values.push(value);
    this.hash = chainHash(this.hash, value);
  }

  snapshot(): Uint8Array {
    return encoder.encode(JSON.stringify(this.values));
  }

  restore(data: Uint8Array): void {
    this.values = data.byteLength === 0 ? [] : (JSON.parse(decoder.decode(data)) as string[]);
    this.hash = 0;
    for (const value of this.values) this.hash = chainHash(this.hash, value);
  }

  digest(): string {
    return `${this.values.length}:${this.hash.toString(16)}`;
  }
}
