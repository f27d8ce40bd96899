/**
 * The link handshake: mutual proof of the shared cluster secret over fresh nonces.
 *
 *   dialer   → acceptor  HELLO      version, dialer nonce, dialer id, expected acceptor id
 *   acceptor → dialer    CHALLENGE  acceptor nonce, acceptor id, acceptor proof
 *   dialer   → acceptor  PROOF      dialer proof
 *
 * Both proofs are HMAC-SHA256(secret, role label ‖ transcript), where the transcript holds both
 * nonces and both node ids. Guarantees: the secret never crosses the wire; a recorded handshake
 * cannot be replayed (the other side's nonce is fresh each time); a proof cannot be reflected
 * back (the role label differs); a link cannot be misrouted (both ids are bound in). The same
 * transcript derives one session key per direction, so frames MAC'd on one connection are
 * worthless on any other.
 */
import { createHmac, createSecretKey, type KeyObject, randomBytes, timingSafeEqual } from 'node:crypto';
import type { NodeId } from '../types.ts';
import { lengthPrefixBytes } from './frame-reader.ts';

export const protocolVersion = 1;
export const nonceBytes = 32;
export const proofBytes = 32;
/** Handshake frames are tiny; anything larger before authentication is hostile or confused. */
export const maxHandshakeFrameBytes = 1024;

export const frameType = {
  hello: 0x01,
  challenge: 0x02,
  proof: 0x03,
  messages: 0x10,
  heartbeat: 0x11,
} as const;

const magic = Buffer.from('PFT1', 'latin1');
const label = {
  acceptorProof: Buffer.from('pixelfleet transport v1 acceptor proof', 'latin1'),
  dialerProof: Buffer.from('pixelfleet transport v1 dialer proof', 'latin1'),
  dialerToAcceptor: Buffer.from('pixelfleet transport v1 key dialer to acceptor', 'latin1'),
  acceptorToDialer: Buffer.from('pixelfleet transport v1 key acceptor to dialer', 'latin1'),
};

export class HandshakeError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'HandshakeError';
  }
}

export interface Hello {
  version: number;
  dialerNonce: Buffer;
  dialerId: NodeId;
  acceptorId: NodeId;
}

export interface Challenge {
  acceptorNonce: Buffer;
  acceptorId: NodeId;
  acceptorProof: Buffer;
}

export interface SessionKeys {
  sendKey: KeyObject;
  receiveKey: KeyObject;
}

export function freshNonce(): Buffer {
  return randomBytes(nonceBytes);
}

export function secretKey(secret: Uint8Array | string): KeyObject {
  const bytes = typeof secret === 'string' ? Buffer.from(secret, 'utf8') : Buffer.from(secret);
  return createSecretKey(bytes);
}

function encodeId(id: NodeId): Buffer {
  const bytes = Buffer.from(id, 'utf8');
  if (bytes.length === 0 || bytes.length > 255) throw new RangeError(`node id "${id}" must be 1-255 bytes`);
  return Buffer.concat([Buffer.of(bytes.length), bytes]);
}

/** Reads a length-prefixed id at `offset`; returns it and the offset after it. */
function decodeId(body: Buffer, offset: number): [NodeId, number] {
  if (offset >= body.length) throw new HandshakeError('truncated node id');
  const length = body[offset]!;
  const end = offset + 1 + length;
  if (length === 0 || end > body.length) throw new HandshakeError('truncated node id');
  return [body.toString('utf8', offset + 1, end), end];
}

function frame(type: number, parts: Buffer[]): Buffer {
  const body = Buffer.concat([Buffer.of(type), ...parts]);
  const header = Buffer.alloc(lengthPrefixBytes);
  header.writeUInt32BE(body.length, 0);
  return Buffer.concat([header, body]);
}

/** Splits a handshake frame into its type and body, checking the type. */
function open(frameBytes: Buffer, expectedType: number): Buffer {
  const type = frameBytes[lengthPrefixBytes];
  if (type !== expectedType)
    throw new HandshakeError(`expected handshake frame ${expectedType}, got ${type}`);
  return frameBytes.subarray(lengthPrefixBytes + 1);
}

export function encodeHello(hello: Hello): Buffer {
  return frame(frameType.hello, [
    magic,
    Buffer.of(hello.version),
    hello.dialerNonce,
    encodeId(hello.dialerId),
    encodeId(hello.acceptorId),
  ]);
}

export function decodeHello(frameBytes: Buffer): Hello {
  const body = open(frameBytes, frameType.hello);
  if (body.length < magic.length + 1 + nonceBytes || !body.subarray(0, magic.length).equals(magic)) {
    throw new HandshakeError('not a Pixelfleet transport hello');
  }
  const version = body[magic.length]!;
  const nonceStart = magic.length + 1;
  const dialerNonce = Buffer.from(body.subarray(nonceStart, nonceStart + nonceBytes));
  const [dialerId, afterDialer] = decodeId(body, nonceStart + nonceBytes);
  const [acceptorId, end] = decodeId(body, afterDialer);
  if (end !== body.length) throw new HandshakeError('trailing bytes in hello');
  return { version, dialerNonce, dialerId, acceptorId };
}

export function encodeChallenge(challenge: Challenge): Buffer {
  return frame(frameType.challenge, [
    challenge.acceptorNonce,
    challenge.acceptorProof,
    encodeId(challenge.acceptorId),
  ]);
}

export function decodeChallenge(frameBytes: Buffer): Challenge {
  const body = open(frameBytes, frameType.challenge);
  if (body.length < nonceBytes + proofBytes) throw new HandshakeError('truncated challenge');
  const acceptorNonce = Buffer.from(body.subarray(0, nonceBytes));
  const acceptorProof = Buffer.from(body.subarray(nonceBytes, nonceBytes + proofBytes));
  const [acceptorId, end] = decodeId(body, nonceBytes + proofBytes);
  if (end !== body.length) throw new HandshakeError('trailing bytes in challenge');
  return { acceptorNonce, acceptorId, acceptorProof };
}

export function encodeProof(dialerProof: Buffer): Buffer {
  return frame(frameType.proof, [dialerProof]);
}

export function decodeProof(frameBytes: Buffer): Buffer {
  const body = open(frameBytes, frameType.proof);
  if (body.length !== proofBytes) throw new HandshakeError('malformed proof');
  return Buffer.from(body);
}

/** Everything both sides agree on once the challenge is out; every proof and key covers it. */
export interface Transcript {
  dialerNonce: Buffer;
  acceptorNonce: Buffer;
  dialerId: NodeId;
  acceptorId: NodeId;
}

function mac(key: KeyObject, purpose: Buffer, transcript: Transcript): Buffer {
  return createHmac('sha256', key)
    .update(purpose)
    .update(transcript.dialerNonce)
    .update(transcript.acceptorNonce)
    .update(encodeId(transcript.dialerId))
    .update(encodeId(transcript.acceptorId))
    .digest();
}

export function acceptorProof(secret: KeyObject, transcript: Transcript): Buffer {
  return mac(secret, label.acceptorProof, transcript);
}

export function dialerProof(secret: KeyObject, transcript: Transcript): Buffer {
  return mac(secret, label.dialerProof, transcript);
}

/** Constant-time comparison, so a forger learns nothing from how fast a guess is refused. */
export function proofsMatch(expected: Buffer, received: Buffer): boolean {
  return expected.length === received.length && timingSafeEqual(expected, received);
}

export function sessionKeys(
  secret: KeyObject,
  transcript: Transcript,
  role: 'dialer' | 'acceptor',
): SessionKeys {
  const dialerToAcceptor = createSecretKey(mac(secret, label.dialerToAcceptor, transcript));
  const acceptorToDialer = createSecretKey(mac(secret, label.acceptorToDialer, transcript));
  return role === 'dialer'
    ? { sendKey: dialerToAcceptor, receiveKey: acceptorToDialer }
    : { sendKey: acceptorToDialer, receiveKey: dialerToAcceptor };
}
