/**
 * One authenticated connection after its handshake. Every frame is
 *
 *   [u32 length][u8 type][u64 sequence][body][HMAC-SHA256 over everything before it]
 *
 * keyed with this connection's per-direction session key. The receiver insists on the exact
 * next sequence number, so a frame cannot be forged, replayed, reordered or dropped from the
 * middle by anyone without the key; the first bad frame closes the connection. A `messages`
 * frame carries a batch: `[u32 count]` then `[u32 length][payload]` per payload, so one MAC and
 * one syscall cover many small Raft messages. Heartbeats keep an idle link provably alive.
 */
import { createHmac, type KeyObject, timingSafeEqual } from 'node:crypto';
import type { Socket } from 'node:net';
import { type FrameReader, FrameTooLargeError, lengthPrefixBytes } from './frame-reader.ts';
import { frameType, type SessionKeys } from './handshake.ts';

const typeBytes = 1;
const sequenceBytes = 8;
const macBytes = 32;
const countBytes = 4;
const headerBytes = lengthPrefixBytes + typeBytes + sequenceBytes;
/** Payloads at least this large are written by reference instead of copied into the frame. */
const copyThresholdBytes = 16 * 1024;

/**
 * Largest payload that fits one frame under a receiver's `maxFrameBytes` (the frame's length
 * field counts everything after itself: type, sequence, count, the payload's prefix, the MAC).
 */
export function largestPayloadBytes(maxFrameBytes: number): number {
  return maxFrameBytes - (typeBytes + sequenceBytes + countBytes + lengthPrefixBytes + macBytes);
}

export type CloseReason =
  | { kind: 'rejected-frame'; message: string }
  | { kind: 'idle'; message: string }
  | { kind: 'socket'; message: string }
  | { kind: 'local'; message: string };

export interface ConnectionEvents {
  onPayload(payload: Uint8Array): void;
  onClose(reason: CloseReason): void;
}

export interface ConnectionOptions {
  socket: Socket;
  reader: FrameReader;
  keys: SessionKeys;
  maxFrameBytes: number;
  heartbeatIntervalMs: number;
  idleTimeoutMs: number;
  events: ConnectionEvents;
}

class RejectedFrameError extends Error {}

function writeSequence(target: Buffer, offset: number, sequence: number): void {
  target.writeUInt32BE(Math.floor(sequence / 2 ** 32), offset);
  target.writeUInt32BE(sequence >>> 0, offset + 4);
}

function readSequence(source: Buffer, offset: number): number {
  return source.readUInt32BE(offset) * 2 ** 32 + source.readUInt32BE(offset + 4);
}

function asBuffer(payload: Uint8Array): Buffer {
  return Buffer.isBuffer(payload)
    ? payload
    : Buffer.from(payload.buffer, payload.byteOffset, payload.byteLength);
}

export class AuthenticatedConnection {
  readonly #socket: Socket;
  readonly #reader: FrameReader;
  readonly #sendKey: KeyObject;
  readonly #receiveKey: KeyObject;
  readonly #events: ConnectionEvents;
  readonly #heartbeatIntervalMs: number;
  readonly #idleTimeoutMs: number;
  readonly #livenessTimer: NodeJS.Timeout;
  #sendSequence = 0;
  #receiveSequence = 0;
  #lastSentAt = performance.now();
  #lastReceivedAt = performance.now();
  #closed = false;

  constructor(options: ConnectionOptions) {
    this.#socket = options.socket;
    this.#reader = options.reader;
    this.#sendKey = options.keys.sendKey;
    this.#receiveKey = options.keys.receiveKey;
    this.#events = options.events;
    this.#heartbeatIntervalMs = options.heartbeatIntervalMs;
    this.#idleTimeoutMs = options.idleTimeoutMs;
    this.#reader.maxFrameBytes = options.maxFrameBytes;

    this.#socket.on('data', (chunk: Buffer) => this.#receive(chunk));
    this.#socket.on('error', (error) => this.close({ kind: 'socket', message: error.message }));
    this.#socket.on('close', () => this.close({ kind: 'socket', message: 'connection closed by peer' }));
    const tick = Math.max(10, Math.min(this.#heartbeatIntervalMs, this.#idleTimeoutMs / 2));
    this.#livenessTimer = setInterval(() => this.#checkLiveness(), tick);
    this.#livenessTimer.unref();
    // The peer may have pipelined frames right behind its last handshake frame.
    this.#receive(Buffer.alloc(0));
    if (this.#socket.destroyed) this.close({ kind: 'socket', message: 'connection closed by peer' });
    else this.#socket.resume();
  }

  get closed(): boolean {
    return this.#closed;
  }

  onDrain(listener: () => void): void {
    this.#socket.once('drain', listener);
  }

  /** Send payloads as one frame. Returns false when the socket buffer is full. */
  sendMessages(payloads: Uint8Array[]): boolean {
    if (this.#closed) return false;
    let smallBytes = 0;
    for (const payload of payloads) {
      smallBytes += lengthPrefixBytes + (payload.length < copyThresholdBytes ? payload.length : 0);
    }
    const scratch = Buffer.allocUnsafe(headerBytes + countBytes + smallBytes);
    let bodyBytes = typeBytes + sequenceBytes + countBytes + macBytes;
    for (const payload of payloads) bodyBytes += lengthPrefixBytes + payload.length;
    scratch.writeUInt32BE(bodyBytes, 0);
    scratch[lengthPrefixBytes] = frameType.messages;
    writeSequence(scratch, lengthPrefixBytes + typeBytes, this.#sendSequence);
    scratch.writeUInt32BE(payloads.length, headerBytes);

    const chunks: Buffer[] = [];
    let position = headerBytes + countBytes;
    let segmentStart = 0;
    for (const payload of payloads) {
      scratch.writeUInt32BE(payload.length, position);
      position += lengthPrefixBytes;
      if (payload.length < copyThresholdBytes) {
        scratch.set(payload, position);
        position += payload.length;
      } else {
        chunks.push(scratch.subarray(segmentStart, position), asBuffer(payload));
        segmentStart = position;
      }
    }
    if (position > segmentStart) chunks.push(scratch.subarray(segmentStart, position));
    return this.#writeFrame(chunks);
  }

  close(reason: CloseReason): void {
    if (this.#closed) return;
    this.#closed = true;
    clearInterval(this.#livenessTimer);
    this.#socket.destroy();
    this.#events.onClose(reason);
  }

  #sendHeartbeat(): void {
    const header = Buffer.allocUnsafe(headerBytes);
    header.writeUInt32BE(typeBytes + sequenceBytes + macBytes, 0);
    header[lengthPrefixBytes] = frameType.heartbeat;
    writeSequence(header, lengthPrefixBytes + typeBytes, this.#sendSequence);
    this.#writeFrame([header]);
  }

  /** MACs and writes one frame whose chunks hold everything but the MAC. */
  #writeFrame(chunks: Buffer[]): boolean {
    const hmac = createHmac('sha256', this.#sendKey);
    for (const chunk of chunks) hmac.update(chunk);
    const mac = hmac.digest();
    this.#sendSequence += 1;
    this.#lastSentAt = performance.now();
    this.#socket.cork();
    for (const chunk of chunks) this.#socket.write(chunk);
    const hasRoom = this.#socket.write(mac);
    this.#socket.uncork();
    return hasRoom;
  }

  #checkLiveness(): void {
    const now = performance.now();
    if (now - this.#lastReceivedAt >= this.#idleTimeoutMs) {
      this.close({ kind: 'idle', message: `nothing received for ${this.#idleTimeoutMs} ms` });
      return;
    }
    if (now - this.#lastSentAt >= this.#heartbeatIntervalMs) this.#sendHeartbeat();
  }

  #receive(chunk: Buffer): void {
    if (this.#closed) return;
    if (chunk.length > 0) this.#lastReceivedAt = performance.now();
    this.#reader.push(chunk);
    try {
      for (let frame = this.#reader.next(); frame !== null; frame = this.#reader.next()) {
        this.#verify(frame);
        if (this.#closed) return;
      }
    } catch (error) {
      if (error instanceof RejectedFrameError || error instanceof FrameTooLargeError) {
        this.close({ kind: 'rejected-frame', message: error.message });
        return;
      }
      throw error;
    }
  }

  #verify(frame: Buffer): void {
    if (frame.length < headerBytes + macBytes) throw new RejectedFrameError('frame too short');
    const macStart = frame.length - macBytes;
    const expected = createHmac('sha256', this.#receiveKey).update(frame.subarray(0, macStart)).digest();
    if (!timingSafeEqual(expected, frame.subarray(macStart))) throw new RejectedFrameError('bad frame MAC');
    const sequence = readSequence(frame, lengthPrefixBytes + typeBytes);
    if (sequence !== this.#receiveSequence) {
      throw new RejectedFrameError(`frame sequence ${sequence}, expected ${this.#receiveSequence}`);
    }
    this.#receiveSequence += 1;
    const type = frame[lengthPrefixBytes];
    if (type === frameType.heartbeat) return;
    if (type !== frameType.messages) throw new RejectedFrameError(`unknown frame type ${type}`);
    this.#deliver(frame.subarray(headerBytes, macStart));
  }

  /** Parses a whole batch before delivering any of it, so a malformed frame delivers nothing. */
  #deliver(body: Buffer): void {
    if (body.length < countBytes) throw new RejectedFrameError('truncated batch');
    const count = body.readUInt32BE(0);
    const payloads: Buffer[] = [];
    let position = countBytes;
    for (let index = 0; index < count; index += 1) {
      if (position + lengthPrefixBytes > body.length) throw new RejectedFrameError('truncated batch');
      const length = body.readUInt32BE(position);
      position += lengthPrefixBytes;
      if (position + length > body.length) throw new RejectedFrameError('truncated payload');
      payloads.push(body.subarray(position, position + length));
      position += length;
    }
    if (position !== body.length) throw new RejectedFrameError('trailing bytes in batch');
    for (const payload of payloads) {
      if (this.#closed) return;
      this.#events.onPayload(payload);
    }
  }
}
