/**
 * Unit tests of the transport's pure pieces: frame splitting, handshake proofs and keys, the
 * bounded queue and the reconnect backoff.
 */
import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { test } from 'node:test';
import fc from 'fast-check';
import { reconnectDelay } from '../../src/consensus/transport/backoff.ts';
import { FrameReader, FrameTooLargeError } from '../../src/consensus/transport/frame-reader.ts';
import {
  acceptorProof,
  decodeChallenge,
  decodeHello,
  dialerProof,
  encodeChallenge,
  encodeHello,
  freshNonce,
  HandshakeError,
  proofsMatch,
  secretKey,
  sessionKeys,
  type Transcript,
} from '../../src/consensus/transport/handshake.ts';
import { OutboundQueue } from '../../src/consensus/transport/outbound-queue.ts';

function frameOf(body: Buffer): Buffer {
  const prefix = Buffer.alloc(4);
  prefix.writeUInt32BE(body.length, 0);
  return Buffer.concat([prefix, body]);
}

test('transport units - frames survive any chunking of the stream', () => {
  fc.assert(
    fc.property(
      fc.array(fc.uint8Array({ maxLength: 300 }), { maxLength: 20 }),
      fc.array(fc.integer({ min: 1, max: 97 }), { minLength: 1, maxLength: 10 }),
      (bodies, cuts) => {
        const stream = Buffer.concat(bodies.map((body) => frameOf(Buffer.from(body))));
        const reader = new FrameReader(1024);
        const frames: Buffer[] = [];
        let offset = 0;
        for (let index = 0; offset < stream.length; index += 1) {
          const size = cuts[index % cuts.length]!;
          reader.push(stream.subarray(offset, offset + size));
          offset += size;
          for (let frame = reader.next(); frame !== null; frame = reader.next())
            frames.push(Buffer.from(frame));
        }
        assert.deepEqual(
          frames.map((frame) => frame.subarray(4)),
          bodies.map((body) => Buffer.from(body)),
        );
        assert.equal(reader.bufferedBytes, 0);
      },
    ),
  );
});

test('transport units - a frame over the limit is refused from its length alone', () => {
  const reader = new FrameReader(1024);
  const prefix = Buffer.alloc(4);
  prefix.writeUInt32BE(1025, 0);
  reader.push(prefix);
  assert.throws(() => reader.next(), FrameTooLargeError);
});

test('transport units - proofs need the secret, are bound to nonces, ids and role', () => {
  const secret = secretKey('the-cluster-secret-for-tests');
  const transcript: Transcript = {
    dialerNonce: freshNonce(),
    acceptorNonce: freshNonce(),
    dialerId: 'n1',
    acceptorId: 'n2',
  };
  const proof = acceptorProof(secret, transcript);
  assert.ok(proofsMatch(acceptorProof(secret, transcript), proof));
  assert.ok(!proofsMatch(acceptorProof(secretKey('another-secret-entirely'), transcript), proof));
  assert.ok(!proofsMatch(acceptorProof(secret, { ...transcript, acceptorNonce: freshNonce() }), proof));
  assert.ok(!proofsMatch(acceptorProof(secret, { ...transcript, dialerId: 'n3' }), proof));
  assert.ok(!proofsMatch(dialerProof(secret, transcript), proof), 'an acceptor proof cannot be reflected');

  const dialer = sessionKeys(secret, transcript, 'dialer');
  const acceptor = sessionKeys(secret, transcript, 'acceptor');
  const mac = (key: typeof dialer.sendKey): string => createHmac('sha256', key).update('x').digest('hex');
  assert.equal(mac(dialer.sendKey), mac(acceptor.receiveKey));
  assert.equal(mac(acceptor.sendKey), mac(dialer.receiveKey));
  assert.notEqual(mac(dialer.sendKey), mac(dialer.receiveKey), 'each direction has its own key');
  const other = sessionKeys(secret, { ...transcript, acceptorNonce: freshNonce() }, 'dialer');
  assert.notEqual(mac(other.sendKey), mac(dialer.sendKey), 'keys are fresh per connection');
});

test('transport units - handshake frames round-trip and reject garbage', () => {
  const hello = { version: 1, dialerNonce: freshNonce(), dialerId: 'n1', acceptorId: 'node-two' };
  assert.deepEqual(decodeHello(encodeHello(hello)), hello);
  const challenge = { acceptorNonce: freshNonce(), acceptorId: 'n2', acceptorProof: freshNonce() };
  assert.deepEqual(decodeChallenge(encodeChallenge(challenge)), challenge);
  assert.throws(() => decodeHello(frameOf(Buffer.from('\u0001GET / HTTP/1.1'))), HandshakeError);
  assert.throws(() => decodeChallenge(encodeHello(hello)), HandshakeError);
  const truncated = encodeHello(hello).subarray(0, 40);
  truncated.writeUInt32BE(truncated.length - 4, 0);
  assert.throws(() => decodeHello(truncated), HandshakeError);
});

test('transport units - the queue never exceeds its bound and keeps order', () => {
  fc.assert(
    fc.property(
      fc.array(fc.integer({ min: 4, max: 400 }), { maxLength: 200 }),
      fc.constantFrom('oldest' as const, 'newest' as const),
      (sizes, policy) => {
        const queue = new OutboundQueue(1000, policy);
        let dropped = 0;
        sizes.forEach((size, index) => {
          const payload = Buffer.alloc(size);
          payload.writeUInt32BE(index, 0);
          dropped += queue.push(payload).dropped;
          assert.ok(queue.bytes <= 1000);
        });
        const drained: number[] = [];
        while (queue.length > 0) {
          for (const payload of queue.takeBatch(300)) drained.push(Buffer.from(payload).readUInt32BE(0));
        }
        assert.equal(drained.length + dropped, sizes.length);
        assert.equal(queue.bytes, 0);
        assert.deepEqual(
          drained,
          [...drained].sort((a, b) => a - b),
          'survivors leave in send order',
        );
        if (policy === 'oldest' && sizes.length > 0) assert.equal(drained.at(-1), sizes.length - 1);
        if (policy === 'newest' && sizes.length > 0) assert.equal(drained[0], 0);
      },
    ),
  );
});

test('transport units - reconnect delay doubles to a ceiling with equal jitter', () => {
  const options = { initialDelayMs: 50, maxDelayMs: 2000 };
  assert.equal(reconnectDelay(0, { ...options, random: () => 0 }), 25);
  assert.equal(reconnectDelay(0, { ...options, random: () => 0.999999 }) < 50, true);
  assert.equal(reconnectDelay(3, { ...options, random: () => 0 }), 200);
  assert.equal(reconnectDelay(40, { ...options, random: () => 0 }), 1000);
  assert.ok(reconnectDelay(40, { ...options, random: () => 0.999999 }) <= 2000);
});
