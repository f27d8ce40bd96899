/**
 * Appends usage record lines to the active segment with group commit: lines submitted while one
 * batch is being written and synced form the next batch, so concurrent recorders share one
 * sync. `append` resolves only after its line is on disk.
 *
 * Segments are opened with O_DSYNC (where the platform has it): each batch's write returns once
 * the data, and the file size needed to read it back, are on disk — what a write followed by
 * `fdatasync` gives, in one system call, so one trip through libuv's thread pool instead of two.
 * Every conversion records usage before its response, and in a cluster an api server's batches
 * mostly hold one record, so this is once per conversion: the two trips cost 0.26 ms of CPU on
 * the 2-core VM, the one 0.12 ms (write of 300 bytes, `fs/promises`, 200 in a row).
 *
 * Rotation happens between batches, never inside one: when the recording window (`rotateEveryMs`,
 * aligned to the epoch, so hourly windows are UTC hours) has moved on, or the segment has reached
 * `maxSegmentBytes`, the active file is closed and handed to `onRotated`; the next batch creates a
 * new file (and fsyncs the directory so the name survives a crash before acknowledging anything).
 * After a write or sync error every later append is refused: the page cache can no longer be
 * trusted to match the disk.
 */
import { constants } from 'node:fs';
import { type FileHandle, open } from 'node:fs/promises';
import { join } from 'node:path';
import { PixelfleetError } from '../errors/index.ts';
import { fsyncDirectory } from '../storage/index.ts';
import { type SegmentFile, segmentFileName } from './segment-files.ts';

/** O_DSYNC where the platform has it (Linux, macOS); otherwise each batch calls `datasync`. */
const writesAreSynchronous = typeof constants.O_DSYNC === 'number' && constants.O_DSYNC !== 0;
const createFlags =
  constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | (writesAreSynchronous ? constants.O_DSYNC : 0);

export interface SegmentWriterOptions {
  directory: string;
  /** Sequence number of the first segment this writer creates. */
  nextSequence: number;
  clock: () => number;
  rotateEveryMs: number;
  maxSegmentBytes: number;
  /** A segment was closed for good: it may now be sealed (once its records are in the store). */
  onRotated: (segment: SegmentFile, records: number) => void;
}

interface ActiveSegment {
  file: SegmentFile;
  handle: FileHandle;
  windowStartMs: number;
  bytes: number;
  records: number;
}

interface PendingLine {
  line: string;
  resolve: () => void;
  reject: (error: unknown) => void;
}

export interface SegmentWriterStats {
  activeSegment: string | undefined;
  activeSegmentBytes: number;
  batchesWritten: number;
  linesWritten: number;
  segmentsCreated: number;
}

export class SegmentWriter {
  readonly #options: SegmentWriterOptions;
  #nextSequence: number;
  #active: ActiveSegment | undefined;
  #queued: PendingLine[] = [];
  #batchScheduled = false;
  /** Every disk operation runs in this chain, one at a time. */
  #tail: Promise<void> = Promise.resolve();
  #failure: PixelfleetError | undefined;
  #closed = false;
  #batchesWritten = 0;
  #linesWritten = 0;
  #segmentsCreated = 0;

  constructor(options: SegmentWriterOptions) {
    this.#options = options;
    this.#nextSequence = options.nextSequence;
  }

  /** Resolves once `line` (newline included) is durable in a segment. */
  append(line: string): Promise<void> {
    if (this.#failure !== undefined) return Promise.reject(this.#failure);
    if (this.#closed) {
      return Promise.reject(
        new PixelfleetError('PF_ERR_STORAGE_UNAVAILABLE', 'the usage segment writer is closed'),
      );
    }
    return new Promise<void>((resolve, reject) => {
      this.#queued.push({ line, resolve, reject });
      if (!this.#batchScheduled) {
        this.#batchScheduled = true;
        this.#tail = this.#tail.then(() => this.#writeBatch());
      }
    });
  }

  /** Closes the active segment if its window is over, so an idle meter still rotates on time. */
  rotateIfDue(): Promise<void> {
    return this.#serially(async () => {
      if (this.#active !== undefined && this.#isDue(this.#active)) await this.#rotate();
    });
  }

  /** Writes what is queued, closes the active segment (handing it to `onRotated`) and refuses later appends. */
  close(): Promise<void> {
    this.#closed = true;
    return this.#serially(async () => {
      if (this.#active !== undefined) await this.#rotate();
    });
  }

  get stats(): SegmentWriterStats {
    return {
      activeSegment: this.#active?.file.name,
      activeSegmentBytes: this.#active?.bytes ?? 0,
      batchesWritten: this.#batchesWritten,
      linesWritten: this.#linesWritten,
      segmentsCreated: this.#segmentsCreated,
    };
  }

  #serially(work: () => Promise<void>): Promise<void> {
    const done = this.#tail.then(work);
    this.#tail = done.catch(() => {});
    return done;
  }

  #isDue(active: ActiveSegment): boolean {
    return (
      active.bytes >= this.#options.maxSegmentBytes ||
      this.#windowStart(this.#options.clock()) !== active.windowStartMs
    );
  }

  #windowStart(epochMs: number): number {
    return Math.floor(epochMs / this.#options.rotateEveryMs) * this.#options.rotateEveryMs;
  }

  async #writeBatch(): Promise<void> {
    this.#batchScheduled = false;
    const batch = this.#queued;
    this.#queued = [];
    if (batch.length === 0) return;
    if (this.#failure !== undefined) {
      for (const entry of batch) entry.reject(this.#failure);
      return;
    }
    try {
      if (this.#active !== undefined && this.#isDue(this.#active)) await this.#rotate();
      const active = this.#active ?? (await this.#create());
      const buffer = Buffer.from(
        batch.length === 1 ? batch[0]!.line : batch.map((entry) => entry.line).join(''),
      );
      let written = 0;
      while (written < buffer.length) {
        const { bytesWritten } = await active.handle.write(
          buffer,
          written,
          buffer.length - written,
          active.bytes + written,
        );
        written += bytesWritten;
      }
      if (!writesAreSynchronous) await active.handle.datasync();
      active.bytes += buffer.length;
      active.records += batch.length;
      this.#batchesWritten++;
      this.#linesWritten += batch.length;
    } catch (cause) {
      this.#failure = new PixelfleetError(
        'PF_ERR_STORAGE_UNAVAILABLE',
        'a usage segment write failed; no more usage can be recorded',
        {
          cause,
        },
      );
      for (const entry of batch) entry.reject(this.#failure);
      return;
    }
    for (const entry of batch) entry.resolve();
  }

  async #create(): Promise<ActiveSegment> {
    const windowStartMs = this.#windowStart(this.#options.clock());
    const sequence = this.#nextSequence++;
    const name = segmentFileName(windowStartMs, sequence);
    const path = join(this.#options.directory, name);
    const handle = await open(path, createFlags);
    try {
      await fsyncDirectory(this.#options.directory);
    } catch (error) {
      await handle.close().catch(() => {});
      throw error;
    }
    this.#segmentsCreated++;
    this.#active = {
      file: { name, path, windowStartMs, sequence, sealed: false },
      handle,
      windowStartMs,
      bytes: 0,
      records: 0,
    };
    return this.#active;
  }

  async #rotate(): Promise<void> {
    const active = this.#active;
    if (active === undefined) return;
    this.#active = undefined;
    await active.handle.close();
    this.#options.onRotated(active.file, active.records);
  }
}
