/**
 * Shapes of the node-to-node transport: options, the handle `createTransport` returns and the
 * counters it exposes. The transport moves opaque payloads between cluster nodes; what they
 * mean (Raft messages, snapshots) is the caller's business.
 */
import type { NodeId } from '../types.ts';

export interface PeerAddress {
  host: string;
  port: number;
}

/**
 * State of the outbound link to one peer (the connection this node dials to send to it).
 * - `connecting`: dialling or authenticating.
 * - `connected`: authenticated; queued payloads are flowing.
 * - `disconnected`: waiting out a reconnect backoff.
 * - `closed`: the peer was removed or the transport closed.
 */
export type PeerState = 'connecting' | 'connected' | 'disconnected' | 'closed';

/** Which payload a full per-peer queue sacrifices. Consensus tolerates loss of either. */
export type DropPolicy = 'oldest' | 'newest';

export interface TransportOptions {
  /** This node's id; it is bound into every handshake so a link cannot be misrouted. */
  nodeId: NodeId;
  /** Where to accept connections from peers. Port 0 picks a free port (see `start()`). */
  listen: PeerAddress;
  /** The other voters and learners, by id. The transport dials each one. */
  peers: Record<NodeId, PeerAddress>;
  /** Shared cluster secret (at least 16 bytes). It never crosses the wire. */
  secret: Uint8Array | string;
  /**
   * Called once per payload, in the order the peer sent them on that connection. `payload` is a
   * view into a received buffer that is never reused, so keeping it is safe. Must not throw.
   */
  onMessage(from: NodeId, payload: Uint8Array): void;
  /** Called when the outbound link to a peer changes state (for logs, metrics and tests). */
  onPeerStateChange?(peer: NodeId, state: PeerState): void;
  /**
   * Bound on payload bytes waiting for one peer. A slow or unreachable peer must not make the
   * sender's memory grow without limit; beyond this, payloads are dropped and counted.
   * Default 64 MiB (room for one large snapshot chunk).
   */
  maxQueuedBytesPerPeer?: number;
  /** Which payload goes when the queue is full. Default `oldest`: fresher Raft messages win. */
  dropPolicy?: DropPolicy;
  /**
   * Largest frame accepted after authentication, which bounds the largest single payload.
   * Before authentication only tiny frames are accepted, so a stray process cannot make a
   * node allocate this much. Every node of a cluster must use the same value: the sender drops
   * (and counts) payloads that would not fit the receiver's limit. Default 64 MiB.
   */
  maxFrameBytes?: number;
  /** Accept links from authenticated nodes that are not in `peers`. Default false. */
  acceptUnknownPeers?: boolean;
  /** First reconnect delay; it doubles per failed attempt up to `reconnectMaxDelayMs`. Default 50. */
  reconnectInitialDelayMs?: number;
  /** Ceiling of the reconnect delay. Default 2000. */
  reconnectMaxDelayMs?: number;
  /** A handshake that takes longer than this is abandoned (half-open or hostile peer). Default 5000. */
  handshakeTimeoutMs?: number;
  /** Send a heartbeat frame on an idle link this often, so the far side can tell it is alive. Default 1000. */
  heartbeatIntervalMs?: number;
  /** Close a link on which nothing arrived for this long (a silent partition). Default 5000. */
  idleTimeoutMs?: number;
  /** Random source in [0, 1) for reconnect jitter; injectable for deterministic tests. */
  random?: () => number;
}

export interface PeerStats {
  address: PeerAddress;
  state: PeerState;
  queuedMessages: number;
  queuedBytes: number;
  sentMessages: number;
  sentBytes: number;
  sentFrames: number;
  /** Payloads dropped because the queue was full or the payload alone exceeded the bound. */
  droppedMessages: number;
  /** Successful authenticated connections made to this peer. */
  connects: number;
  /** Connection attempts that failed (refused, reset, bad handshake, timeout). */
  failedConnects: number;
  lastError: string | null;
}

export interface TransportStats {
  nodeId: NodeId;
  /** The bound port once started, else null. */
  port: number | null;
  receivedMessages: number;
  receivedBytes: number;
  /** Authenticated inbound links currently open. */
  inboundConnections: number;
  /** Handshakes that failed or were abandoned: wrong secret, wrong node id, replay, garbage, timeout. */
  handshakeFailures: number;
  /** Authenticated frames rejected (bad MAC, bad sequence number, malformed); each closed its link. */
  rejectedFrames: number;
  /** Payloads addressed to a node that is not a peer. */
  droppedUnknownPeer: number;
  peers: Record<NodeId, PeerStats>;
}

export interface Transport {
  /** Listen and start dialling peers. Resolves with the bound port. */
  start(): Promise<{ port: number }>;
  /**
   * Queue `payload` for `to` and return at once. Returns false when it was dropped (unknown
   * peer, closed transport, or the payload alone exceeds the queue bound). Payloads for one peer
   * are sent in order on a link; across reconnects some may be lost. Do not mutate `payload`
   * after handing it over: it may be written later without a copy.
   */
  send(to: NodeId, payload: Uint8Array): boolean;
  /** Add a peer, or move an existing one to a new address (its link reconnects). */
  addPeer(id: NodeId, address: PeerAddress): void;
  /** Stop all traffic with a peer: its queue is discarded and its links closed. */
  removePeer(id: NodeId): void;
  stats(): TransportStats;
  /** Close the listener and every link. Queued payloads are discarded. Idempotent. */
  close(): Promise<void>;
}
