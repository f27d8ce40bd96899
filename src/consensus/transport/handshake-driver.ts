/**
 * Runs the handshake of `handshake.ts` over a socket, for either role, with a deadline. On
 * success the socket carries no handshake listeners any more and the reader may still hold
 * frames the peer pipelined behind its last handshake frame; `AuthenticatedConnection` takes
 * both over. On failure it rejects with a `HandshakeError` and the caller destroys the socket.
 */
import type { KeyObject } from 'node:crypto';
import type { Socket } from 'node:net';
import type { NodeId } from '../types.ts';
import { FrameReader } from './frame-reader.ts';
import {
  acceptorProof,
  decodeChallenge,
  decodeHello,
  decodeProof,
  dialerProof,
  encodeChallenge,
  encodeHello,
  encodeProof,
  freshNonce,
  HandshakeError,
  maxHandshakeFrameBytes,
  proofsMatch,
  protocolVersion,
  type SessionKeys,
  sessionKeys,
  type Transcript,
} from './handshake.ts';

/**
 * Feeds frames to `onFrame` until it returns true (handshake complete), the socket closes, or
 * the deadline passes.
 */
function readHandshakeFrames(
  socket: Socket,
  reader: FrameReader,
  timeoutMs: number,
  onFrame: (frame: Buffer) => boolean,
): Promise<void> {
  return new Promise((resolve, reject) => {
    let settled = false;
    const finish = (error?: Error): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.off('data', onData);
      socket.off('close', onClose);
      socket.off('error', onError);
      // Hold further bytes in the socket until the authenticated connection listens for them.
      if (error === undefined) socket.pause();
      if (error === undefined) resolve();
      else reject(error);
    };
    const onData = (chunk: Buffer): void => {
      reader.push(chunk);
      try {
        for (let frame = reader.next(); frame !== null; frame = reader.next()) {
          if (onFrame(frame)) {
            finish();
            return;
          }
        }
      } catch (error) {
        finish(error instanceof HandshakeError ? error : new HandshakeError(String(error)));
      }
    };
    const onClose = (): void => finish(new HandshakeError('connection closed during handshake'));
    const onError = (error: Error): void => finish(new HandshakeError(`socket error: ${error.message}`));
    const timer = setTimeout(() => finish(new HandshakeError('handshake timed out')), timeoutMs);
    socket.on('data', onData);
    socket.on('close', onClose);
    socket.on('error', onError);
  });
}

export interface DialOptions {
  secret: KeyObject;
  nodeId: NodeId;
  peerId: NodeId;
  timeoutMs: number;
}

/** Dialer side: say hello, check the acceptor's proof, send ours. */
export async function dialHandshake(
  socket: Socket,
  reader: FrameReader,
  options: DialOptions,
): Promise<SessionKeys> {
  reader.maxFrameBytes = maxHandshakeFrameBytes;
  const dialerNonce = freshNonce();
  let keys: SessionKeys | undefined;
  const done = readHandshakeFrames(socket, reader, options.timeoutMs, (frame) => {
    const challenge = decodeChallenge(frame);
    if (challenge.acceptorId !== options.peerId) {
      throw new HandshakeError(`expected peer ${options.peerId}, reached ${challenge.acceptorId}`);
    }
    const transcript: Transcript = {
      dialerNonce,
      acceptorNonce: challenge.acceptorNonce,
      dialerId: options.nodeId,
      acceptorId: options.peerId,
    };
    if (!proofsMatch(acceptorProof(options.secret, transcript), challenge.acceptorProof)) {
      throw new HandshakeError(`peer ${options.peerId} does not know the cluster secret`);
    }
    socket.write(encodeProof(dialerProof(options.secret, transcript)));
    keys = sessionKeys(options.secret, transcript, 'dialer');
    return true;
  });
  socket.write(
    encodeHello({
      version: protocolVersion,
      dialerNonce,
      dialerId: options.nodeId,
      acceptorId: options.peerId,
    }),
  );
  await done;
  return keys!;
}

export interface AcceptOptions {
  secret: KeyObject;
  nodeId: NodeId;
  timeoutMs: number;
  /** Whether a dialer claiming this id may link at all (known peer, not ourselves). */
  admits(dialerId: NodeId): boolean;
}

/** Acceptor side: check the hello, challenge with our proof, check the dialer's proof. */
export async function acceptHandshake(
  socket: Socket,
  reader: FrameReader,
  options: AcceptOptions,
): Promise<{ peerId: NodeId; keys: SessionKeys }> {
  reader.maxFrameBytes = maxHandshakeFrameBytes;
  let transcript: Transcript | undefined;
  await readHandshakeFrames(socket, reader, options.timeoutMs, (frame) => {
    if (transcript === undefined) {
      const hello = decodeHello(frame);
      if (hello.version !== protocolVersion) throw new HandshakeError(`unsupported version ${hello.version}`);
      if (hello.acceptorId !== options.nodeId) {
        throw new HandshakeError(`dialer expected ${hello.acceptorId}, this is ${options.nodeId}`);
      }
      if (!options.admits(hello.dialerId)) throw new HandshakeError(`node ${hello.dialerId} is not a peer`);
      transcript = {
        dialerNonce: hello.dialerNonce,
        acceptorNonce: freshNonce(),
        dialerId: hello.dialerId,
        acceptorId: options.nodeId,
      };
      socket.write(
        encodeChallenge({
          acceptorNonce: transcript.acceptorNonce,
          acceptorId: options.nodeId,
          acceptorProof: acceptorProof(options.secret, transcript),
        }),
      );
      return false;
    }
    if (!proofsMatch(dialerProof(options.secret, transcript), decodeProof(frame))) {
      throw new HandshakeError(`node ${transcript.dialerId} does not know the cluster secret`);
    }
    return true;
  });
  return { peerId: transcript!.dialerId, keys: sessionKeys(options.secret, transcript!, 'acceptor') };
}

export function handshakeReader(): FrameReader {
  return new FrameReader(maxHandshakeFrameBytes);
}
