/**
 * How the embedded queue stores commands and snapshots in its record log: UTF-8 JSON, one
 * command per record. JSON keeps the log readable with standard tools and is the same form the
 * state machine's commands already have; the record log adds framing and checksums.
 */
import { PixelfleetError } from '../../errors/index.ts';
import type { QueueCommand } from '../commands.ts';
import type { QueueSnapshot } from '../state-machine.ts';

export function encodeCommand(command: QueueCommand): Buffer {
  return Buffer.from(JSON.stringify(command), 'utf8');
}

export function decodeCommand(record: Uint8Array, where: string): QueueCommand {
  const value = parse(record, where);
  if (typeof value !== 'object' || value === null || typeof (value as { type?: unknown }).type !== 'string') {
    throw new PixelfleetError('PF_ERR_STORAGE_CORRUPT', `${where} is not a queue command`);
  }
  return value as QueueCommand;
}

export function encodeSnapshot(snapshot: QueueSnapshot): Buffer {
  return Buffer.from(JSON.stringify(snapshot), 'utf8');
}

export function decodeSnapshot(record: Uint8Array): QueueSnapshot {
  return parse(record, 'queue snapshot') as QueueSnapshot;
}

function parse(record: Uint8Array, where: string): unknown {
  try {
    return JSON.parse(Buffer.from(record.buffer, record.byteOffset, record.byteLength).toString('utf8'));
  } catch (error) {
    // The frame checksum matched, so these bytes are what was written: a bug or a version skew.
    throw new PixelfleetError('PF_ERR_STORAGE_CORRUPT', `${where} is not valid JSON`, { cause: error });
  }
}
