/**
 * A generic append-only record log on local disk with group commit, torn-tail recovery and
 * snapshot compaction. The embedded job queue keeps its commands here; the Raft log can reuse it.
 *
 * Guarantees:
 * - `append(record)` resolves only after the record is on disk (one `fdatasync` per batch).
 *   Records appended while a batch is being written and synced form the next batch, so many
 *   concurrent appenders share one fsync (group commit). Records are durable in append order.
 * - `openRecordLog` replays the latest snapshot and every record after it. A torn tail (a
 *   partial frame or a bad checksum with nothing valid after it: a write the crash cut short,
 *   never acknowledged) is truncated and reported; damage followed by valid records is
 *   corruption and fails the open with the file and offset, because truncating would drop
 *   acknowledged records.
 * - After a write or sync error the log refuses every later append (the page cache can no longer
 *   be trusted to match the disk), and `writable` turns false.
 *
 * On-disk format, all in `directory`:
 *
 *   LOCK                         pid of the process that has the log open (see directory-lock.ts)
 *   segment-<20 digits>.log      8-byte magic "PFRLOG1\n", then frames (see frame.ts):
 *                                u32 LE length | u32 LE CRC-32 of length+payload | payload
 *   snapshot.bin                 8-byte magic "PFSNAP1\n", then ONE frame whose payload is
 *                                u64 LE number of the first segment to replay | snapshot bytes
 *   snapshot.bin.<random>.tmp    a snapshot being written; deleted on open
 *
 * Compaction: the snapshot (which must describe every record appended before `compact` was
 * called) is written to the temp file, fsynced, renamed over snapshot.bin and the directory is
 * fsynced; only then is the next segment created (and the directory fsynced again) and older
 * segments deleted. A crash at any step leaves either the old snapshot with the old segment, or
 * the new snapshot, whose first segment is the new one; segments older than the snapshot's first
 * segment are leftovers and are deleted on open.
 */
import { type FileHandle, mkdir, open, readdir, readFile, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { PixelfleetError } from '../errors/index.ts';
import { acquireDirectoryLock, type DirectoryLock } from './directory-lock.ts';
import { fsyncDirectory, writeFileAtomic } from './durable-file.ts';
import { encodeFrame, findValidFrameAfter, scanFrames } from './frame.ts';

const SEGMENT_MAGIC = Buffer.from('PFRLOG1\n', 'latin1');
const SNAPSHOT_MAGIC = Buffer.from('PFSNAP1\n', 'latin1');
const SNAPSHOT_FILE = 'snapshot.bin';
const SEGMENT_PATTERN = /^segment-(\d{20})\.log$/;
const DEFAULT_MAX_RECORD_BYTES = 64 * 1024 * 1024;

export interface RecordLogOptions {
  directory: string;
  /** Appends larger than this are refused; also bounds what replay believes a frame length can be. */
  maxRecordBytes?: number;
  /** Called once when a write, sync or compaction fails; the log is unusable from then on. */
  onError?: (error: Error) => void;
}

export interface RecordLogRecovery {
  /** The latest snapshot, if one was ever written. */
  snapshot: Uint8Array | undefined;
  /** Records appended after that snapshot, in order. */
  records: Uint8Array[];
  /** Bytes cut off a torn tail on open (0 after a clean shutdown). */
  truncatedBytes: number;
  /** Why the tail was cut, with file and offset, when it was. */
  truncation?: { file: string; offset: number; reason: string };
}

export interface RecordLogStats {
  segment: number;
  segmentBytes: number;
  appendedRecords: number;
  /** One batch is one write plus one fdatasync. */
  syncedBatches: number;
  compactions: number;
}

interface Batch {
  frames: Buffer[];
  bytes: number;
  promise: Promise<void>;
  resolve: () => void;
  reject: (error: Error) => void;
}

export async function openRecordLog(
  options: RecordLogOptions,
): Promise<{ log: RecordLog; recovery: RecordLogRecovery }> {
  const maxRecordBytes = options.maxRecordBytes ?? DEFAULT_MAX_RECORD_BYTES;
  if (!Number.isInteger(maxRecordBytes) || maxRecordBytes < 1 || maxRecordBytes > 0xffff_ffff) {
    throw new RangeError(`maxRecordBytes must be an integer in [1, 2^32): got ${maxRecordBytes}`);
  }
  if (typeof options.directory !== 'string' || options.directory === '') {
    throw new RangeError('directory must be a non-empty path');
  }
  const directory = options.directory;
  await mkdir(directory, { recursive: true });
  const lock = await acquireDirectoryLock(directory);
  try {
    // Leftovers of a snapshot write a crash interrupted (writeFileAtomic's temporary files).
    for (const name of await readdir(directory)) {
      if (name.startsWith(`${SNAPSHOT_FILE}.`) && name.endsWith('.tmp'))
        await rm(join(directory, name), { force: true });
    }
    const snapshot = await readSnapshot(directory, maxRecordBytes);
    const firstSegment = snapshot?.firstSegment ?? 1;
    const segments = await listSegments(directory);
    for (const stale of segments.filter((segment) => segment < firstSegment)) {
      await rm(join(directory, segmentFileName(stale)), { force: true });
    }
    const live = segments.filter((segment) => segment >= firstSegment);
    live.forEach((segment, index) => {
      if (segment !== firstSegment + index) {
        throw new PixelfleetError(
          'PF_ERR_STORAGE_CORRUPT',
          `${directory}: segment ${firstSegment + index} is missing (found ${live.join(', ')})`,
        );
      }
    });
    const recovery: RecordLogRecovery = { snapshot: snapshot?.data, records: [], truncatedBytes: 0 };
    let activeSegment = firstSegment;
    let activeBytes = 0;
    for (const [index, segment] of live.entries()) {
      const isLast = index === live.length - 1;
      const replayed = await replaySegment(directory, segment, isLast, maxRecordBytes);
      for (const record of replayed.records) recovery.records.push(record);
      if (replayed.truncation) {
        recovery.truncatedBytes = replayed.truncatedBytes;
        recovery.truncation = replayed.truncation;
      }
      activeSegment = segment;
      activeBytes = replayed.validEnd;
    }
    let handle: FileHandle;
    if (live.length === 0 || activeBytes < SEGMENT_MAGIC.byteLength) {
      handle = await createSegment(directory, activeSegment);
      activeBytes = SEGMENT_MAGIC.byteLength;
    } else {
      handle = await open(join(directory, segmentFileName(activeSegment)), 'r+');
    }
    const log = new RecordLog({
      directory,
      lock,
      handle,
      segment: activeSegment,
      position: activeBytes,
      maxRecordBytes,
      onError: options.onError,
    });
    return { log, recovery };
  } catch (error) {
    await lock.release();
    throw error;
  }
}

export class RecordLog {
  readonly directory: string;
  #lock: DirectoryLock;
  #handle: FileHandle;
  #segment: number;
  #position: number;
  #maxRecordBytes: number;
  #onError: ((error: Error) => void) | undefined;
  /** The batch still accepting records; sealed when its write starts. */
  #openBatch: Batch | undefined;
  #lastBatch: Batch | undefined;
  /** File operations run one after another on this chain; each handles its own errors. */
  #chain: Promise<void> = Promise.resolve();
  #failure: Error | undefined;
  #closed = false;
  #appendedRecords = 0;
  #syncedBatches = 0;
  #compactions = 0;

  /** Use `openRecordLog`: it recovers the directory before handing out a log. */
  constructor(init: {
    directory: string;
    lock: DirectoryLock;
    handle: FileHandle;
    segment: number;
    position: number;
    maxRecordBytes: number;
    onError: ((error: Error) => void) | undefined;
  }) {
    this.directory = init.directory;
    this.#lock = init.lock;
    this.#handle = init.handle;
    this.#segment = init.segment;
    this.#position = init.position;
    this.#maxRecordBytes = init.maxRecordBytes;
    this.#onError = init.onError;
  }

  /** False once closed or after a disk error. */
  get writable(): boolean {
    return !this.#closed && this.#failure === undefined;
  }

  /** Resolves once `record` (and every record appended before it) is fsynced. */
  append(record: Uint8Array): Promise<void> {
    const refusal = this.#refusal();
    if (refusal) return Promise.reject(refusal);
    if (record.byteLength > this.#maxRecordBytes) {
      return Promise.reject(
        new RangeError(`record of ${record.byteLength} bytes exceeds maxRecordBytes ${this.#maxRecordBytes}`),
      );
    }
    const frame = encodeFrame(record);
    let batch = this.#openBatch;
    if (batch === undefined) {
      batch = createBatch();
      this.#openBatch = batch;
      this.#lastBatch = batch;
      const scheduled = batch;
      this.#enqueueOperation(() => this.#writeBatch(scheduled));
    }
    batch.frames.push(frame);
    batch.bytes += frame.byteLength;
    this.#appendedRecords++;
    return batch.promise;
  }

  /** Resolves once every record appended so far is durable. */
  sync(): Promise<void> {
    if (this.#failure) return Promise.reject(this.#failure);
    return this.#lastBatch?.promise ?? Promise.resolve();
  }

  /**
   * Writes `snapshot` atomically and starts a fresh segment; older segments are deleted.
   * `snapshot` must describe the effect of every record appended before this call: those go to
   * the old segment, records appended after it go to the new one.
   */
  compact(snapshot: Uint8Array): Promise<void> {
    const refusal = this.#refusal();
    if (refusal) return Promise.reject(refusal);
    this.#openBatch = undefined;
    const data = Buffer.from(snapshot.buffer, snapshot.byteOffset, snapshot.byteLength);
    return new Promise((resolve, reject) => {
      this.#enqueueOperation(async () => {
        if (this.#failure) return reject(this.#failure);
        try {
          await this.#rotate(data);
          this.#compactions++;
          resolve();
        } catch (error) {
          reject(this.#fail(error, 'compaction'));
        }
      });
    });
  }

  stats(): RecordLogStats {
    return {
      segment: this.#segment,
      segmentBytes: this.#position,
      appendedRecords: this.#appendedRecords,
      syncedBatches: this.#syncedBatches,
      compactions: this.#compactions,
    };
  }

  /** Flushes what was appended, then releases the file and the directory lock. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#openBatch = undefined;
    await this.#chain;
    await this.#handle.close().catch(() => {});
    await this.#lock.release();
  }

  #refusal(): Error | undefined {
    if (this.#failure) return this.#failure;
    if (this.#closed)
      return new PixelfleetError('PF_ERR_STORAGE_UNAVAILABLE', `${this.directory}: log is closed`);
    return undefined;
  }

  #enqueueOperation(operation: () => Promise<void>): void {
    this.#chain = this.#chain.then(operation);
  }

  async #writeBatch(batch: Batch): Promise<void> {
    if (this.#openBatch === batch) this.#openBatch = undefined;
    if (this.#failure) return batch.reject(this.#failure);
    try {
      await writeFully(this.#handle, batch.frames, this.#position);
      await this.#handle.datasync();
      this.#position += batch.bytes;
      this.#syncedBatches++;
      batch.resolve();
    } catch (error) {
      batch.reject(this.#fail(error, 'append'));
    }
  }

  async #rotate(snapshot: Buffer): Promise<void> {
    const next = this.#segment + 1;
    const firstSegment = Buffer.alloc(8);
    firstSegment.writeBigUInt64LE(BigInt(next));
    const body = encodeFrame(Buffer.concat([firstSegment, snapshot]));
    await writeFileAtomic(join(this.directory, SNAPSHOT_FILE), Buffer.concat([SNAPSHOT_MAGIC, body]));
    const handle = await createSegment(this.directory, next);
    const previous = this.#segment;
    await this.#handle.close();
    this.#handle = handle;
    this.#segment = next;
    this.#position = SEGMENT_MAGIC.byteLength;
    await rm(join(this.directory, segmentFileName(previous)), { force: true });
  }

  #fail(error: unknown, during: string): Error {
    if (this.#failure) return this.#failure;
    this.#failure = new PixelfleetError(
      'PF_ERR_STORAGE_UNAVAILABLE',
      `${this.directory}: ${during} failed; the log refuses further writes`,
      { cause: error },
    );
    this.#onError?.(this.#failure);
    return this.#failure;
  }
}

function createBatch(): Batch {
  let resolve!: () => void;
  let reject!: (error: Error) => void;
  const promise = new Promise<void>((resolvePromise, rejectPromise) => {
    resolve = resolvePromise;
    reject = rejectPromise;
  });
  // Callers that do not wait for durability (fire-and-forget appends) must not crash the
  // process with an unhandled rejection; the failure also reaches `onError`.
  promise.catch(() => {});
  return { frames: [], bytes: 0, promise, resolve, reject };
}

async function writeFully(handle: FileHandle, buffers: Buffer[], position: number): Promise<void> {
  const total = buffers.reduce((sum, buffer) => sum + buffer.byteLength, 0);
  let written = (await handle.writev(buffers, position)).bytesWritten;
  if (written === total) return;
  // A short write (rare on regular files): write the rest from one contiguous buffer.
  const rest = Buffer.concat(buffers).subarray(written);
  let offset = 0;
  while (offset < rest.byteLength) {
    const { bytesWritten } = await handle.write(rest, offset, rest.byteLength - offset, position + written);
    if (bytesWritten === 0) throw new Error('write made no progress');
    offset += bytesWritten;
    written += bytesWritten;
  }
}

function segmentFileName(segment: number): string {
  return `segment-${String(segment).padStart(20, '0')}.log`;
}

async function listSegments(directory: string): Promise<number[]> {
  const names = await readdir(directory);
  return names
    .map((name) => SEGMENT_PATTERN.exec(name))
    .filter((match) => match !== null)
    .map((match) => Number(match[1]))
    .sort((a, b) => a - b);
}

async function createSegment(directory: string, segment: number): Promise<FileHandle> {
  const handle = await open(join(directory, segmentFileName(segment)), 'w+');
  try {
    await handle.write(SEGMENT_MAGIC, 0, SEGMENT_MAGIC.byteLength, 0);
    await handle.datasync();
    await fsyncDirectory(directory);
    return handle;
  } catch (error) {
    await handle.close().catch(() => {});
    throw error;
  }
}

async function readSnapshot(
  directory: string,
  maxRecordBytes: number,
): Promise<{ firstSegment: number; data: Uint8Array } | undefined> {
  const path = join(directory, SNAPSHOT_FILE);
  let content: Buffer;
  try {
    content = await readFile(path);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw error;
  }
  // The snapshot is renamed into place only after an fsync, so any damage is real corruption.
  const scan = content.subarray(0, SNAPSHOT_MAGIC.byteLength).equals(SNAPSHOT_MAGIC)
    ? scanFrames(content, SNAPSHOT_MAGIC.byteLength, Math.max(maxRecordBytes, content.byteLength))
    : undefined;
  const payload = scan?.records[0];
  if (
    scan === undefined ||
    scan.failure ||
    scan.records.length !== 1 ||
    payload === undefined ||
    payload.byteLength < 8
  ) {
    throw new PixelfleetError(
      'PF_ERR_STORAGE_CORRUPT',
      `${path} is corrupt (${scan?.failure ?? 'bad magic or layout'}); restore it from a backup or remove the directory`,
    );
  }
  const view = Buffer.from(payload.buffer, payload.byteOffset, payload.byteLength);
  return { firstSegment: Number(view.readBigUInt64LE(0)), data: view.subarray(8) };
}

async function replaySegment(
  directory: string,
  segment: number,
  isLast: boolean,
  maxRecordBytes: number,
): Promise<{
  records: Uint8Array[];
  validEnd: number;
  truncatedBytes: number;
  truncation?: { file: string; offset: number; reason: string };
}> {
  const path = join(directory, segmentFileName(segment));
  const content = await readFile(path);
  if (content.byteLength < SEGMENT_MAGIC.byteLength && isLast) {
    // The crash hit while the segment was being created: nothing was ever acknowledged in it.
    return {
      records: [],
      validEnd: 0,
      truncatedBytes: content.byteLength,
      truncation: { file: path, offset: 0, reason: 'partial segment header' },
    };
  }
  if (!content.subarray(0, SEGMENT_MAGIC.byteLength).equals(SEGMENT_MAGIC)) {
    throw new PixelfleetError('PF_ERR_STORAGE_CORRUPT', `${path} does not start with the segment magic`);
  }
  const scan = scanFrames(content, SEGMENT_MAGIC.byteLength, maxRecordBytes);
  if (scan.failure === undefined)
    return { records: scan.records, validEnd: scan.validEnd, truncatedBytes: 0 };
  const validAfter = findValidFrameAfter(content, scan.validEnd + 1, maxRecordBytes);
  if (!isLast || validAfter !== undefined) {
    throw new PixelfleetError(
      'PF_ERR_STORAGE_CORRUPT',
      `${path} is corrupt at byte ${scan.validEnd} (${scan.failure})` +
        (validAfter === undefined ? '' : `, yet a valid record follows at byte ${validAfter}`) +
        '; refusing to truncate records that may have been acknowledged',
      { extensions: { file: path, offset: scan.validEnd } },
    );
  }
  const handle = await open(path, 'r+');
  try {
    await handle.truncate(scan.validEnd);
    await handle.datasync();
  } finally {
    await handle.close();
  }
  const after = await stat(path);
  return {
    records: scan.records,
    validEnd: after.size,
    truncatedBytes: content.byteLength - scan.validEnd,
    truncation: { file: path, offset: scan.validEnd, reason: scan.failure },
  };
}
