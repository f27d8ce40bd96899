/**
 * What queue nodes send each other over the authenticated transport: Raft messages, and a small
 * "hello" that tells peers where this node serves clients (so a follower can redirect a client
 * to the leader's client port). Each payload starts with a kind byte.
 *
 * A Raft message is a JSON header (the message without its entries or snapshot bytes) followed by
 * the entries and snapshot data in binary, so entry data is never base64'd or re-parsed.
 */
import type { Entry, Message, Snapshot } from '../../consensus/index.ts';
import { PixelfleetError } from '../../errors/index.ts';
import {
  ByteReader,
  ByteWriter,
  bytesText,
  entriesSize,
  readEntries,
  textBytes,
  writeEntries,
} from './binary.ts';

const RAFT_MESSAGE = 1;
const HELLO = 2;

/** What a node tells its peers about itself. */
export interface NodeHello {
  /** host:port of the node's client port, or null when it serves no clients. */
  clientAddress: string | null;
}

export type WirePayload = { kind: 'raft'; message: Message } | { kind: 'hello'; hello: NodeHello };

export function encodeRaftMessage(message: Message): Buffer {
  let entries: Entry[] = [];
  let snapshotData: Uint8Array | undefined;
  let header: unknown = message;
  if (message.type === 'append') {
    entries = message.entries;
    header = { ...message, entries: undefined };
  } else if (message.type === 'snapshot') {
    snapshotData = message.snapshot.data;
    header = { ...message, snapshot: { meta: message.snapshot.meta } };
  }
  const headerBytes = textBytes(JSON.stringify(header));
  const writer = new ByteWriter(
    1 + 4 + headerBytes.byteLength + entriesSize(entries) + 4 + (snapshotData?.byteLength ?? 0),
  );
  writer.u8(RAFT_MESSAGE);
  writer.bytes(headerBytes);
  writeEntries(writer, entries);
  writer.bytes(snapshotData ?? new Uint8Array(0));
  return writer.finish();
}

export function encodeHello(hello: NodeHello): Buffer {
  const body = textBytes(JSON.stringify(hello));
  const writer = new ByteWriter(1 + 4 + body.byteLength);
  writer.u8(HELLO);
  writer.bytes(body);
  return writer.finish();
}

/** Decodes a payload from an authenticated peer. Throws PF_ERR_BAD_REQUEST on garbage. */
export function decodePayload(payload: Uint8Array): WirePayload {
  try {
    const reader = new ByteReader(payload, 'peer payload');
    const kind = reader.u8();
    if (kind === HELLO) {
      const hello = JSON.parse(bytesText(reader.bytes())) as NodeHello;
      return { kind: 'hello', hello: { clientAddress: hello.clientAddress ?? null } };
    }
    if (kind !== RAFT_MESSAGE) throw new Error(`unknown payload kind ${kind}`);
    const header = JSON.parse(bytesText(reader.bytes())) as Message;
    const entries = readEntries(reader);
    const snapshotData = reader.bytes();
    if (header.type === 'append') {
      header.entries = entries;
    } else if (header.type === 'snapshot') {
      header.snapshot = { meta: header.snapshot.meta, data: snapshotData } satisfies Snapshot;
    }
    return { kind: 'raft', message: header };
  } catch (error) {
    throw new PixelfleetError('PF_ERR_BAD_REQUEST', 'malformed payload from a peer', { cause: error });
  }
}
