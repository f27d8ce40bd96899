/**
 * RaftNode: the Raft consensus algorithm as a pure, deterministic state machine. Ticks,
 * messages and client requests go in; a `Ready` (state to persist, messages to send, entries
 * to apply) comes out. There is no I/O, no timer and no randomness of its own: the host drives
 * time with `tick()` and injects `random()`. The host contract is documented in `ready.ts`.
 *
 * Guarantees (given a host that honours that contract): at most one leader per term; logs that
 * share an (index, term) are identical up to it; a leader holds every entry committed before its
 * term; an entry is applied at an index only once it is committed there, so all nodes apply the
 * same sequence. Included: pre-vote, check-quorum, fast log back-off, ReadIndex (and optional
 * lease) reads, snapshots and InstallSnapshot, leadership transfer, single-voter membership
 * changes, pipelined and batched appends with a bounded in-flight window.
 */
import { PixelfleetError } from '../errors/index.ts';
import {
  applyConfChangeTo,
  type ConfChange,
  type ConfigEntryData,
  decodeConfChange,
  encodeConfChange,
} from './confchange.ts';
import { type RaftOptions, type ResolvedRaftOptions, resolveRaftOptions } from './config.ts';
import { RaftLog } from './log.ts';
import {
  type AppendMessage,
  type AppendResponseMessage,
  type HeartbeatMessage,
  type HeartbeatResponseMessage,
  type Message,
  payloadSize,
  type SnapshotMessage,
  type VoteMessage,
} from './messages.ts';
import { Progress } from './progress.ts';
import type {
  FollowerStatus,
  ProposalTicket,
  RaftStatus,
  ReadState,
  Ready,
  Role,
  SoftState,
} from './ready.ts';
import type { Entry, HardState, NodeId, Snapshot } from './types.ts';

interface ReadRequest {
  context: string;
  /** Commit index when the request arrived: the read must observe at least this much. */
  index: number;
  from: NodeId;
  acks: Set<NodeId>;
}

const emptyData = new Uint8Array(0);

export class RaftNode {
  readonly id: NodeId;
  private readonly options: ResolvedRaftOptions;
  private readonly log: RaftLog;

  private term = 0;
  private vote: NodeId | null = null;
  private leader: NodeId | null = null;
  private role: Role = 'follower';

  private voters: NodeId[];
  /** Applied membership by index, so a snapshot taken at an older index names its voters. */
  private configHistory: { index: number; voters: NodeId[] }[];
  private pendingConfIndex = 0;

  private readonly progress = new Map<NodeId, Progress>();
  private readonly votes = new Map<NodeId, boolean>();
  private electionElapsed = 0;
  private heartbeatElapsed = 0;
  private randomizedElectionTimeout = 0;
  private leadTransferee: NodeId | null = null;
  private uncommittedBytes = 0;
  /** Proposals appended since the last Ready, broadcast together (batching). */
  private proposalsPending = false;

  private readRequests: ReadRequest[] = [];
  /** Reads that arrived before this leader committed an entry of its own term. */
  private readsAwaitingCommit: { context: string; from: NodeId }[] = [];

  private outbox: Message[] = [];
  private readStates: ReadState[] = [];
  private persistedHardState: HardState;
  private reportedSoftState: SoftState;
  private outstanding: Ready | undefined;

  constructor(options: RaftOptions) {
    this.options = resolveRaftOptions(options);
    this.id = this.options.id;
    const storage = this.options.storage;
    let hardState = storage?.hardState ?? { term: 0, vote: null, commit: 0 };
    validateHardState(hardState);
    const snapshot = storage?.snapshot;
    const applied = storage?.applied ?? snapshot?.meta.index ?? 0;
    let entries = storage?.entries ?? [];
    const blank = snapshot === undefined && entries.length === 0 && hardState.term === 0;
    const founding = blank && this.options.voters.length > 0;
    if (founding) {
      // Bootstrap: every founding member writes the same committed entry 1 naming the voters.
      entries = [
        { term: 1, index: 1, kind: 'config', data: encodeConfChange({ voters: this.options.voters }) },
      ];
      hardState = { term: 1, vote: null, commit: 1 };
    }
    this.log = new RaftLog(snapshot, entries, hardState.commit, applied);
    if (founding) this.log.stableIndex = 0;
    this.voters = snapshot ? [...snapshot.meta.voters] : [...this.options.voters];
    this.configHistory = [{ index: this.log.snapshotIndex(), voters: [...this.voters] }];
    // The application already reflects entries up to `applied`: so must the membership.
    for (let index = this.log.snapshotIndex() + 1; index <= this.log.applied; index++) {
      const entry = this.log.entry(index)!;
      if (entry.kind === 'config') this.recordConfChange(entry.index, decodeConfChange(entry.data));
    }
    this.term = hardState.term;
    this.vote = hardState.vote;
    // A storage that kept entries but lost the hard state that went with them: never run a
    // term older than our own log (voting in such a term would be unsafe to reason about).
    if (this.log.lastTerm() > this.term) {
      this.term = this.log.lastTerm();
      this.vote = null;
    }
    this.persistedHardState = founding ? { term: 0, vote: null, commit: 0 } : { ...hardState };
    this.becomeFollower(this.term, null);
    this.reportedSoftState = { role: this.role, leader: this.leader };
  }

  // ---------------------------------------------------------------------------------------------
  // Inputs

  /** Advances logical time by one tick (election and heartbeat timers). */
  tick(): void {
    if (this.role === 'leader') this.tickLeader();
    else this.tickElection();
  }

  /**
   * How many ticks can pass before one does more than count: the next heartbeat, quorum check or
   * snapshot retry of a leader, the election of a follower or candidate. A host that is told of
   * every message may sleep this many ticks when nothing arrives (at least 1; Infinity for a node
   * that never campaigns). Any input may change it: ask again after each.
   */
  ticksUntilTimeout(): number {
    if (this.role === 'leader') {
      let ticks = Math.min(
        this.options.heartbeatTick - this.heartbeatElapsed,
        this.options.electionTick - this.electionElapsed,
      );
      for (const follower of this.progress.values()) {
        if (follower.state === 'snapshot')
          ticks = Math.min(ticks, this.options.electionTick + 1 - follower.snapshotTicks);
      }
      return Math.max(1, ticks);
    }
    if (!this.promotable()) return Number.POSITIVE_INFINITY;
    return Math.max(1, this.randomizedElectionTimeout - this.electionElapsed);
  }

  /** Forces an election now (bootstrap, tests, operator action). Ignored by non-voters. */
  campaign(): void {
    if (this.role === 'leader' || !this.promotable()) return;
    this.startElection(false);
  }

  step(message: Message): void {
    if (message.to !== this.id) return;
    if (message.term > this.term) {
      if (message.type === 'vote' || message.type === 'preVote') {
        // Leader stickiness: while we hear from a live leader, ignore candidates (a node back
        // from a partition cannot depose it), unless the election is a leadership transfer.
        const inLease =
          this.options.checkQuorum &&
          this.leader !== null &&
          this.electionElapsed < this.options.electionTick;
        if (!message.transfer && inLease) return;
      }
      if (message.type === 'preVote') {
        // A pre-vote never changes our term.
      } else if (message.type === 'preVoteResponse' && !message.reject) {
        // Granted at the term we would campaign in; the term changes only if we really campaign.
      } else if (message.type === 'append' || message.type === 'heartbeat' || message.type === 'snapshot') {
        this.becomeFollower(message.term, message.from);
      } else {
        this.becomeFollower(message.term, null);
      }
    } else if (message.term < this.term) {
      if (
        (this.options.checkQuorum || this.options.preVote) &&
        (message.type === 'append' || message.type === 'heartbeat')
      ) {
        // A deposed leader cut off from the cluster would never learn of the new term otherwise
        // (pre-vote keeps our term from reaching it): answer so it steps down.
        this.send({
          type: 'appendResponse',
          from: this.id,
          to: message.from,
          term: this.term,
          index: 0,
          reject: false,
        });
      } else if (message.type === 'preVote') {
        this.send({
          type: 'preVoteResponse',
          from: this.id,
          to: message.from,
          term: this.term,
          reject: true,
        });
      }
      return;
    }

    if (message.type === 'vote' || message.type === 'preVote') {
      this.handleVoteRequest(message);
      return;
    }
    switch (this.role) {
      case 'leader':
        this.stepLeader(message);
        break;
      case 'candidate':
      case 'preCandidate':
        this.stepCandidate(message);
        break;
      default:
        this.stepFollower(message);
    }
  }

  /**
   * Appends `data` to the replicated log (leader only). The proposal is committed when the
   * application sees an applied entry with the returned index and term; an entry with that index
   * but another term means it was lost to a leader change and should be retried.
   */
  propose(data: Uint8Array): ProposalTicket {
    this.checkCanPropose(data.byteLength);
    const entry = this.appendEntry('normal', data);
    return { index: entry.index, term: entry.term };
  }

  /** Adds or removes one voter. Only one change may be pending (appended but not applied) at a time. */
  proposeConfChange(change: ConfChange): ProposalTicket {
    const isAdd = change !== null && typeof change === 'object' && 'add' in change;
    const target: unknown = isAdd ? change.add : (change as { remove?: unknown } | null)?.remove;
    if (typeof target !== 'string' || target.length === 0) {
      throw new RangeError('a membership change is { add: nodeId } or { remove: nodeId }');
    }
    const data = encodeConfChange(change);
    this.checkCanPropose(data.byteLength);
    if (this.pendingConfIndex > this.log.applied) {
      throw new PixelfleetError(
        'PF_ERR_PROPOSAL_DROPPED',
        `a membership change (index ${this.pendingConfIndex}) is still pending; retry once it is applied`,
      );
    }
    if (isAdd && this.voters.includes(target)) {
      throw new RangeError(`node ${target} is already a voter`);
    }
    if (!isAdd && !this.voters.includes(target)) {
      throw new RangeError(`node ${target} is not a voter`);
    }
    if (!isAdd && this.voters.length === 1) {
      throw new RangeError('cannot remove the last voter');
    }
    const entry = this.appendEntry('config', data);
    this.pendingConfIndex = entry.index;
    return { index: entry.index, term: entry.term };
  }

  /**
   * Asks for a linearizable read point. The answer arrives as a `ReadState` with the same
   * `context` (which must be unique) in a later Ready; it may never arrive if leadership changes,
   * so the host retries after a timeout. Followers forward the request to their leader.
   */
  readIndex(context: string): void {
    if (typeof context !== 'string' || context.length === 0) {
      throw new RangeError('readIndex context must be a non-empty string');
    }
    if (this.role === 'leader') {
      this.handleReadRequest(context, this.id);
      return;
    }
    if (this.leader === null) {
      throw new PixelfleetError('PF_ERR_NOT_LEADER', 'no leader is known; retry the read later', {
        extensions: { leader: null },
      });
    }
    this.send({ type: 'readIndex', from: this.id, to: this.leader, term: this.term, context });
  }

  /**
   * Hands leadership to `to` (leader only): brings its log up to date, then tells it to campaign
   * at once. Proposals are refused meanwhile; the attempt is abandoned after an election timeout.
   */
  transferLeadership(to: NodeId): void {
    if (this.role !== 'leader') {
      throw new PixelfleetError('PF_ERR_NOT_LEADER', 'only the leader can transfer leadership', {
        extensions: { leader: this.leader },
      });
    }
    if (!this.voters.includes(to)) throw new RangeError(`cannot transfer leadership to non-voter ${to}`);
    if (to === this.id || this.leadTransferee === to) return;
    this.leadTransferee = to;
    // The transfer must finish within one election timeout, measured from now.
    this.electionElapsed = 0;
    const progress = this.progress.get(to)!;
    if (progress.match === this.log.lastIndex()) this.sendTimeoutNow(to);
    else this.sendAppend(to, true);
  }

  /**
   * Log compaction: `data` is the application's state as of `index` (≤ applied). Entries up to
   * it are dropped from memory and followers too far behind are sent the returned snapshot. The
   * host persists the returned snapshot (atomically replacing the previous one) and only then
   * deletes its stored entries ≤ `index`; a crash in between loses nothing.
   */
  compact(index: number, data: Uint8Array): Snapshot {
    if (!Number.isSafeInteger(index) || index > this.log.applied || index <= this.log.snapshotIndex()) {
      throw new RangeError(
        `compact index ${index} must be in (${this.log.snapshotIndex()}, applied ${this.log.applied}]`,
      );
    }
    let voters = this.configHistory[0]!.voters;
    for (const change of this.configHistory) if (change.index <= index) voters = change.voters;
    const snapshot = this.log.compact(index, data, voters);
    const kept = this.configHistory.filter((change) => change.index > index);
    this.configHistory = [{ index, voters: [...voters] }, ...kept];
    return snapshot;
  }

  // ---------------------------------------------------------------------------------------------
  // Output

  hasReady(): boolean {
    if (this.outstanding !== undefined) return false;
    return (
      this.proposalsPending ||
      this.outbox.length > 0 ||
      this.readStates.length > 0 ||
      this.log.pendingSnapshot !== undefined ||
      this.log.stableIndex < this.log.lastIndex() ||
      this.log.committed > this.log.applied ||
      this.role !== this.reportedSoftState.role ||
      this.leader !== this.reportedSoftState.leader ||
      this.hardStateChanged()
    );
  }

  /** The next batch of work for the host, or undefined (nothing to do, or one is outstanding). */
  ready(): Ready | undefined {
    if (!this.hasReady()) return undefined;
    if (this.proposalsPending) {
      this.proposalsPending = false;
      if (this.role === 'leader') this.broadcastAppend(false);
    }
    const ready: Ready = {
      entries: this.log.unstableEntries(),
      messages: this.outbox,
      committedEntries: this.log.nextCommittedEntries(this.options.maxCommittedSizePerReady),
      readStates: this.readStates,
      mustSync: false,
    };
    if (this.role !== this.reportedSoftState.role || this.leader !== this.reportedSoftState.leader) {
      ready.softState = { role: this.role, leader: this.leader };
      this.reportedSoftState = ready.softState;
    }
    if (this.hardStateChanged()) {
      ready.hardState = { term: this.term, vote: this.vote, commit: this.log.committed };
    }
    if (this.log.pendingSnapshot !== undefined) ready.snapshot = this.log.pendingSnapshot;
    ready.mustSync =
      ready.entries.length > 0 ||
      ready.snapshot !== undefined ||
      this.term !== this.persistedHardState.term ||
      this.vote !== this.persistedHardState.vote;
    this.outbox = [];
    this.readStates = [];
    if (
      ready.entries.length === 0 &&
      ready.messages.length === 0 &&
      ready.committedEntries.length === 0 &&
      ready.readStates.length === 0 &&
      ready.softState === undefined &&
      ready.hardState === undefined &&
      ready.snapshot === undefined
    ) {
      return undefined;
    }
    this.outstanding = ready;
    return ready;
  }

  /** The host finished persisting, sending and applying `ready` (see `ready.ts`). */
  advance(ready: Ready): void {
    if (ready !== this.outstanding) {
      throw new RangeError('advance() must be given the Ready returned by the last ready() call');
    }
    this.outstanding = undefined;
    if (ready.hardState) this.persistedHardState = ready.hardState;
    if (ready.snapshot) {
      this.log.snapshotPersisted(ready.snapshot);
      this.voters = [...ready.snapshot.meta.voters];
      this.configHistory = [{ index: ready.snapshot.meta.index, voters: [...this.voters] }];
    }
    const lastEntry = ready.entries.at(-1);
    if (lastEntry) this.log.stableTo(lastEntry.index, lastEntry.term);
    for (const entry of ready.committedEntries) {
      if (entry.index <= this.log.applied) continue;
      this.log.appliedTo(entry.index);
      if (entry.kind === 'config') this.applyConfChange(entry);
    }
  }

  status(): RaftStatus {
    const progress: Record<NodeId, FollowerStatus> = {};
    if (this.role === 'leader') {
      for (const [id, follower] of this.progress) {
        progress[id] = {
          match: follower.match,
          next: follower.next,
          state: follower.state,
          recentActive: follower.recentActive,
          inflight: follower.inflight.count,
        };
      }
    }
    return {
      id: this.id,
      role: this.role,
      term: this.term,
      vote: this.vote,
      leader: this.leader,
      commit: this.log.committed,
      applied: this.log.applied,
      firstIndex: this.log.firstIndex(),
      lastIndex: this.log.lastIndex(),
      lastTerm: this.log.lastTerm(),
      snapshotIndex: this.log.snapshotIndex(),
      voters: [...this.voters],
      leadTransferee: this.leadTransferee,
      progress,
    };
  }

  /** A cheap subset of `status()` for hot paths (metrics, simulators). */
  basicStatus(): {
    role: Role;
    term: number;
    leader: NodeId | null;
    commit: number;
    applied: number;
    snapshotIndex: number;
  } {
    return {
      snapshotIndex: this.log.snapshotIndex(),
      role: this.role,
      term: this.term,
      leader: this.leader,
      commit: this.log.committed,
      applied: this.log.applied,
    };
  }

  /** Term of the entry at `index` in this node's log (undefined if compacted or absent). */
  termAt(index: number): number | undefined {
    return this.log.term(index);
  }

  /** The entry at `index`, if this node holds it (for inspection by tests and simulators). */
  entryAt(index: number): Entry | undefined {
    return this.log.entry(index);
  }

  // ---------------------------------------------------------------------------------------------
  // Roles and elections

  private promotable(): boolean {
    return this.voters.includes(this.id);
  }

  private quorum(): number {
    return Math.floor(this.voters.length / 2) + 1;
  }

  private reset(term: number): void {
    if (term !== this.term) {
      this.term = term;
      this.vote = null;
    }
    this.leader = null;
    this.electionElapsed = 0;
    this.heartbeatElapsed = 0;
    this.randomizeElectionTimeout();
    this.leadTransferee = null;
    this.votes.clear();
    this.progress.clear();
    this.readRequests = [];
    this.readsAwaitingCommit = [];
    this.proposalsPending = false;
    this.uncommittedBytes = 0;
  }

  private randomizeElectionTimeout(): void {
    const jitter = Math.floor(this.options.random() * this.options.electionTick);
    this.randomizedElectionTimeout =
      this.options.electionTick + Math.min(Math.max(jitter, 0), this.options.electionTick - 1);
  }

  private becomeFollower(term: number, leader: NodeId | null): void {
    this.reset(term);
    this.role = 'follower';
    this.leader = leader;
  }

  private becomeLeader(): void {
    this.reset(this.term);
    this.role = 'leader';
    this.leader = this.id;
    const next = this.log.lastIndex() + 1;
    // Followers count as active only once they answer: check-quorum then deposes a leader that
    // nobody hears within one election timeout.
    for (const voter of this.voters) this.addProgress(voter, next).recentActive = voter === this.id;
    const self = this.progress.get(this.id);
    if (self) {
      self.match = this.log.lastIndex();
      self.becomeReplicate();
    }
    // Any config entry in our log may be uncommitted: no new change until it is applied.
    this.pendingConfIndex = this.log.lastIndex();
    // An entry of our own term: committing it commits everything before it (Raft §5.4.2) and
    // tells us the commit index, which ReadIndex needs.
    this.appendEntry('noop', emptyData);
    this.proposalsPending = false;
    this.broadcastAppend(true);
  }

  private addProgress(id: NodeId, next: number): Progress {
    const progress = new Progress(id, next, this.options.maxInflightMessages, this.options.maxInflightBytes);
    // A member just added gets one election timeout of grace before it counts as silent.
    progress.recentActive = true;
    this.progress.set(id, progress);
    return progress;
  }

  private tickElection(): void {
    this.electionElapsed += 1;
    if (this.promotable() && this.electionElapsed >= this.randomizedElectionTimeout) {
      this.electionElapsed = 0;
      this.startElection(false);
    }
  }

  private tickLeader(): void {
    this.heartbeatElapsed += 1;
    this.electionElapsed += 1;
    if (this.electionElapsed >= this.options.electionTick) {
      this.electionElapsed = 0;
      if (this.options.checkQuorum) {
        if (!this.quorumActive()) {
          this.becomeFollower(this.term, null);
          return;
        }
        for (const [id, follower] of this.progress) if (id !== this.id) follower.recentActive = false;
      }
      this.leadTransferee = null;
    }
    for (const follower of this.progress.values()) {
      if (follower.state !== 'snapshot') continue;
      follower.snapshotTicks += 1;
      // Snapshots are sent whole and may be lost: retry after an election timeout of silence.
      if (follower.snapshotTicks > this.options.electionTick) {
        follower.becomeProbe();
        this.sendAppend(follower.id, true);
      }
    }
    if (this.heartbeatElapsed >= this.options.heartbeatTick) {
      this.heartbeatElapsed = 0;
      this.broadcastHeartbeat(this.readRequests.at(-1)?.context);
    }
  }

  private quorumActive(): boolean {
    let active = 0;
    for (const voter of this.voters) {
      if (voter === this.id || this.progress.get(voter)?.recentActive) active += 1;
    }
    return active >= this.quorum();
  }

  private hasUnappliedConfChange(): boolean {
    for (let index = this.log.applied + 1; index <= this.log.committed; index++) {
      if (this.log.entry(index)?.kind === 'config') return true;
    }
    return false;
  }

  private startElection(transfer: boolean): void {
    // Campaigning with a stale membership could elect a leader the new configuration rejects.
    if (this.hasUnappliedConfChange()) return;
    if (this.options.preVote && !transfer) this.runElection('preVote', false);
    else this.runElection('vote', transfer);
  }

  private runElection(kind: 'vote' | 'preVote', transfer: boolean): void {
    let electionTerm: number;
    if (kind === 'preVote') {
      // Pre-candidates keep their term and vote: losing the pre-vote must leave no trace.
      this.role = 'preCandidate';
      this.leader = null;
      this.votes.clear();
      this.randomizeElectionTimeout();
      electionTerm = this.term + 1;
    } else {
      this.reset(this.term + 1);
      this.role = 'candidate';
      this.vote = this.id;
      electionTerm = this.term;
    }
    if (this.poll(this.id, true) === 'won') {
      if (kind === 'preVote') this.runElection('vote', false);
      else this.becomeLeader();
      return;
    }
    for (const voter of this.voters) {
      if (voter === this.id) continue;
      this.send({
        type: kind,
        from: this.id,
        to: voter,
        term: electionTerm,
        lastIndex: this.log.lastIndex(),
        lastTerm: this.log.lastTerm(),
        transfer,
      });
    }
  }

  private poll(from: NodeId, granted: boolean): 'won' | 'lost' | 'pending' {
    if (!this.votes.has(from)) this.votes.set(from, granted);
    let yes = 0;
    let no = 0;
    for (const voter of this.voters) {
      const vote = this.votes.get(voter);
      if (vote === true) yes += 1;
      else if (vote === false) no += 1;
    }
    if (yes >= this.quorum()) return 'won';
    if (this.voters.length - no < this.quorum()) return 'lost';
    return 'pending';
  }

  private handleVoteRequest(message: VoteMessage): void {
    const responseType = message.type === 'vote' ? 'voteResponse' : 'preVoteResponse';
    const canVote =
      this.vote === message.from ||
      (this.vote === null && this.leader === null) ||
      (message.type === 'preVote' && message.term > this.term);
    if (canVote && this.log.isUpToDate(message.lastIndex, message.lastTerm)) {
      // A granted pre-vote answers at the candidate's future term, so it counts in that round.
      this.send({ type: responseType, from: this.id, to: message.from, term: message.term, reject: false });
      if (message.type === 'vote') {
        this.electionElapsed = 0;
        this.vote = message.from;
      }
    } else {
      this.send({ type: responseType, from: this.id, to: message.from, term: this.term, reject: true });
    }
  }

  private stepCandidate(message: Message): void {
    const expected = this.role === 'preCandidate' ? 'preVoteResponse' : 'voteResponse';
    switch (message.type) {
      case 'append':
        this.becomeFollower(message.term, message.from);
        this.handleAppend(message);
        return;
      case 'heartbeat':
        this.becomeFollower(message.term, message.from);
        this.handleHeartbeat(message);
        return;
      case 'snapshot':
        this.becomeFollower(message.term, message.from);
        this.handleSnapshot(message);
        return;
      case 'voteResponse':
      case 'preVoteResponse': {
        if (message.type !== expected) return;
        const result = this.poll(message.from, !message.reject);
        if (result === 'won') {
          if (this.role === 'preCandidate') this.runElection('vote', false);
          else this.becomeLeader();
        } else if (result === 'lost') {
          this.becomeFollower(this.term, null);
        }
        return;
      }
      default:
        return;
    }
  }

  private stepFollower(message: Message): void {
    switch (message.type) {
      case 'append':
        this.electionElapsed = 0;
        this.leader = message.from;
        this.handleAppend(message);
        return;
      case 'heartbeat':
        this.electionElapsed = 0;
        this.leader = message.from;
        this.handleHeartbeat(message);
        return;
      case 'snapshot':
        this.electionElapsed = 0;
        this.leader = message.from;
        this.handleSnapshot(message);
        return;
      case 'timeoutNow':
        if (this.promotable()) this.startElection(true);
        return;
      case 'readIndexResponse':
        this.readStates.push({ index: message.index, context: message.context });
        return;
      default:
        return;
    }
  }

  // ---------------------------------------------------------------------------------------------
  // Follower side of replication

  private handleAppend(message: AppendMessage): void {
    const respond = (index: number, reject: boolean, hint?: { index: number; term: number }): void => {
      const response: AppendResponseMessage = {
        type: 'appendResponse',
        from: this.id,
        to: message.from,
        term: this.term,
        index,
        reject,
      };
      if (hint) response.hint = hint;
      this.send(response);
    };
    if (message.prevIndex < this.log.committed) {
      // Everything up to our commit index matches the leader already.
      respond(this.log.committed, false);
      return;
    }
    const lastNewIndex = this.log.maybeAppend(
      message.prevIndex,
      message.prevTerm,
      message.commit,
      message.entries,
    );
    if (lastNewIndex !== undefined) {
      respond(lastNewIndex, false);
      return;
    }
    // Fast back-off: point the leader at the last index whose term could still match, so it
    // skips a whole conflicting term per round trip instead of one entry.
    const hintIndex = this.log.findConflictByTerm(
      Math.min(message.prevIndex, this.log.lastIndex()),
      message.prevTerm,
    );
    respond(message.prevIndex, true, { index: hintIndex, term: this.log.term(hintIndex) ?? 0 });
  }

  private handleHeartbeat(message: HeartbeatMessage): void {
    this.log.commitTo(Math.min(message.commit, this.log.lastIndex()));
    const response: HeartbeatResponseMessage = {
      type: 'heartbeatResponse',
      from: this.id,
      to: message.from,
      term: this.term,
    };
    if (message.context !== undefined) response.context = message.context;
    this.send(response);
  }

  private handleSnapshot(message: SnapshotMessage): void {
    const { meta } = message.snapshot;
    const respond = (index: number): void =>
      this.send({
        type: 'appendResponse',
        from: this.id,
        to: message.from,
        term: this.term,
        index,
        reject: false,
      });
    if (meta.index <= this.log.committed) {
      respond(this.log.committed);
      return;
    }
    if (this.log.matchTerm(meta.index, meta.term)) {
      // We already hold the snapshot's last entry: keep our log, just learn the commit.
      this.log.commitTo(meta.index);
      respond(this.log.committed);
      return;
    }
    this.log.restore(message.snapshot);
    respond(meta.index);
  }

  // ---------------------------------------------------------------------------------------------
  // Leader side of replication

  private checkCanPropose(size: number): void {
    if (this.role !== 'leader') {
      throw new PixelfleetError('PF_ERR_NOT_LEADER', 'this node is not the Raft leader', {
        extensions: { leader: this.leader },
      });
    }
    if (this.leadTransferee !== null) {
      throw new PixelfleetError('PF_ERR_PROPOSAL_DROPPED', 'leadership transfer in progress; retry later', {
        extensions: { leader: this.leadTransferee },
      });
    }
    const limit = this.options.maxUncommittedEntriesSize;
    if (limit > 0 && this.uncommittedBytes > 0 && this.uncommittedBytes + size > limit) {
      throw new PixelfleetError('PF_ERR_PROPOSAL_DROPPED', 'too many uncommitted bytes; retry later', {
        extensions: { uncommittedBytes: this.uncommittedBytes, limit },
      });
    }
  }

  private appendEntry(kind: Entry['kind'], data: Uint8Array): Entry {
    const entry: Entry = { term: this.term, index: this.log.lastIndex() + 1, kind, data };
    this.log.append([entry]);
    this.uncommittedBytes += data.byteLength;
    this.progress.get(this.id)?.maybeUpdate(entry.index);
    this.proposalsPending = true;
    // A single-voter cluster commits on its own.
    this.maybeCommit();
    return entry;
  }

  /** Commit rule (Raft §5.4.2): a quorum stores the entry AND it is from the current term. */
  private maybeCommit(): boolean {
    const matches: number[] = [];
    for (const voter of this.voters) matches.push(this.progress.get(voter)?.match ?? 0);
    matches.sort((a, b) => b - a);
    const candidate = matches[this.quorum() - 1] ?? 0;
    if (candidate <= this.log.committed || this.log.term(candidate) !== this.term) return false;
    const wasCommittedInTerm = this.committedInCurrentTerm();
    for (let index = this.log.committed + 1; index <= candidate; index++) {
      const entry = this.log.entry(index);
      if (entry && entry.term === this.term) this.uncommittedBytes -= entry.data.byteLength;
    }
    if (this.uncommittedBytes < 0) this.uncommittedBytes = 0;
    this.log.commitTo(candidate);
    if (!wasCommittedInTerm) {
      const waiting = this.readsAwaitingCommit;
      this.readsAwaitingCommit = [];
      for (const read of waiting) this.handleReadRequest(read.context, read.from);
    }
    return true;
  }

  private committedInCurrentTerm(): boolean {
    return this.log.term(this.log.committed) === this.term;
  }

  private stepLeader(message: Message): void {
    if (message.type === 'readIndex') {
      this.handleReadRequest(message.context, message.from);
      return;
    }
    const follower = this.progress.get(message.from);
    if (!follower) return;
    follower.recentActive = true;
    if (message.type === 'appendResponse') this.handleAppendResponse(follower, message);
    else if (message.type === 'heartbeatResponse') this.handleHeartbeatResponse(follower, message);
  }

  private handleAppendResponse(follower: Progress, message: AppendResponseMessage): void {
    if (message.reject) {
      let probeHint = message.index;
      if (message.hint) {
        probeHint =
          message.hint.term > 0
            ? this.log.findConflictByTerm(message.hint.index, message.hint.term)
            : message.hint.index;
      }
      if (follower.maybeDecreaseTo(message.index, probeHint)) {
        if (follower.state === 'replicate') follower.becomeProbe();
        this.sendAppend(follower.id, true);
      }
      return;
    }
    if (message.index < follower.match) return; // stale acknowledgement
    const updated = follower.maybeUpdate(message.index);
    if (follower.state === 'probe') {
      follower.becomeReplicate();
    } else if (follower.state === 'snapshot') {
      if (follower.match >= follower.pendingSnapshot) {
        follower.becomeProbe();
        follower.becomeReplicate();
      }
    } else {
      follower.inflight.freeUpTo(message.index);
    }
    if (updated && this.maybeCommit()) this.broadcastAppend(true);
    // Pipelining: keep the window full while there is something to send.
    while (this.sendAppend(follower.id, false)) {
      // each call sends one batch
    }
    if (follower.id === this.leadTransferee && follower.match === this.log.lastIndex()) {
      this.sendTimeoutNow(follower.id);
    }
  }

  private handleHeartbeatResponse(follower: Progress, message: HeartbeatResponseMessage): void {
    follower.probeSent = false;
    if (follower.state === 'replicate' && follower.inflight.full()) follower.inflight.freeFirst();
    // An empty append at the follower's presumed end detects messages lost in the pipeline.
    if (follower.match < this.log.lastIndex()) this.sendAppend(follower.id, true);
    if (message.context === undefined || this.options.readOnly !== 'safe') return;
    const position = this.readRequests.findIndex((request) => request.context === message.context);
    if (position < 0) return;
    const request = this.readRequests[position]!;
    request.acks.add(follower.id);
    let acknowledged = 0;
    for (const voter of this.voters) if (request.acks.has(voter)) acknowledged += 1;
    if (acknowledged < this.quorum()) return;
    // Leadership is confirmed as of this heartbeat: every earlier request is confirmed too.
    const released = this.readRequests.splice(0, position + 1);
    for (const read of released) this.releaseRead(read.index, read.context, read.from);
  }

  private handleReadRequest(context: string, from: NodeId): void {
    if (this.voters.length === 1 && this.voters[0] === this.id) {
      this.releaseRead(this.log.committed, context, from);
      return;
    }
    if (!this.committedInCurrentTerm()) {
      this.readsAwaitingCommit.push({ context, from });
      return;
    }
    if (this.options.readOnly === 'lease') {
      // Safe while no other leader can exist: check-quorum deposes us within an election timeout.
      this.releaseRead(this.log.committed, context, from);
      return;
    }
    this.readRequests.push({ context, index: this.log.committed, from, acks: new Set([this.id]) });
    this.broadcastHeartbeat(context);
  }

  private releaseRead(index: number, context: string, from: NodeId): void {
    if (from === this.id) this.readStates.push({ index, context });
    else this.send({ type: 'readIndexResponse', from: this.id, to: from, term: this.term, context, index });
  }

  /** Sends the follower its next batch; false when paused or (unless `sendIfEmpty`) nothing to send. */
  private sendAppend(to: NodeId, sendIfEmpty: boolean): boolean {
    const follower = this.progress.get(to);
    if (!follower || to === this.id || follower.isPaused()) return false;
    if (follower.next > this.log.lastIndex() + 1) follower.next = this.log.lastIndex() + 1;
    const prevIndex = follower.next - 1;
    const prevTerm = this.log.term(prevIndex);
    const entries = this.log.slice(follower.next, this.log.lastIndex(), this.options.maxSizePerMessage);
    if (prevTerm === undefined || entries === undefined) return this.sendSnapshot(follower);
    if (entries.length === 0 && !sendIfEmpty) return false;
    this.send({
      type: 'append',
      from: this.id,
      to,
      term: this.term,
      prevIndex,
      prevTerm,
      entries,
      commit: this.log.committed,
    });
    follower.sentEntries(entries.at(-1)?.index, payloadSize(entries));
    return true;
  }

  private sendSnapshot(follower: Progress): boolean {
    const snapshot = this.log.snapshot;
    if (!snapshot) return false;
    this.send({ type: 'snapshot', from: this.id, to: follower.id, term: this.term, snapshot });
    follower.becomeSnapshot(snapshot.meta.index);
    return true;
  }

  private sendTimeoutNow(to: NodeId): void {
    this.send({ type: 'timeoutNow', from: this.id, to, term: this.term });
  }

  /** Sends every follower what it lacks, pipelining up to its in-flight window. */
  private broadcastAppend(sendIfEmpty: boolean): void {
    for (const voter of this.voters) {
      if (voter === this.id) continue;
      if (!this.sendAppend(voter, sendIfEmpty)) continue;
      while (this.sendAppend(voter, false)) {
        // each call sends one more batch until the window is full or nothing is left
      }
    }
  }

  private broadcastHeartbeat(context: string | undefined): void {
    for (const voter of this.voters) {
      if (voter === this.id) continue;
      const follower = this.progress.get(voter);
      // Never let a follower commit past what it is known to hold.
      const heartbeat: HeartbeatMessage = {
        type: 'heartbeat',
        from: this.id,
        to: voter,
        term: this.term,
        commit: Math.min(follower?.match ?? 0, this.log.committed),
      };
      if (context !== undefined) heartbeat.context = context;
      this.send(heartbeat);
    }
  }

  // ---------------------------------------------------------------------------------------------
  // Membership

  private recordConfChange(index: number, change: ConfigEntryData): void {
    this.voters = applyConfChangeTo(this.voters, change);
    this.configHistory.push({ index, voters: [...this.voters] });
  }

  private applyConfChange(entry: Entry): void {
    const change = decodeConfChange(entry.data);
    this.recordConfChange(entry.index, change);
    if (this.role !== 'leader' || 'voters' in change) return;
    if ('add' in change) {
      if (!this.progress.has(change.add)) this.addProgress(change.add, this.log.lastIndex() + 1);
      this.sendAppend(change.add, true);
      return;
    }
    this.progress.delete(change.remove);
    if (this.leadTransferee === change.remove) this.leadTransferee = null;
    if (change.remove === this.id) {
      // A removed leader steps down; the remaining voters elect a successor.
      this.becomeFollower(this.term, null);
      return;
    }
    // A smaller quorum may commit what was waiting on the removed node.
    if (this.maybeCommit()) this.broadcastAppend(true);
  }

  // ---------------------------------------------------------------------------------------------

  private send(message: Message): void {
    this.outbox.push(message);
  }

  private hardStateChanged(): boolean {
    const persisted = this.persistedHardState;
    return (
      persisted.term !== this.term || persisted.vote !== this.vote || persisted.commit !== this.log.committed
    );
  }
}

function validateHardState(hardState: HardState): void {
  if (
    !Number.isSafeInteger(hardState.term) ||
    hardState.term < 0 ||
    !Number.isSafeInteger(hardState.commit) ||
    hardState.commit < 0 ||
    (hardState.vote !== null && typeof hardState.vote !== 'string')
  ) {
    throw new PixelfleetError('PF_ERR_RAFT_STATE_CORRUPT', 'persisted hard state is malformed');
  }
}
