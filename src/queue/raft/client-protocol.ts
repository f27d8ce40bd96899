/**
 * The client protocol of a queue node's client port: a connection opens with the 4-byte magic
 * "PFQ1", then both sides exchange frames `[u32 big-endian length][UTF-8 JSON]`. Requests carry
 * an id and are answered out of order (a long-poll claim does not hold up an enqueue behind it),
 * so one connection carries hundreds of requests in flight and many frames share a TCP segment.
 *
 *   request  {"i": 7, "o": "enqueue", "a": {...}, "n": "10.0.0.2:7101"?}
 *   response {"i": 7, "r": result} | {"i": 7, "e": {code, message, name, leader?, leaderAddress?, outcomeUnknown?}}
 *   cancel   {"i": 8, "o": "cancel", "a": {"request": 7}}   (abort a waiting claim; no answer)
 *
 * `n` names a node the client could not reach: a node that believes that node still leads
 * holds the request until a new leader is known, instead of redirecting the client to a corpse.
 *
 * Admin operations (membership changes, leadership transfer) carry an HMAC of the cluster secret
 * over the request and a timestamp (`adminProof`); the secret itself never crosses the wire.
 *
 * The same port answers plain HTTP `GET /status` and `GET /health` (anything not starting with
 * the magic is treated as HTTP), so operators can curl it.
 */

import { createHmac, timingSafeEqual } from 'node:crypto';
import type { ErrorCode } from '../../errors/index.ts';
import { isPixelfleetError, PixelfleetError } from '../../errors/index.ts';

export const PROTOCOL_MAGIC = Buffer.from('PFQ1', 'latin1');
/** Largest frame either side accepts: commands are capped at 1 MiB, reads may list many jobs. */
export const MAX_FRAME_BYTES = 64 * 1024 * 1024;

export type Operation =
  | 'enqueue'
  | 'claim'
  | 'ack'
  | 'nack'
  | 'extend'
  | 'releaseConsumer'
  | 'get'
  | 'deadLetters'
  | 'stats'
  | 'status'
  | 'watchLane'
  | 'cancel'
  | 'addMember'
  | 'removeMember'
  | 'transferLeadership';

/** Operations that change the cluster itself: they must carry a proof of the cluster secret. */
export const adminOperations: ReadonlySet<Operation> = new Set([
  'addMember',
  'removeMember',
  'transferLeadership',
]);
/** An admin proof is accepted this long around the server's clock (replays beyond it are refused). */
export const ADMIN_PROOF_WINDOW_MS = 60_000;

/**
 * Proof that an admin request comes from someone holding the cluster secret, without sending
 * the secret: HMAC-SHA256 over the operation, its arguments and a timestamp.
 */
export function adminProof(
  secret: string | Uint8Array,
  operation: Operation,
  args: unknown,
  at: number,
): string {
  return createHmac('sha256', secret)
    .update(JSON.stringify(['pixelfleet-queue-admin-v1', operation, args, at]))
    .digest('hex');
}

export function verifyAdminProof(
  secret: string | Uint8Array,
  operation: Operation,
  args: Record<string, unknown>,
  now: number,
): boolean {
  const { proof, at, ...rest } = args;
  if (typeof proof !== 'string' || typeof at !== 'number' || Math.abs(now - at) > ADMIN_PROOF_WINDOW_MS)
    return false;
  const expected = Buffer.from(adminProof(secret, operation, rest, at), 'hex');
  const given = Buffer.from(proof, 'hex');
  return given.byteLength === expected.byteLength && timingSafeEqual(given, expected);
}

export interface RequestFrame {
  i: number;
  o: Operation;
  a?: Record<string, unknown>;
  /** Address of a node the client could not reach (see module header). */
  n?: string;
}

export interface WireError {
  code: string;
  message: string;
  /** 'RangeError' / 'TypeError' for argument errors, so the client rethrows the same kind. */
  name: string;
  leader?: string | null;
  leaderAddress?: string | null;
  outcomeUnknown?: boolean;
}

export interface ResponseFrame {
  i: number;
  r?: unknown;
  e?: WireError;
}

export function encodeFrame(value: unknown): Buffer {
  const body = JSON.stringify(value);
  const length = Buffer.byteLength(body);
  const frame = Buffer.allocUnsafe(4 + length);
  frame.writeUInt32BE(length, 0);
  frame.write(body, 4, 'utf8');
  return frame;
}

/** Splits a byte stream into frame bodies. */
export class FrameSplitter {
  #buffer: Buffer = Buffer.alloc(0);

  /** Adds bytes; returns every complete frame body now available. Throws on an oversized frame. */
  push(chunk: Buffer): Buffer[] {
    this.#buffer = this.#buffer.byteLength === 0 ? chunk : Buffer.concat([this.#buffer, chunk]);
    const frames: Buffer[] = [];
    let offset = 0;
    while (this.#buffer.byteLength - offset >= 4) {
      const length = this.#buffer.readUInt32BE(offset);
      if (length > MAX_FRAME_BYTES) {
        throw new PixelfleetError(
          'PF_ERR_BAD_REQUEST',
          `frame of ${length} bytes exceeds ${MAX_FRAME_BYTES}`,
        );
      }
      if (this.#buffer.byteLength - offset - 4 < length) break;
      frames.push(this.#buffer.subarray(offset + 4, offset + 4 + length));
      offset += 4 + length;
    }
    this.#buffer = offset === 0 ? this.#buffer : this.#buffer.subarray(offset);
    // Do not pin a large chunk in memory for a few trailing bytes.
    if (this.#buffer.byteLength > 0 && offset > 0) this.#buffer = Buffer.from(this.#buffer);
    return frames;
  }
}

export function toWireError(error: unknown): WireError {
  if (isPixelfleetError(error)) {
    const wire: WireError = { code: error.code, message: error.message, name: 'PixelfleetError' };
    const extensions = error.extensions;
    if ('leader' in extensions) wire.leader = (extensions.leader as string | null) ?? null;
    if ('leaderAddress' in extensions)
      wire.leaderAddress = (extensions.leaderAddress as string | null) ?? null;
    if (extensions.outcomeUnknown === true) wire.outcomeUnknown = true;
    return wire;
  }
  if (error instanceof RangeError || error instanceof TypeError) {
    return { code: 'PF_ERR_BAD_REQUEST', message: error.message, name: error.name };
  }
  return {
    code: 'PF_ERR_INTERNAL',
    message: error instanceof Error ? error.message : String(error),
    name: 'Error',
  };
}

export function fromWireError(wire: WireError): Error {
  if (wire.name === 'RangeError') return new RangeError(wire.message);
  if (wire.name === 'TypeError') return new TypeError(wire.message);
  const extensions: Record<string, unknown> = {};
  if (wire.leader !== undefined) extensions.leader = wire.leader;
  if (wire.leaderAddress !== undefined) extensions.leaderAddress = wire.leaderAddress;
  if (wire.outcomeUnknown) extensions.outcomeUnknown = true;
  const code = (wire.code.startsWith('PF_ERR_') ? wire.code : 'PF_ERR_INTERNAL') as ErrorCode;
  return new PixelfleetError(code, wire.message, { extensions });
}

/** "host:port" for an address. */
export function formatAddress(address: { host: string; port: number }): string {
  return `${address.host}:${address.port}`;
}

/** Parses "host:port" (IPv6 hosts in brackets). Throws RangeError. */
export function parseAddress(text: string): { host: string; port: number } {
  const match = /^(?:\[([^\]]+)\]|([^:]+)):(\d{1,5})$/.exec(text.trim());
  const port = match ? Number(match[3]) : Number.NaN;
  if (!match || !(port > 0 && port < 65536)) {
    throw new RangeError(`address must be host:port, got ${JSON.stringify(text)}`);
  }
  return { host: (match[1] ?? match[2])!, port };
}
