/**
 * The link this node dials to one peer and sends through. It owns the peer's bounded queue,
 * dials, authenticates, drains the queue in batched frames while the socket has room, and on
 * any failure redials after an exponential, jittered backoff. `send` never blocks: it enqueues
 * and schedules one flush per event-loop turn, so a burst of Raft messages leaves as one frame.
 */
import type { KeyObject } from 'node:crypto';
import { connect, type Socket } from 'node:net';
import type { NodeId } from '../types.ts';
import {
  AuthenticatedConnection,
  type CloseReason,
  largestPayloadBytes,
} from './authenticated-connection.ts';
import { reconnectDelay } from './backoff.ts';
import { dialHandshake, handshakeReader } from './handshake-driver.ts';
import { OutboundQueue } from './outbound-queue.ts';
import type { TransportSettings } from './settings.ts';
import type { PeerAddress, PeerState, PeerStats } from './types.ts';

/** Bytes of payload per frame: big enough to amortise MAC and syscall, small enough to interleave. */
const preferredBatchBytes = 256 * 1024;

/** What every link shares with its transport. */
export interface LinkContext {
  nodeId: NodeId;
  secret: KeyObject;
  settings: TransportSettings;
  deliver(from: NodeId, payload: Uint8Array): void;
  countHandshakeFailure(): void;
  countRejectedFrame(): void;
  onPeerStateChange?(peer: NodeId, state: PeerState): void;
}

function ignoreSocketError(): void {
  // Socket errors are handled through 'close'; this listener only keeps them from crashing the process.
}

export class OutboundLink {
  readonly peerId: NodeId;
  readonly #context: LinkContext;
  readonly #queue: OutboundQueue;
  /** Payloads larger than this would make the peer reject the frame (and kill the link). */
  readonly #largestPayload: number;
  /** Framed payload bytes per frame, kept under the frame limit. */
  readonly #batchBytes: number;
  #address: PeerAddress;
  #state: PeerState = 'disconnected';
  #socket: Socket | null = null;
  #connection: AuthenticatedConnection | null = null;
  #reconnectTimer: NodeJS.Timeout | null = null;
  #attempt = 0;
  #flushScheduled = false;
  #waitingForDrain = false;
  #closed = false;
  #sentMessages = 0;
  #sentBytes = 0;
  #sentFrames = 0;
  #droppedMessages = 0;
  #connects = 0;
  #failedConnects = 0;
  #lastError: string | null = null;

  constructor(context: LinkContext, peerId: NodeId, address: PeerAddress) {
    this.#context = context;
    this.peerId = peerId;
    this.#address = { ...address };
    this.#queue = new OutboundQueue(context.settings.maxQueuedBytesPerPeer, context.settings.dropPolicy);
    this.#largestPayload = largestPayloadBytes(context.settings.maxFrameBytes);
    this.#batchBytes = Math.min(preferredBatchBytes, this.#largestPayload);
  }

  get address(): PeerAddress {
    return { ...this.#address };
  }

  get state(): PeerState {
    return this.#state;
  }

  start(): void {
    if (this.#closed || this.#socket !== null || this.#reconnectTimer !== null) return;
    this.#dial();
  }

  /** Queue a payload; false when it was dropped. */
  enqueue(payload: Uint8Array): boolean {
    if (this.#closed || payload.length > this.#largestPayload) {
      this.#droppedMessages += 1;
      return false;
    }
    const { accepted, dropped } = this.#queue.push(payload);
    this.#droppedMessages += dropped;
    if (accepted) this.#scheduleFlush();
    return accepted;
  }

  /** Point the link at a new address; the current connection, if any, is replaced at once. */
  moveTo(address: PeerAddress): void {
    if (address.host === this.#address.host && address.port === this.#address.port) return;
    this.#address = { ...address };
    if (this.#closed) return;
    this.#abandonCurrent('peer moved to a new address');
    this.#attempt = 0;
    this.#dial();
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#abandonCurrent('link closed');
    this.#droppedMessages += this.#queue.clear();
    this.#setState('closed');
  }

  stats(): PeerStats {
    return {
      address: this.address,
      state: this.#state,
      queuedMessages: this.#queue.length,
      queuedBytes: this.#queue.bytes,
      sentMessages: this.#sentMessages,
      sentBytes: this.#sentBytes,
      sentFrames: this.#sentFrames,
      droppedMessages: this.#droppedMessages,
      connects: this.#connects,
      failedConnects: this.#failedConnects,
      lastError: this.#lastError,
    };
  }

  #setState(state: PeerState): void {
    if (this.#state === state) return;
    this.#state = state;
    this.#context.onPeerStateChange?.(this.peerId, state);
  }

  /** Drop the current socket or pending redial without counting it as a failure. */
  #abandonCurrent(reason: string): void {
    if (this.#reconnectTimer !== null) {
      clearTimeout(this.#reconnectTimer);
      this.#reconnectTimer = null;
    }
    const connection = this.#connection;
    const socket = this.#socket;
    this.#connection = null;
    this.#socket = null;
    connection?.close({ kind: 'local', message: reason });
    socket?.destroy();
  }

  #dial(): void {
    this.#reconnectTimer = null;
    if (this.#closed) return;
    this.#setState('connecting');
    const { settings } = this.#context;
    const socket = connect({ host: this.#address.host, port: this.#address.port });
    socket.on('error', ignoreSocketError);
    socket.setNoDelay(true);
    this.#socket = socket;
    let reachedPeer = false;
    socket.once('connect', () => {
      reachedPeer = true;
    });
    const reader = handshakeReader();
    dialHandshake(socket, reader, {
      secret: this.#context.secret,
      nodeId: this.#context.nodeId,
      peerId: this.peerId,
      timeoutMs: settings.handshakeTimeoutMs,
    }).then(
      (keys) => {
        if (this.#socket !== socket) {
          socket.destroy();
          return;
        }
        const connection = new AuthenticatedConnection({
          socket,
          reader,
          keys,
          maxFrameBytes: settings.maxFrameBytes,
          heartbeatIntervalMs: settings.heartbeatIntervalMs,
          idleTimeoutMs: settings.idleTimeoutMs,
          events: {
            onPayload: (payload) => this.#context.deliver(this.peerId, payload),
            onClose: (reason) => this.#connectionClosed(socket, reason),
          },
        });
        if (connection.closed) return;
        this.#connection = connection;
        this.#waitingForDrain = false;
        this.#attempt = 0;
        this.#connects += 1;
        this.#lastError = null;
        this.#setState('connected');
        this.#flush();
      },
      (error: Error) => {
        socket.destroy();
        if (this.#socket !== socket) return;
        this.#socket = null;
        if (reachedPeer) this.#context.countHandshakeFailure();
        this.#failedConnects += 1;
        this.#lastError = error.message;
        this.#scheduleRedial();
      },
    );
  }

  #connectionClosed(socket: Socket, reason: CloseReason): void {
    if (reason.kind === 'rejected-frame') this.#context.countRejectedFrame();
    if (this.#socket !== socket) return;
    this.#socket = null;
    this.#connection = null;
    this.#lastError = reason.message;
    this.#scheduleRedial();
  }

  #scheduleRedial(): void {
    if (this.#closed) return;
    this.#setState('disconnected');
    const { settings } = this.#context;
    const delay = reconnectDelay(this.#attempt, {
      initialDelayMs: settings.reconnectInitialDelayMs,
      maxDelayMs: settings.reconnectMaxDelayMs,
      random: settings.random,
    });
    this.#attempt += 1;
    this.#reconnectTimer = setTimeout(() => this.#dial(), delay);
    this.#reconnectTimer.unref();
  }

  #scheduleFlush(): void {
    if (this.#flushScheduled || this.#connection === null || this.#waitingForDrain) return;
    this.#flushScheduled = true;
    setImmediate(() => {
      this.#flushScheduled = false;
      this.#flush();
    });
  }

  #flush(): void {
    const connection = this.#connection;
    if (connection === null || connection.closed || this.#waitingForDrain) return;
    while (this.#queue.length > 0) {
      const batch = this.#queue.takeBatch(this.#batchBytes);
      const hasRoom = connection.sendMessages(batch);
      this.#sentFrames += 1;
      this.#sentMessages += batch.length;
      for (const payload of batch) this.#sentBytes += payload.length;
      if (!hasRoom) {
        this.#waitingForDrain = true;
        connection.onDrain(() => {
          if (this.#connection !== connection) return;
          this.#waitingForDrain = false;
          this.#flush();
        });
        return;
      }
    }
  }
}
