/**
 * Small binary building blocks shared by the Raft storage records and the node-to-node wire
 * format: a writer that sizes its output once, a bounds-checked reader, and the encoding of log
 * entries and hard states. Entry data is copied once into the output and read back as views
 * (never copied again), which matters at tens of thousands of entries per second.
 *
 * Numbers (terms, indexes) are written as float64: every safe integer fits, no BigInt needed.
 */
import type { Entry, HardState } from '../../consensus/index.ts';
import { PixelfleetError } from '../../errors/index.ts';

const entryKinds: readonly Entry['kind'][] = ['normal', 'config', 'noop'];
const encoder = new TextEncoder();
const decoder = new TextDecoder();

export class ByteWriter {
  readonly #buffer: Buffer;
  #offset = 0;

  constructor(size: number) {
    this.#buffer = Buffer.allocUnsafe(size);
  }

  u8(value: number): void {
    this.#offset = this.#buffer.writeUInt8(value, this.#offset);
  }

  u32(value: number): void {
    this.#offset = this.#buffer.writeUInt32BE(value, this.#offset);
  }

  f64(value: number): void {
    this.#offset = this.#buffer.writeDoubleBE(value, this.#offset);
  }

  /** Length-prefixed bytes. */
  bytes(value: Uint8Array): void {
    this.u32(value.byteLength);
    this.#buffer.set(value, this.#offset);
    this.#offset += value.byteLength;
  }

  finish(): Buffer {
    if (this.#offset !== this.#buffer.byteLength) {
      throw new PixelfleetError(
        'PF_ERR_INTERNAL',
        `binary writer sized ${this.#buffer.byteLength} bytes but wrote ${this.#offset}`,
      );
    }
    return this.#buffer;
  }
}

export class ByteReader {
  readonly #view: Buffer;
  readonly #what: string;
  #offset = 0;

  constructor(data: Uint8Array, what: string) {
    this.#view = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
    this.#what = what;
  }

  get remaining(): number {
    return this.#view.byteLength - this.#offset;
  }

  u8(): number {
    this.#need(1);
    return this.#view.readUInt8(this.#offset++);
  }

  u32(): number {
    this.#need(4);
    const value = this.#view.readUInt32BE(this.#offset);
    this.#offset += 4;
    return value;
  }

  f64(): number {
    this.#need(8);
    const value = this.#view.readDoubleBE(this.#offset);
    this.#offset += 8;
    return value;
  }

  /** Length-prefixed bytes, as a view into the input. */
  bytes(): Uint8Array {
    const length = this.u32();
    this.#need(length);
    const value = this.#view.subarray(this.#offset, this.#offset + length);
    this.#offset += length;
    return value;
  }

  #need(bytes: number): void {
    if (this.#offset + bytes > this.#view.byteLength) {
      throw new PixelfleetError(
        'PF_ERR_RAFT_STATE_CORRUPT',
        `${this.#what} is truncated (needed ${bytes} bytes at offset ${this.#offset})`,
      );
    }
  }
}

export function textBytes(value: string): Uint8Array {
  return encoder.encode(value);
}

export function bytesText(value: Uint8Array): string {
  return decoder.decode(value);
}

export function entriesSize(entries: readonly Entry[]): number {
  let size = 4;
  for (const entry of entries) size += 8 + 8 + 1 + 4 + entry.data.byteLength;
  return size;
}

export function writeEntries(writer: ByteWriter, entries: readonly Entry[]): void {
  writer.u32(entries.length);
  for (const entry of entries) {
    writer.f64(entry.index);
    writer.f64(entry.term);
    writer.u8(entryKinds.indexOf(entry.kind));
    writer.bytes(entry.data);
  }
}

export function readEntries(reader: ByteReader): Entry[] {
  const count = reader.u32();
  const entries: Entry[] = new Array(count);
  for (let position = 0; position < count; position++) {
    const index = reader.f64();
    const term = reader.f64();
    const kind = entryKinds[reader.u8()];
    if (kind === undefined) {
      throw new PixelfleetError('PF_ERR_RAFT_STATE_CORRUPT', `entry ${index} has an unknown kind`);
    }
    entries[position] = { index, term, kind, data: reader.bytes() };
  }
  return entries;
}

export function hardStateSize(hardState: HardState): number {
  return 8 + 8 + 4 + (hardState.vote === null ? 0 : Buffer.byteLength(hardState.vote));
}

export function writeHardState(writer: ByteWriter, hardState: HardState): void {
  writer.f64(hardState.term);
  writer.f64(hardState.commit);
  // Node ids are non-empty, so an empty vote means "voted for nobody".
  writer.bytes(hardState.vote === null ? new Uint8Array(0) : textBytes(hardState.vote));
}

export function readHardState(reader: ByteReader): HardState {
  const term = reader.f64();
  const commit = reader.f64();
  const vote = reader.bytes();
  return { term, commit, vote: vote.byteLength === 0 ? null : bytesText(vote) };
}
