/**
 * Splits a TCP byte stream into length-prefixed frames: `[u32 big-endian length][length bytes]`.
 * Returned frames include their 4-byte prefix, because the authenticated layer MACs it too.
 * Small frames are views into the received chunks (no copy); a frame spanning chunks is joined
 * once, so a multi-megabyte snapshot costs one copy, not one per chunk.
 */

export const lengthPrefixBytes = 4;

export class FrameTooLargeError extends Error {
  readonly length: number;
  constructor(length: number, limit: number) {
    super(`frame of ${length} bytes exceeds the limit of ${limit}`);
    this.name = 'FrameTooLargeError';
    this.length = length;
  }
}

export class FrameReader {
  #chunks: Buffer[] = [];
  #bufferedBytes = 0;
  /** Largest frame body accepted; raised once the peer has authenticated. */
  maxFrameBytes: number;

  constructor(maxFrameBytes: number) {
    this.maxFrameBytes = maxFrameBytes;
  }

  get bufferedBytes(): number {
    return this.#bufferedBytes;
  }

  push(chunk: Buffer): void {
    if (chunk.length === 0) return;
    this.#chunks.push(chunk);
    this.#bufferedBytes += chunk.length;
  }

  /** The next complete frame, or null if more bytes are needed. Throws FrameTooLargeError. */
  next(): Buffer | null {
    if (this.#bufferedBytes < lengthPrefixBytes) return null;
    if (this.#chunks[0]!.length < lengthPrefixBytes) this.#coalesceHead(lengthPrefixBytes);
    const bodyLength = this.#chunks[0]!.readUInt32BE(0);
    if (bodyLength > this.maxFrameBytes) throw new FrameTooLargeError(bodyLength, this.maxFrameBytes);
    const frameLength = lengthPrefixBytes + bodyLength;
    if (this.#bufferedBytes < frameLength) return null;
    const head = this.#chunks[0]!;
    if (head.length < frameLength) this.#coalesceHead(frameLength);
    const joined = this.#chunks[0]!;
    const frame = joined.subarray(0, frameLength);
    if (joined.length === frameLength) this.#chunks.shift();
    else this.#chunks[0] = joined.subarray(frameLength);
    this.#bufferedBytes -= frameLength;
    return frame;
  }

  /** Merge leading chunks until the first holds at least `bytes` bytes. */
  #coalesceHead(bytes: number): void {
    const parts: Buffer[] = [];
    let collected = 0;
    while (collected < bytes) {
      const chunk = this.#chunks.shift()!;
      parts.push(chunk);
      collected += chunk.length;
    }
    this.#chunks.unshift(Buffer.concat(parts, collected));
  }
}
