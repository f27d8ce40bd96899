/**
 * Record framing for the on-disk logs: every record is written as
 *
 *   u32 LE  length of the payload in bytes (n)
 *   u32 LE  CRC-32 (node:zlib) over the four length bytes followed by the payload
 *   n bytes payload
 *
 * The checksum covers the length too, so a flipped length is caught instead of steering the
 * reader to a wrong frame boundary. Decoding never throws: it reports where the first bad frame
 * starts, and the caller decides whether that is a torn tail or corruption.
 */
import { crc32 } from 'node:zlib';

export const FRAME_HEADER_BYTES = 8;

export function encodeFrame(payload: Uint8Array): Buffer {
  const frame = Buffer.allocUnsafe(FRAME_HEADER_BYTES + payload.byteLength);
  frame.writeUInt32LE(payload.byteLength, 0);
  frame.set(payload, FRAME_HEADER_BYTES);
  frame.writeUInt32LE(frameChecksum(frame, 0, payload.byteLength), 4);
  return frame;
}

function frameChecksum(buffer: Buffer, offset: number, length: number): number {
  const lengthBytes = buffer.subarray(offset, offset + 4);
  const payload = buffer.subarray(offset + FRAME_HEADER_BYTES, offset + FRAME_HEADER_BYTES + length);
  return crc32(payload, crc32(lengthBytes));
}

/** True when a complete frame with a matching checksum starts at `offset`. */
export function isValidFrameAt(buffer: Buffer, offset: number, maxRecordBytes: number): boolean {
  if (offset + FRAME_HEADER_BYTES > buffer.byteLength) return false;
  const length = buffer.readUInt32LE(offset);
  if (length > maxRecordBytes || offset + FRAME_HEADER_BYTES + length > buffer.byteLength) return false;
  return frameChecksum(buffer, offset, length) === buffer.readUInt32LE(offset + 4);
}

export interface FrameScan {
  /** Payloads in order (views into the scanned buffer, not copies). */
  records: Uint8Array[];
  /** Offset just past the last good frame. */
  validEnd: number;
  /** Why scanning stopped before the end of the buffer, if it did. */
  failure?: string;
}

export function scanFrames(buffer: Buffer, start: number, maxRecordBytes: number): FrameScan {
  const records: Uint8Array[] = [];
  let offset = start;
  while (offset < buffer.byteLength) {
    if (offset + FRAME_HEADER_BYTES > buffer.byteLength) {
      return { records, validEnd: offset, failure: 'partial frame header' };
    }
    const length = buffer.readUInt32LE(offset);
    if (length > maxRecordBytes) {
      return { records, validEnd: offset, failure: `frame length ${length} exceeds the record limit` };
    }
    if (offset + FRAME_HEADER_BYTES + length > buffer.byteLength) {
      return { records, validEnd: offset, failure: 'partial frame payload' };
    }
    if (frameChecksum(buffer, offset, length) !== buffer.readUInt32LE(offset + 4)) {
      return { records, validEnd: offset, failure: 'checksum mismatch' };
    }
    records.push(buffer.subarray(offset + FRAME_HEADER_BYTES, offset + FRAME_HEADER_BYTES + length));
    offset += FRAME_HEADER_BYTES + length;
  }
  return { records, validEnd: offset };
}

/**
 * Looks for any valid frame after a bad one. Finding one means the damage is not confined to the
 * tail (records written after it would be silently dropped by a truncation), so it is corruption.
 * A false positive needs a 32-bit checksum to match by chance at some offset.
 */
export function findValidFrameAfter(
  buffer: Buffer,
  from: number,
  maxRecordBytes: number,
): number | undefined {
  for (let offset = from; offset + FRAME_HEADER_BYTES <= buffer.byteLength; offset++) {
    if (isValidFrameAt(buffer, offset, maxRecordBytes)) return offset;
  }
  return undefined;
}
