/**
 * What a leader knows about each follower's log, and the flow control of appends to it.
 *
 * - probe: the leader does not know where the follower's log ends; one append at a time, then
 *   wait for an answer (or a heartbeat response) before sending the next.
 * - replicate: the follower is keeping up; appends are pipelined optimistically up to a bounded
 *   window of unacknowledged messages (and bytes), which caps memory and retransmission.
 * - snapshot: the follower needs a snapshot; nothing is sent until it is acknowledged or the
 *   attempt times out (snapshots are sent whole and may be lost).
 */
import type { NodeId } from './types.ts';

export type ProgressState = 'probe' | 'replicate' | 'snapshot';

/** A bounded window of in-flight appends, identified by the last index each one carried. */
export class InflightWindow {
  private readonly maxMessages: number;
  private readonly maxBytes: number;
  private readonly lastIndexes: number[] = [];
  private readonly sizes: number[] = [];
  private bytes = 0;

  constructor(maxMessages: number, maxBytes: number) {
    this.maxMessages = maxMessages;
    this.maxBytes = maxBytes;
  }

  get count(): number {
    return this.lastIndexes.length;
  }

  full(): boolean {
    return this.lastIndexes.length >= this.maxMessages || (this.maxBytes > 0 && this.bytes >= this.maxBytes);
  }

  add(lastIndex: number, size: number): void {
    this.lastIndexes.push(lastIndex);
    this.sizes.push(size);
    this.bytes += size;
  }

  /** Frees every message whose entries are now acknowledged (last index ≤ `index`). */
  freeUpTo(index: number): void {
    let freed = 0;
    while (freed < this.lastIndexes.length && this.lastIndexes[freed]! <= index) {
      this.bytes -= this.sizes[freed]!;
      freed += 1;
    }
    if (freed > 0) {
      this.lastIndexes.splice(0, freed);
      this.sizes.splice(0, freed);
    }
  }

  /** Frees the oldest message: a heartbeat answer shows the follower is alive, so try again. */
  freeFirst(): void {
    if (this.lastIndexes.length === 0) return;
    this.bytes -= this.sizes.shift()!;
    this.lastIndexes.shift();
  }

  reset(): void {
    this.lastIndexes.length = 0;
    this.sizes.length = 0;
    this.bytes = 0;
  }
}

export class Progress {
  readonly id: NodeId;
  /** Highest index known to be replicated on the follower. */
  match = 0;
  /** Next index to send. */
  next: number;
  state: ProgressState = 'probe';
  /** Probe state: an append is outstanding, wait for an answer before sending another. */
  probeSent = false;
  /** Snapshot state: index of the snapshot being installed. */
  pendingSnapshot = 0;
  /** Leader ticks spent waiting in snapshot state. */
  snapshotTicks = 0;
  /** Heard from since the last check-quorum round. */
  recentActive = false;
  readonly inflight: InflightWindow;

  constructor(id: NodeId, next: number, maxInflightMessages: number, maxInflightBytes: number) {
    this.id = id;
    this.next = next;
    this.inflight = new InflightWindow(maxInflightMessages, maxInflightBytes);
  }

  becomeProbe(): void {
    // Leaving snapshot state, the follower has at least the snapshot: probe just after it.
    const from =
      this.state === 'snapshot' ? Math.max(this.match + 1, this.pendingSnapshot + 1) : this.match + 1;
    this.state = 'probe';
    this.next = from;
    this.probeSent = false;
    this.pendingSnapshot = 0;
    this.snapshotTicks = 0;
    this.inflight.reset();
  }

  becomeReplicate(): void {
    this.state = 'replicate';
    this.next = this.match + 1;
    this.probeSent = false;
    this.pendingSnapshot = 0;
    this.inflight.reset();
  }

  becomeSnapshot(snapshotIndex: number): void {
    this.state = 'snapshot';
    this.pendingSnapshot = snapshotIndex;
    this.snapshotTicks = 0;
    this.probeSent = false;
    this.inflight.reset();
  }

  /** An acknowledgement up to `index`; false when it tells nothing new (stale or duplicate). */
  maybeUpdate(index: number): boolean {
    let updated = false;
    if (index > this.match) {
      this.match = index;
      this.probeSent = false;
      updated = true;
    }
    if (this.next < index + 1) this.next = index + 1;
    return updated;
  }

  /**
   * A rejection of the append after `rejected`. `probeHint` is the leader's guess of the last
   * matching index derived from the follower's conflict hint. False when the rejection is stale.
   */
  maybeDecreaseTo(rejected: number, probeHint: number): boolean {
    if (this.state === 'replicate') {
      if (rejected <= this.match) return false; // an answer to an old message; we already know more
      this.next = this.match + 1;
      return true;
    }
    if (this.next - 1 !== rejected) return false; // not an answer to the probe we are waiting for
    this.next = Math.max(Math.min(rejected, probeHint + 1), this.match + 1);
    this.probeSent = false;
    return true;
  }

  isPaused(): boolean {
    if (this.state === 'probe') return this.probeSent;
    if (this.state === 'replicate') return this.inflight.full();
    return true;
  }

  /** Records an append just sent with entries up to `lastIndex` (none when `lastIndex` is undefined). */
  sentEntries(lastIndex: number | undefined, size: number): void {
    if (this.state === 'replicate') {
      if (lastIndex !== undefined) {
        this.next = lastIndex + 1;
        this.inflight.add(lastIndex, size);
      }
    } else if (this.state === 'probe') {
      this.probeSent = true;
    }
  }
}
