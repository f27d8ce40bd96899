/**
 * RaftHost: the runtime around the pure Raft core (`RaftNode`). It owns the clock (ticks, applied
 * when due rather than by a periodic timer), the disk (`RaftStorage`), the network (the
 * authenticated transport) and the replicated application, and runs the core's Ready loop
 * exactly as `src/consensus/ready.ts` prescribes: persist (fsync when required), then send,
 * then apply, then advance.
 *
 * What it adds on top of the core:
 * - proposals as promises: `propose(data)` resolves with what the application returned when it
 *   applied that entry, or rejects with PF_ERR_PROPOSAL_DROPPED when another entry took the
 *   index (a leader change) or the outcome stayed unknown too long;
 * - linearizable reads: `read()` batches callers into one ReadIndex round and resolves once the
 *   application has applied up to the confirmed index;
 * - periodic snapshots and log compaction, InstallSnapshot on followers;
 * - leadership transfer (for graceful shutdown) and one-at-a-time membership changes, with the
 *   new member's address replicated through the log so every node can reach it;
 * - "hello" payloads so every node knows where the others serve clients (redirect hints).
 *
 * Guarantee: nothing a Ready says to send leaves before what it says to persist is fsynced; an
 * entry is applied only once committed; a storage failure stops the node (it can no longer keep
 * the promises its votes and acknowledgements made).
 */
import { type ConfChange, type Entry, type NodeId, RaftNode, type Ready } from '../../consensus/index.ts';
import {
  createTransport,
  type PeerAddress,
  type PeerState,
  type Transport,
  type TransportOptions,
} from '../../consensus/transport/index.ts';
import { isPixelfleetError, PixelfleetError } from '../../errors/index.ts';
import type { QueueLogger } from '../embedded/index.ts';
import { ByteReader, ByteWriter, bytesText, textBytes } from './binary.ts';
import { openRaftStorage, type RaftStorage } from './storage.ts';
import { decodePayload, encodeHello, encodeRaftMessage } from './wire.ts';

/** The state machine a host replicates. Every replica applies the same entries in the same order. */
export interface ReplicatedApplication {
  /** Applies one committed entry's data; the result goes to whoever proposed it. Must not throw. */
  apply(data: Uint8Array, position: { index: number; term: number }): unknown;
  /**
   * Captures the application's whole state as of the last applied entry, cheaply and at once,
   * and returns a function that serializes that capture later (it may spread the work over
   * several event-loop turns so a large state never stalls heartbeats). Later applies must not
   * change what was captured.
   */
  captureSnapshot(): () => Promise<Uint8Array>;
  /** Replaces the whole state (a snapshot from disk or from the leader). */
  restore(data: Uint8Array): void;
}

export interface RaftHostOptions {
  id: NodeId;
  /** Founding voters (including this node). A node joining an existing cluster passes []. */
  voters: NodeId[];
  /** Where this node accepts links from its peers. */
  listen: PeerAddress;
  /** How to reach the other nodes (voters and joiners), by id. */
  peers: Record<NodeId, PeerAddress>;
  /** Shared cluster secret (at least 16 bytes); authenticates every link. */
  secret: string | Uint8Array;
  /** Directory of this node's Raft log. */
  directory: string;
  application: ReplicatedApplication;
  /** host:port where this node serves queue clients, told to peers for redirects. */
  clientAddress?: string | null;
  /**
   * Milliseconds per Raft tick. Default 25: twenty distinct election timeouts (with the pre-vote
   * hold in #receive, two followers rarely campaign at once). Ticks do not wake the node by
   * themselves (see #catchUp): what wakes it is a heartbeat, every `heartbeatTick` on the leader
   * and on each follower, and on a small VM a wake-up is tens of microseconds of CPU.
   */
  tickMs?: number;
  /**
   * Ticks of leader silence before an election (randomized in [n, 2n)). Default 20 (500–1000
   * ms): five heartbeats at least, so a leader delayed by a loaded machine is not deposed.
   */
  electionTick?: number;
  /**
   * Ticks between heartbeats. Default 4 (100 ms). Each heartbeat is a wake-up of every node
   * and most of what an idle follower costs: at 50 ms an idle three-node queue took 6.4 % of
   * a core, at 100 ms 4.8 % (2 cores, CPU from /proc/<pid>/task/<tid>/schedstat over 10 s).
   */
  heartbeatTick?: number;
  /**
   * Snapshot and compact the log once this many bytes of entries were applied since the last
   * snapshot, and at least as many as the last snapshot's size (amortised O(1) per entry).
   * Default 16 MiB.
   */
  snapshotEveryBytes?: number;
  /** A proposal whose outcome is still unknown after this long is failed (retryable). Default 5000. */
  proposalTimeoutMs?: number;
  /** A linearizable read not confirmed within this long fails (retryable). Default 2000. */
  readTimeoutMs?: number;
  random?: () => number;
  logger?: QueueLogger;
  /** Extra transport settings (reconnect delays, frame limits...). */
  transport?: Partial<Omit<TransportOptions, 'nodeId' | 'listen' | 'peers' | 'secret' | 'onMessage'>>;
}

export interface RoleChange {
  role: 'follower' | 'preCandidate' | 'candidate' | 'leader';
  leader: NodeId | null;
  term: number;
}

export interface HostListener {
  roleChanged?(change: RoleChange): void;
  /** After each batch of committed entries was applied. */
  applied?(index: number): void;
  /** The node stopped for good (its disk failed, or applying the log failed). */
  failed?(error: Error): void;
}

export interface FollowerLag {
  match: number;
  next: number;
  /** Entries the follower is known to miss. */
  lag: number;
  state: 'probe' | 'replicate' | 'snapshot';
  active: boolean;
  link: PeerState | 'unknown';
}

export interface HostStatus {
  id: NodeId;
  term: number;
  role: RoleChange['role'];
  leader: NodeId | null;
  leaderClientAddress: string | null;
  commit: number;
  applied: number;
  firstIndex: number;
  lastIndex: number;
  snapshotIndex: number;
  voters: NodeId[];
  /** Snapshots received from a leader (InstallSnapshot) since this process started. */
  snapshotsInstalled: number;
  /** Leader only: each follower's match index and lag. */
  followers: Record<NodeId, FollowerLag>;
  peers: Record<NodeId, { link: PeerState; clientAddress: string | null }>;
  storage: ReturnType<RaftStorage['stats']>;
}

interface InflightProposal {
  term: number;
  proposedAt: number;
  resolve(result: unknown): void;
  reject(error: Error): void;
}

interface ReadBatch {
  callers: Array<{ resolve(): void; reject(error: Error): void }>;
  timer: NodeJS.Timeout;
}

const APPLICATION_ENTRY = 0;
const MEMBER_ENTRY = 1;
const silentLogger: QueueLogger = { info() {}, warn() {}, error() {} };

function positiveInteger(name: string, value: number | undefined, fallback: number): number {
  const resolved = value ?? fallback;
  if (!Number.isSafeInteger(resolved) || resolved < 1) {
    throw new RangeError(`${name} must be a positive integer, got ${String(value)}`);
  }
  return resolved;
}

/** Opens the node's storage, restores the application from it and starts the host. */
export async function startRaftHost(options: RaftHostOptions): Promise<RaftHost> {
  if (typeof options?.directory !== 'string' || options.directory === '') {
    throw new RangeError('directory must be a non-empty path');
  }
  let host: RaftHost | undefined;
  const { storage, recovery } = await openRaftStorage({
    directory: options.directory,
    onError: (error) => host?.diskFailed(error),
  });
  try {
    host = new RaftHost(options, storage);
    if (recovery.truncation) {
      (options.logger ?? silentLogger).warn(
        { truncatedBytes: recovery.truncatedBytes, ...recovery.truncation },
        'raft log had a torn tail (a write cut short by a crash); truncated it',
      );
    }
    await host.start();
    return host;
  } catch (error) {
    if (host) await host.close().catch(() => {});
    else await storage.close().catch(() => {});
    throw error;
  }
}

export class RaftHost {
  readonly id: NodeId;
  readonly #core: RaftNode;
  readonly #storage: RaftStorage;
  readonly #transport: Transport;
  readonly #application: ReplicatedApplication;
  readonly #logger: QueueLogger;
  readonly #tickMs: number;
  readonly #electionTick: number;
  readonly #snapshotEveryBytes: number;
  readonly #proposalTimeoutMs: number;
  readonly #readTimeoutMs: number;
  #clientAddress: string | null;
  readonly #listeners = new Set<HostListener>();
  readonly #inflight = new Map<number, InflightProposal>();
  readonly #reads = new Map<string, ReadBatch>();
  #readQueue: ReadBatch['callers'] = [];
  #readFlushScheduled = false;
  #readSequence = 0;
  /** Callers waiting for the application to reach an index. */
  #appliedWaiters: Array<{ index: number; resolve(): void }> = [];
  /** Replicated addresses of members added at run time. */
  readonly #members = new Map<NodeId, PeerAddress>();
  readonly #peerClientAddresses = new Map<NodeId, string | null>();
  readonly #peerLinks = new Map<NodeId, PeerState>();
  #role: RoleChange = { role: 'follower', leader: null, term: 0 };
  #applied = 0;
  #appliedTerm = 0;
  #appliedBytesSinceSnapshot = 0;
  #lastSnapshotBytes = 0;
  #compacting = false;
  #snapshotsInstalled = 0;
  /** The one timer: set for the next tick that does more than count (see #arm). */
  #timer: NodeJS.Timeout | undefined;
  #timerAt = Number.POSITIVE_INFINITY;
  /** When the next tick is due (performance.now() time); ticks are applied late, in #catchUp. */
  #nextTickAt = 0;
  #ticks = 0;
  #holdElectionTimerUntil = 0;
  #loopScheduled = false;
  #loop: Promise<void> | undefined;
  #started = false;
  #closed = false;
  #failure: Error | undefined;

  /** Use `startRaftHost`. */
  constructor(options: RaftHostOptions, storage: RaftStorage) {
    this.id = options.id;
    this.#storage = storage;
    this.#application = options.application;
    this.#logger = options.logger ?? silentLogger;
    this.#tickMs = positiveInteger('tickMs', options.tickMs, 25);
    this.#electionTick = positiveInteger('electionTick', options.electionTick, 20);
    this.#snapshotEveryBytes = positiveInteger(
      'snapshotEveryBytes',
      options.snapshotEveryBytes,
      16 * 1024 * 1024,
    );
    this.#proposalTimeoutMs = positiveInteger('proposalTimeoutMs', options.proposalTimeoutMs, 5000);
    this.#readTimeoutMs = positiveInteger('readTimeoutMs', options.readTimeoutMs, 2000);
    this.#clientAddress = options.clientAddress ?? null;
    const persisted = storage.persistedState();
    if (persisted.snapshot) this.#restoreSnapshot(persisted.snapshot.data);
    this.#applied = persisted.snapshot?.meta.index ?? 0;
    this.#appliedTerm = persisted.snapshot?.meta.term ?? 0;
    this.#core = new RaftNode({
      id: options.id,
      voters: options.voters,
      random: options.random ?? Math.random,
      electionTick: this.#electionTick,
      heartbeatTick: positiveInteger('heartbeatTick', options.heartbeatTick, 4),
      storage: persisted,
      // Client batches are already large; keep appends to a follower within a few MiB.
      maxSizePerMessage: 4 * 1024 * 1024,
      maxInflightMessages: 64,
    });
    this.#transport = createTransport({
      reconnectInitialDelayMs: 20,
      reconnectMaxDelayMs: 500,
      ...options.transport,
      nodeId: options.id,
      listen: options.listen,
      peers: options.peers,
      secret: options.secret,
      onMessage: (from, payload) => this.#receive(from, payload),
      onPeerStateChange: (peer, state) => {
        this.#peerLinks.set(peer, state);
        // Tell a peer where we serve clients whenever a link to it (re)connects.
        if (state === 'connected')
          this.#transport.send(peer, encodeHello({ clientAddress: this.#clientAddress }));
        options.transport?.onPeerStateChange?.(peer, state);
      },
    });
  }

  async start(): Promise<void> {
    if (this.#started) return;
    this.#started = true;
    await this.#transport.start();
    this.#nextTickAt = performance.now() + this.#tickMs;
    this.#campaignIfAlone();
    this.#schedule();
    this.#arm();
  }

  /** A lone voter need not wait out an election timeout to lead. */
  #campaignIfAlone(): void {
    if (this.#role.role === 'leader') return;
    const voters = this.#core.status().voters;
    if (voters.length === 1 && voters[0] === this.id) this.#core.campaign();
  }

  subscribe(listener: HostListener): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  get role(): RoleChange {
    return this.#role;
  }

  get isLeader(): boolean {
    return this.#role.role === 'leader' && !this.#closed && this.#failure === undefined;
  }

  get applied(): number {
    return this.#applied;
  }

  /**
   * True when this node leads and has applied an entry of its own term: everything committed
   * before its election is then applied here, so its local state is current (Raft §8).
   */
  get leaderCaughtUp(): boolean {
    return this.isLeader && this.#appliedTerm === this.#role.term;
  }

  get healthy(): boolean {
    return !this.#closed && this.#failure === undefined;
  }

  /** Tells peers (now and on every reconnect) where this node serves clients. */
  advertiseClientAddress(address: string | null): void {
    this.#clientAddress = address;
    for (const [peer, state] of this.#peerLinks) {
      if (state === 'connected') this.#transport.send(peer, encodeHello({ clientAddress: address }));
    }
  }

  /** Where the leader (or `id`) serves clients, as told by its hello; null when unknown. */
  clientAddressOf(id: NodeId | null): string | null {
    if (id === null) return null;
    if (id === this.id) return this.#clientAddress;
    return this.#peerClientAddresses.get(id) ?? null;
  }

  /** The error to answer a write with when this node cannot lead it. */
  notLeaderError(): PixelfleetError {
    const leader = this.#role.leader === this.id ? null : this.#role.leader;
    return new PixelfleetError(
      'PF_ERR_NOT_LEADER',
      leader === null
        ? `queue node ${this.id} is not the leader and knows no leader yet; retry shortly`
        : `queue node ${this.id} is not the leader; the leader is ${leader}`,
      { extensions: { leader, leaderAddress: this.clientAddressOf(leader) } },
    );
  }

  /**
   * Proposes application data. Resolves with the application's result for that entry once it is
   * committed and applied here. Throws PF_ERR_NOT_LEADER on a follower.
   */
  propose(data: Uint8Array): Promise<unknown> {
    this.#assertRunning();
    const envelope = new Uint8Array(data.byteLength + 1);
    envelope[0] = APPLICATION_ENTRY;
    envelope.set(data, 1);
    return this.#track(() => this.#core.propose(envelope));
  }

  /**
   * Resolves once a read at this moment is linearizable: leadership was confirmed by a quorum
   * after the call and the application has applied everything committed before it. Works on a
   * follower too (the core forwards the request to the leader).
   */
  read(): Promise<void> {
    this.#assertRunning();
    return new Promise((resolve, reject) => {
      this.#readQueue.push({ resolve, reject });
      if (this.#readFlushScheduled) return;
      this.#readFlushScheduled = true;
      setImmediate(() => this.#flushReads());
    });
  }

  /** Hands leadership to the most up-to-date follower (or `to`). Resolves with the new leader, or null. */
  async transferLeadership(to?: NodeId): Promise<NodeId | null> {
    if (!this.isLeader) return this.#role.leader;
    const status = this.#core.status();
    let target = to;
    if (target === undefined) {
      let best = -1;
      for (const [id, follower] of Object.entries(status.progress)) {
        if (id === this.id || !follower.recentActive) continue;
        if (follower.match > best) {
          best = follower.match;
          target = id;
        }
      }
    }
    if (target === undefined) return null;
    this.#core.transferLeadership(target);
    this.#schedule();
    const until = performance.now() + this.#electionTick * this.#tickMs * 3;
    while (this.#role.role === 'leader' && performance.now() < until && this.healthy) {
      await new Promise((resolve) => setTimeout(resolve, this.#tickMs));
    }
    return this.#role.role === 'leader' ? null : this.#role.leader;
  }

  /**
   * Adds a voter (leader only): its address is replicated first, so every node can reach it,
   * then the membership change. Start the new node with `voters: []` and this cluster as peers.
   */
  async addMember(id: NodeId, address: PeerAddress): Promise<void> {
    this.#assertRunning();
    const body = textBytes(JSON.stringify({ id, host: address.host, port: address.port }));
    const envelope = new Uint8Array(body.byteLength + 1);
    envelope[0] = MEMBER_ENTRY;
    envelope.set(body, 1);
    await this.#track(() => this.#core.propose(envelope));
    await this.#proposeConfChange({ add: id });
  }

  /** Removes a voter (leader only). Removing the leader itself makes it step down. */
  async removeMember(id: NodeId): Promise<void> {
    await this.#proposeConfChange({ remove: id });
  }

  status(): HostStatus {
    const core = this.#core.status();
    const followers: Record<NodeId, FollowerLag> = {};
    for (const [id, progress] of Object.entries(core.progress)) {
      if (id === this.id) continue;
      followers[id] = {
        match: progress.match,
        next: progress.next,
        lag: Math.max(0, core.lastIndex - progress.match),
        state: progress.state,
        active: progress.recentActive,
        link: this.#peerLinks.get(id) ?? 'unknown',
      };
    }
    const peers: HostStatus['peers'] = {};
    const transportStats = this.#transport.stats();
    for (const [id, peer] of Object.entries(transportStats.peers)) {
      peers[id] = { link: peer.state, clientAddress: this.#peerClientAddresses.get(id) ?? null };
    }
    return {
      id: this.id,
      term: core.term,
      role: core.role,
      leader: core.leader,
      leaderClientAddress: this.clientAddressOf(core.leader),
      commit: core.commit,
      applied: this.#applied,
      firstIndex: core.firstIndex,
      lastIndex: core.lastIndex,
      snapshotIndex: core.snapshotIndex,
      voters: core.voters,
      snapshotsInstalled: this.#snapshotsInstalled,
      followers,
      peers,
      storage: this.#storage.stats(),
    };
  }

  /** Called by the storage when a write or fsync fails: the node stops taking part. */
  diskFailed(error: Error): void {
    this.#halt(error, 'raft storage failed; this node stops');
  }

  /**
   * Stops the node for good: after a disk failure, or when applying or persisting a Ready threw
   * (a replica must stop rather than diverge from the others).
   */
  #halt(error: Error, reason: string): void {
    if (this.#failure || this.#closed) return;
    this.#failure = error;
    this.#logger.error({ err: error, node: this.id }, reason);
    clearTimeout(this.#timer);
    const unavailable = new PixelfleetError(
      'PF_ERR_QUEUE_UNAVAILABLE',
      'the queue node stopped after a failure',
      {
        cause: error,
      },
    );
    this.#rejectEverything(unavailable);
    // A node that cannot persist must not vote or acknowledge: cut it off.
    this.#transport.close().catch(() => {});
    for (const listener of this.#listeners) listener.failed?.(error);
  }

  /** Stops ticking and networking, flushes the log and releases the data directory. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    clearTimeout(this.#timer);
    await this.#loop;
    this.#rejectEverything(new PixelfleetError('PF_ERR_QUEUE_CLOSED', 'the queue node is closed'));
    await this.#transport.close();
    await this.#storage.close();
  }

  // ---- internals ----

  #assertRunning(): void {
    if (this.#closed) throw new PixelfleetError('PF_ERR_QUEUE_CLOSED', 'the queue node is closed');
    if (this.#failure) {
      throw new PixelfleetError('PF_ERR_QUEUE_UNAVAILABLE', 'the queue node stopped after a failure', {
        cause: this.#failure,
      });
    }
  }

  #track(propose: () => { index: number; term: number }): Promise<unknown> {
    let ticket: { index: number; term: number };
    try {
      ticket = propose();
    } catch (error) {
      if (isPixelfleetError(error, 'PF_ERR_NOT_LEADER')) return Promise.reject(this.notLeaderError());
      const transferee = isPixelfleetError(error, 'PF_ERR_PROPOSAL_DROPPED')
        ? error.extensions.leader
        : undefined;
      if (typeof transferee === 'string' && error instanceof Error) {
        // A leadership transfer is under way: point the client at the node taking over.
        return Promise.reject(
          new PixelfleetError('PF_ERR_PROPOSAL_DROPPED', error.message, {
            cause: error,
            extensions: { leader: transferee, leaderAddress: this.clientAddressOf(transferee) },
          }),
        );
      }
      return Promise.reject(error);
    }
    this.#schedule();
    return new Promise((resolve, reject) => {
      this.#inflight.set(ticket.index, { term: ticket.term, proposedAt: performance.now(), resolve, reject });
    });
  }

  async #proposeConfChange(change: ConfChange): Promise<void> {
    this.#assertRunning();
    await this.#track(() => this.#core.proposeConfChange(change));
  }

  /**
   * Applies the ticks that came due since the last call. The host keeps no periodic timer: an
   * idle follower would wake 40 times a second only to count towards an election timeout that
   * each heartbeat resets, and on a small VM every wake-up costs tens of microseconds of CPU.
   * Instead ticks are applied when something happens — a message arrives (before it is stepped,
   * so the core judges it with its timers up to date) or the one timer fires at the next tick
   * that does more than count (`#arm`). The core sees the same ticks in the same order as with
   * a periodic timer; only when they are delivered changes.
   */
  #catchUp(now = performance.now()): void {
    if (now < this.#nextTickAt) return;
    let due = Math.floor((now - this.#nextTickAt) / this.#tickMs) + 1;
    // A process that was stopped for long: ticks past two election timeouts change nothing more.
    const cap = 2 * this.#electionTick + 2;
    if (due > cap) {
      this.#nextTickAt += (due - cap) * this.#tickMs;
      due = cap;
    }
    const expireEvery = Math.max(1, Math.round(250 / this.#tickMs));
    for (let i = 0; i < due; i++) {
      const at = this.#nextTickAt;
      this.#nextTickAt += this.#tickMs;
      // See #receive: a peer is running an election; do not start a competing one just now.
      if (this.#role.role === 'leader' || at >= this.#holdElectionTimerUntil) this.#core.tick();
      this.#ticks++;
      // Every ~250 ms: fail proposals whose fate is unknown for too long (e.g. a deposed leader).
      if (this.#ticks % expireEvery === 0) this.#expireProposals();
    }
    // Most ticks change nothing (a follower counting towards its election timeout): no Ready
    // loop then. Without a leader the loop runs every tick anyway (#campaignIfAlone lives there).
    if (this.#core.hasReady() || (this.#role.role === 'follower' && this.#role.leader === null)) {
      this.#schedule();
    }
  }

  /**
   * Sets the timer for the next tick that can act: the core's next timeout, every tick while no
   * leader is known, and within ~250 ms while proposals are in flight (their expiry).
   */
  #arm(): void {
    if (this.#closed || this.#failure || !this.#started) return;
    let ticks = this.#core.ticksUntilTimeout();
    if (this.#role.role === 'follower' && this.#role.leader === null) ticks = 1;
    if (this.#inflight.size > 0) ticks = Math.min(ticks, Math.max(1, Math.round(250 / this.#tickMs)));
    // A node that never campaigns still looks at its proposals now and then.
    ticks = Math.min(ticks, 4 * this.#electionTick);
    const at = this.#nextTickAt + (ticks - 1) * this.#tickMs;
    if (at === this.#timerAt && this.#timer !== undefined) return;
    clearTimeout(this.#timer);
    this.#timerAt = at;
    this.#timer = setTimeout(
      () => {
        this.#timer = undefined;
        this.#timerAt = Number.POSITIVE_INFINITY;
        if (this.#closed || this.#failure) return;
        // A timer can fire up to a few milliseconds before `at` by performance.now(): Node
        // counts its delay from the event loop's cached clock, which lags while a callback
        // runs. The tick it was set for is due all the same; waiting for the clock would
        // cost one or two more wake-ups of a millisecond each, every tick that acts.
        this.#catchUp(Math.max(performance.now(), at));
        this.#arm();
      },
      Math.max(0, at - performance.now()),
    );
    this.#timer.unref();
  }

  #receive(from: NodeId, payload: Uint8Array): void {
    if (this.#closed || this.#failure) return;
    let decoded: ReturnType<typeof decodePayload>;
    try {
      decoded = decodePayload(payload);
    } catch (error) {
      this.#logger.warn({ err: error, from }, 'dropped a malformed payload from a peer');
      return;
    }
    if (decoded.kind === 'hello') {
      this.#peerClientAddresses.set(from, decoded.hello.clientAddress);
      return;
    }
    const message = decoded.message;
    // The sender is authenticated by the transport; a message claiming another sender is forged.
    if (message.from !== from || message.to !== this.id) return;
    this.#catchUp();
    if (message.type === 'preVote' && this.#role.role === 'follower') {
      // Split votes: when the leader dies, both followers time out within a few ms of each other
      // in ~1 election of 5; both campaign, neither wins, and the retry costs another timeout.
      // A follower that hears a peer's pre-vote first holds its own election timer for half an
      // election timeout, so that peer's election can finish. Only liveness is affected, and
      // boundedly: a peer that cannot win (stale log) delays our campaign by at most this much.
      this.#holdElectionTimerUntil = performance.now() + (this.#electionTick * this.#tickMs) / 2;
    }
    this.#core.step(message);
    this.#schedule();
  }

  #schedule(): void {
    if (this.#loopScheduled || this.#loop !== undefined || this.#closed || this.#failure) return;
    this.#loopScheduled = true;
    setImmediate(() => {
      this.#loopScheduled = false;
      if (this.#loop !== undefined || this.#closed || this.#failure) return;
      this.#loop = this.#run().finally(() => {
        this.#loop = undefined;
        // Inputs that arrived during the last step are picked up by the next loop.
        if (this.#core.hasReady()) this.#schedule();
        // What ran may have moved the next timeout (a heartbeat reset it, a new role).
        else this.#arm();
      });
    });
  }

  async #run(): Promise<void> {
    for (;;) {
      if (this.#failure) return;
      const ready = this.#core.ready();
      if (ready === undefined) return;
      try {
        await this.#handle(ready);
      } catch (error) {
        const failure = error instanceof Error ? error : new Error(String(error));
        this.#halt(failure, 'raft node failed to persist or apply a Ready; this node stops');
        return;
      }
    }
  }

  async #handle(ready: Ready): Promise<void> {
    const durable = this.#storage.save(ready);
    if (durable !== undefined && (ready.mustSync || ready.snapshot !== undefined)) await durable;
    if (this.#failure) return;
    for (const message of ready.messages) this.#transport.send(message.to, encodeRaftMessage(message));
    if (ready.snapshot) {
      this.#snapshotsInstalled++;
      this.#logger.info(
        { node: this.id, index: ready.snapshot.meta.index, bytes: ready.snapshot.data.byteLength },
        'installed a snapshot from the leader',
      );
      this.#restoreSnapshot(ready.snapshot.data);
      this.#applied = ready.snapshot.meta.index;
      this.#appliedTerm = ready.snapshot.meta.term;
      this.#appliedBytesSinceSnapshot = 0;
      this.#lastSnapshotBytes = ready.snapshot.data.byteLength;
      // Our proposals the snapshot covers were either committed or replaced: we cannot tell.
      for (const [index, proposal] of this.#inflight) {
        if (index > ready.snapshot.meta.index) continue;
        this.#inflight.delete(index);
        proposal.reject(outcomeUnknown('a snapshot from the leader replaced the log'));
      }
    }
    for (const entry of ready.committedEntries) this.#apply(entry);
    for (const state of ready.readStates) this.#readConfirmed(state.context, state.index);
    // Role changes are reported after applying, so listeners see the entries committed before.
    const softState = ready.softState;
    this.#core.advance(ready);
    if (ready.committedEntries.length > 0 || ready.snapshot) {
      this.#releaseAppliedWaiters();
      for (const listener of this.#listeners) listener.applied?.(this.#applied);
    }
    const term = this.#core.basicStatus().term;
    if (softState !== undefined || term !== this.#role.term) {
      const previous = this.#role;
      const current = this.#core.basicStatus();
      this.#role = { role: current.role, leader: current.leader, term: current.term };
      if (previous.role !== this.#role.role || previous.leader !== this.#role.leader) {
        this.#roleChanged(previous);
      }
    }
    // The core refuses to campaign while a membership entry is unapplied (the bootstrap one).
    if (this.#role.role === 'follower' && this.#role.leader === null) this.#campaignIfAlone();
    this.#maybeCompact();
  }

  #apply(entry: Entry): void {
    if (entry.index <= this.#applied) return;
    this.#applied = entry.index;
    this.#appliedTerm = entry.term;
    this.#appliedBytesSinceSnapshot += entry.data.byteLength;
    let result: unknown;
    if (entry.kind === 'normal' && entry.data.byteLength > 0) {
      const tag = entry.data[0];
      const body = entry.data.subarray(1);
      if (tag === APPLICATION_ENTRY) result = this.#application.apply(body, entry);
      else if (tag === MEMBER_ENTRY) this.#applyMember(body);
    } else if (entry.kind === 'config') {
      this.#applyConfig(entry);
    }
    const proposal = this.#inflight.get(entry.index);
    if (proposal === undefined) return;
    this.#inflight.delete(entry.index);
    if (proposal.term === entry.term) proposal.resolve(result);
    else {
      proposal.reject(
        new PixelfleetError('PF_ERR_PROPOSAL_DROPPED', 'leadership changed before the proposal committed', {
          extensions: { outcomeUnknown: false },
        }),
      );
    }
  }

  #applyMember(body: Uint8Array): void {
    const member = JSON.parse(bytesText(body)) as { id: string; host: string; port: number };
    this.#members.set(member.id, { host: member.host, port: member.port });
  }

  #applyConfig(entry: Entry): void {
    let change: { add?: string; remove?: string };
    try {
      change = JSON.parse(bytesText(entry.data)) as typeof change;
    } catch {
      return;
    }
    if (typeof change.add === 'string' && change.add !== this.id) {
      const address = this.#members.get(change.add);
      const known = this.#transport.stats().peers[change.add];
      // Addresses configured locally win (they may route through a proxy or a private network).
      if (address && known === undefined) this.#transport.addPeer(change.add, address);
      this.#logger.info({ node: this.id, added: change.add, index: entry.index }, 'raft member added');
    } else if (typeof change.remove === 'string') {
      if (change.remove !== this.id) this.#transport.removePeer(change.remove);
      this.#logger.info({ node: this.id, removed: change.remove, index: entry.index }, 'raft member removed');
    }
  }

  #roleChanged(previous: RoleChange): void {
    const current = this.#role;
    this.#logger.info(
      { node: this.id, term: current.term, role: current.role, leader: current.leader, was: previous.role },
      current.role === 'leader' ? 'raft leader elected: this node leads' : 'raft role changed',
    );
    // Reads waiting on a leader that is gone will never be confirmed: fail them now (retryable).
    if (previous.leader !== current.leader) {
      for (const [context, batch] of this.#reads) {
        this.#reads.delete(context);
        clearTimeout(batch.timer);
        for (const caller of batch.callers) caller.reject(this.notLeaderError());
      }
    }
    for (const listener of this.#listeners) listener.roleChanged?.(current);
  }

  #flushReads(): void {
    this.#readFlushScheduled = false;
    const callers = this.#readQueue;
    this.#readQueue = [];
    if (callers.length === 0) return;
    const context = `${this.id}:${++this.#readSequence}`;
    try {
      this.#assertRunning();
      this.#core.readIndex(context);
    } catch (error) {
      const failure = isPixelfleetError(error, 'PF_ERR_NOT_LEADER') ? this.notLeaderError() : error;
      for (const caller of callers) caller.reject(failure as Error);
      return;
    }
    const timer = setTimeout(() => {
      this.#reads.delete(context);
      const error = new PixelfleetError('PF_ERR_PROPOSAL_DROPPED', 'the read was not confirmed in time', {
        extensions: { leader: this.#role.leader, leaderAddress: this.clientAddressOf(this.#role.leader) },
      });
      for (const caller of callers) caller.reject(error);
    }, this.#readTimeoutMs);
    timer.unref();
    this.#reads.set(context, { callers, timer });
    this.#schedule();
  }

  #readConfirmed(context: string, index: number): void {
    const batch = this.#reads.get(context);
    if (batch === undefined) return;
    this.#reads.delete(context);
    clearTimeout(batch.timer);
    const release = () => {
      for (const caller of batch.callers) caller.resolve();
    };
    if (this.#applied >= index) release();
    else this.#appliedWaiters.push({ index, resolve: release });
  }

  #releaseAppliedWaiters(): void {
    if (this.#appliedWaiters.length === 0) return;
    const waiting = this.#appliedWaiters;
    this.#appliedWaiters = [];
    for (const waiter of waiting) {
      if (waiter.index <= this.#applied) waiter.resolve();
      else this.#appliedWaiters.push(waiter);
    }
  }

  #expireProposals(): void {
    const cutoff = performance.now() - this.#proposalTimeoutMs;
    for (const [index, proposal] of this.#inflight) {
      if (proposal.proposedAt > cutoff) continue;
      this.#inflight.delete(index);
      proposal.reject(outcomeUnknown('the proposal did not commit in time'));
    }
  }

  #maybeCompact(): void {
    if (this.#compacting || this.#failure || this.#closed) return;
    if (this.#appliedBytesSinceSnapshot < Math.max(this.#snapshotEveryBytes, this.#lastSnapshotBytes)) return;
    const index = this.#applied;
    if (index <= this.#core.basicStatus().snapshotIndex) return;
    const started = performance.now();
    // Capture now (cheap, synchronous, exactly the state at `index`); serialize in the background.
    const members = textBytes(JSON.stringify(Object.fromEntries(this.#members)));
    const serialize = this.#application.captureSnapshot();
    this.#appliedBytesSinceSnapshot = 0;
    this.#compacting = true;
    const finish = (outcome: string, details: Record<string, unknown> = {}) => {
      this.#compacting = false;
      this.#logger.info(
        { node: this.id, index, ms: Math.round(performance.now() - started), ...details },
        outcome,
      );
    };
    serialize()
      .then((application) => {
        // A snapshot from the leader may have overtaken ours meanwhile.
        if (this.#closed || this.#failure || index <= this.#core.basicStatus().snapshotIndex) {
          finish('raft snapshot abandoned');
          return;
        }
        const writer = new ByteWriter(4 + members.byteLength + 4 + application.byteLength);
        writer.bytes(members);
        writer.bytes(application);
        const data = writer.finish();
        this.#lastSnapshotBytes = data.byteLength;
        const snapshot = this.#core.compact(index, data);
        return this.#storage
          .compact(snapshot)
          .then(() => finish('raft log compacted into a snapshot', { snapshotBytes: data.byteLength }));
      })
      .catch((error: unknown) => {
        // A storage failure also reaches diskFailed; anything else only costs this snapshot.
        this.#compacting = false;
        this.#logger.warn({ err: error, node: this.id, index }, 'raft snapshot failed');
      });
  }

  #restoreSnapshot(data: Uint8Array): void {
    const reader = new ByteReader(data, 'raft snapshot');
    const members = JSON.parse(bytesText(reader.bytes())) as Record<NodeId, PeerAddress>;
    this.#members.clear();
    for (const [id, address] of Object.entries(members)) this.#members.set(id, address);
    this.#application.restore(reader.bytes());
  }

  #rejectEverything(error: PixelfleetError): void {
    for (const proposal of this.#inflight.values()) proposal.reject(error);
    this.#inflight.clear();
    for (const batch of this.#reads.values()) {
      clearTimeout(batch.timer);
      for (const caller of batch.callers) caller.reject(error);
    }
    this.#reads.clear();
    for (const caller of this.#readQueue) caller.reject(error);
    this.#readQueue = [];
  }
}

function outcomeUnknown(reason: string): PixelfleetError {
  return new PixelfleetError('PF_ERR_PROPOSAL_DROPPED', `${reason}; it may or may not have been applied`, {
    extensions: { outcomeUnknown: true },
  });
}
