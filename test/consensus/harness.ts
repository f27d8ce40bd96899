/**
 * A hand-driven cluster for unit tests of the pure Raft core: every node persists instantly,
 * messages are delivered only when the test says so, and links can be cut one way or both.
 * (The randomized, fault-injecting counterpart is src/consensus/simulator.)
 */
import type {
  Entry,
  Message,
  NodeId,
  PersistedState,
  RaftOptions,
  ReadState,
} from '../../src/consensus/index.ts';
import { RaftNode } from '../../src/consensus/index.ts';
import { createRandom } from '../../src/consensus/simulator/random.ts';

export const text = (value: string): Uint8Array => new TextEncoder().encode(value);
export const decode = (data: Uint8Array): string => new TextDecoder().decode(data);

export class TestCluster {
  readonly nodes = new Map<NodeId, RaftNode>();
  readonly storage = new Map<NodeId, PersistedState>();
  readonly applied = new Map<NodeId, Entry[]>();
  readonly reads = new Map<NodeId, ReadState[]>();
  readonly inFlight: Message[] = [];
  /** Messages delivered so far (for assertions on what was sent). */
  readonly sent: Message[] = [];
  private readonly blocked = new Set<string>();
  private readonly options: Partial<RaftOptions>;
  private readonly random = createRandom(7);
  /** Optional extra filter: return false to drop a message, or a message to deliver instead. */
  filter: ((message: Message) => boolean | Message) | undefined;

  constructor(ids: NodeId[], options: Partial<RaftOptions> = {}, voters: NodeId[] = ids) {
    this.options = options;
    for (const id of ids) this.start(id, voters);
    // Apply the bootstrap entry: a node with an unapplied membership change does not campaign.
    this.drainAll();
  }

  start(id: NodeId, voters: NodeId[], options: Partial<RaftOptions> = {}): RaftNode {
    const random = this.random.fork();
    const stored = this.storage.get(id);
    const node = new RaftNode({
      ...this.options,
      ...options,
      id,
      voters,
      random: () => random.next(),
      ...(stored ? { storage: structuredClone(stored) } : {}),
    });
    if (!stored) this.storage.set(id, { hardState: { term: 0, vote: null, commit: 0 }, entries: [] });
    this.nodes.set(id, node);
    this.applied.set(id, this.applied.get(id) ?? []);
    this.reads.set(id, []);
    return node;
  }

  /** Crash and restart from what was persisted (the application replays from the snapshot). */
  restart(id: NodeId, voters: NodeId[]): RaftNode {
    const stored = this.storage.get(id)!;
    this.applied.set(
      id,
      (this.applied.get(id) ?? []).filter((entry) => entry.index <= (stored.snapshot?.meta.index ?? 0)),
    );
    const node = this.start(id, voters);
    this.drain(id);
    return node;
  }

  node(id: NodeId): RaftNode {
    return this.nodes.get(id)!;
  }

  /** Runs every Ready of one node: persist, queue messages, apply, advance. */
  drain(id: NodeId): void {
    const node = this.node(id);
    for (let ready = node.ready(); ready; ready = node.ready()) {
      const stored = this.storage.get(id)!;
      if (ready.snapshot) {
        stored.snapshot = ready.snapshot;
        stored.entries = stored.entries.filter((entry) => entry.index > ready.snapshot!.meta.index);
        this.applied.set(id, []);
      }
      if (ready.entries.length > 0) {
        const first = ready.entries[0]!.index;
        stored.entries = stored.entries.filter((entry) => entry.index < first).concat(ready.entries);
      }
      if (ready.hardState) stored.hardState = { ...ready.hardState };
      this.inFlight.push(...ready.messages);
      this.applied.get(id)!.push(...ready.committedEntries);
      this.reads.get(id)!.push(...ready.readStates);
      node.advance(ready);
    }
  }

  drainAll(): void {
    for (const id of this.nodes.keys()) this.drain(id);
  }

  cut(from: NodeId, to: NodeId): void {
    this.blocked.add(`${from}>${to}`);
  }

  isolate(id: NodeId): void {
    for (const other of this.nodes.keys()) {
      if (other === id) continue;
      this.cut(id, other);
      this.cut(other, id);
    }
  }

  heal(): void {
    this.blocked.clear();
    this.filter = undefined;
  }

  private deliverable(message: Message): Message | undefined {
    if (this.blocked.has(`${message.from}>${message.to}`)) return undefined;
    if (!this.nodes.has(message.to)) return undefined;
    const verdict = this.filter ? this.filter(message) : true;
    if (verdict === false) return undefined;
    return verdict === true ? message : verdict;
  }

  /** Delivers messages (and the Readies they cause) until the cluster is quiet. */
  flush(maxMessages = 100_000): void {
    this.drainAll();
    let delivered = 0;
    while (this.inFlight.length > 0) {
      const message = this.deliverable(this.inFlight.shift()!);
      if (!message) continue;
      this.sent.push(message);
      this.node(message.to).step(message);
      this.drain(message.to);
      delivered += 1;
      if (delivered > maxMessages) throw new Error('cluster did not quiesce');
    }
  }

  tick(id: NodeId, times = 1): void {
    for (let count = 0; count < times; count++) this.node(id).tick();
    this.drain(id);
  }

  /** Ticks every node `times` times, flushing messages after each round. */
  tickAll(times = 1): void {
    for (let count = 0; count < times; count++) {
      for (const id of this.nodes.keys()) this.node(id).tick();
      this.flush();
    }
  }

  elect(id: NodeId): void {
    this.node(id).campaign();
    this.flush();
  }

  leaders(): NodeId[] {
    return [...this.nodes.values()].filter((node) => node.status().role === 'leader').map((node) => node.id);
  }

  propose(id: NodeId, value: string): void {
    this.node(id).propose(text(value));
    this.flush();
  }

  appliedValues(id: NodeId): string[] {
    return this.applied
      .get(id)!
      .filter((entry) => entry.kind === 'normal')
      .map((entry) => decode(entry.data));
  }
}
