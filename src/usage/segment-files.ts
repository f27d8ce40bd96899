/**
 * Segment files on disk: their names, sealing (gzip) and reading. See usage-meter.ts for the
 * format billing relies on.
 *
 * Name: `<window start, UTC, YYYY-MM-DDTHH-mm-ssZ>-<sequence, 8+ digits>.ndjson[.gz]`. The window
 * is the rotation period in which the records were *recorded*; the sequence grows by one per
 * segment across restarts, so sorting by sequence is recording order.
 *
 * Sealing writes `<name>.gz.tmp`, fsyncs it, renames it to `<name>.gz`, fsyncs the directory and
 * only then deletes `<name>`: a crash leaves the plain file, or both (the .gz is then complete),
 * never neither. `.tmp` files are leftovers of an interrupted seal.
 */
import { createReadStream, createWriteStream } from 'node:fs';
import { open, readdir, readFile, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { pipeline as pipelineStreams } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGunzip, createGzip } from 'node:zlib';
import { PixelfleetError } from '../errors/index.ts';
import { fsyncDirectory } from '../storage/index.ts';
import type { UsageRecord } from './types.ts';
import { decodeUsageRecordLine } from './usage-record.ts';

const namePattern = /^(\d{4}-\d{2}-\d{2})T(\d{2})-(\d{2})-(\d{2})Z-(\d{8,})\.ndjson(\.gz)?$/;

export interface SegmentFile {
  /** File name, e.g. `2026-11-21T16-00-00Z-00000042.ndjson.gz`. */
  name: string;
  path: string;
  /** Start of the recording window (epoch ms). */
  windowStartMs: number;
  sequence: number;
  /** Gzipped, complete and immutable; an unsealed segment may still be appended to. */
  sealed: boolean;
}

export function segmentFileName(windowStartMs: number, sequence: number): string {
  const stamp = new Date(windowStartMs).toISOString().slice(0, 19).replaceAll(':', '-');
  return `${stamp}Z-${String(sequence).padStart(8, '0')}.ndjson`;
}

export function parseSegmentFileName(name: string): Omit<SegmentFile, 'path'> | undefined {
  const match = namePattern.exec(name);
  if (match === null) return undefined;
  const [, date, hours, minutes, seconds, sequence, gzip] = match;
  const windowStartMs = Date.parse(`${date}T${hours}:${minutes}:${seconds}Z`);
  if (!Number.isFinite(windowStartMs)) return undefined;
  return { name, windowStartMs, sequence: Number(sequence), sealed: gzip !== undefined };
}

/** Segment files in `directory`, oldest (lowest sequence) first; a missing directory has none. */
export async function listSegments(directory: string): Promise<SegmentFile[]> {
  let names: string[];
  try {
    names = await readdir(directory);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw error;
  }
  const segments: SegmentFile[] = [];
  for (const name of names) {
    const parsed = parseSegmentFileName(name);
    if (parsed !== undefined) segments.push({ ...parsed, path: join(directory, name) });
  }
  return segments.sort(
    (left, right) => left.sequence - right.sequence || Number(left.sealed) - Number(right.sealed),
  );
}

/** Compresses an unsealed segment to `<path>.gz` and removes the plain file, crash-safely. */
export async function sealSegment(path: string, directory: string): Promise<string> {
  const sealed = `${path}.gz`;
  const temporary = `${sealed}.tmp`;
  await pipeline(createReadStream(path), createGzip(), createWriteStream(temporary));
  const handle = await open(temporary, 'r+');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
  await rename(temporary, sealed);
  await fsyncDirectory(directory);
  await rm(path, { force: true });
  await fsyncDirectory(directory);
  return sealed;
}

/**
 * Every record of a segment, in file order, plain or gzipped. A line that is not a valid usage
 * record fails with PF_ERR_STORAGE_CORRUPT naming the file and line: sealed segments are whole.
 */
export async function* readSegment(path: string): AsyncGenerator<UsageRecord> {
  const input = createReadStream(path);
  // pipeline (not pipe) so an error of the file stream reaches the reader instead of crashing.
  const source = path.endsWith('.gz') ? pipelineStreams(input, createGunzip(), () => {}) : input;
  const lines = createInterface({ input: source, crlfDelay: Number.POSITIVE_INFINITY });
  let lineNumber = 0;
  try {
    for await (const line of lines) {
      lineNumber++;
      const record = decodeUsageRecordLine(line);
      if (record === undefined) {
        throw new PixelfleetError(
          'PF_ERR_STORAGE_CORRUPT',
          `${path} line ${lineNumber} is not a usage record`,
          {
            extensions: { file: path, line: lineNumber },
          },
        );
      }
      yield record;
    }
  } finally {
    lines.close();
    source.destroy();
    input.destroy();
  }
}

export interface UnsealedSegmentContents {
  records: UsageRecord[];
  /** Bytes after the last whole record: a write the crash cut short, never acknowledged. */
  tornBytes: number;
  /** Length of the file without its torn tail. */
  validBytes: number;
}

/**
 * Reads an unsealed segment left by a crash. Only the tail can be torn (appends are sequential
 * and a record is acknowledged after its line is synced), so invalid bytes with a valid record
 * after them are corruption of acknowledged data and fail with PF_ERR_STORAGE_CORRUPT.
 */
export async function readUnsealedSegment(path: string): Promise<UnsealedSegmentContents> {
  const bytes = await readFile(path);
  const records: UsageRecord[] = [];
  let validBytes = 0;
  let firstInvalidOffset: number | undefined;
  let offset = 0;
  for (;;) {
    const end = bytes.indexOf(0x0a, offset);
    if (end === -1) break;
    const record = decodeUsageRecordLine(bytes.toString('utf8', offset, end));
    if (record === undefined) {
      firstInvalidOffset ??= offset;
    } else {
      if (firstInvalidOffset !== undefined) {
        throw new PixelfleetError(
          'PF_ERR_STORAGE_CORRUPT',
          `${path} has invalid bytes at offset ${firstInvalidOffset} followed by valid records; refusing to drop acknowledged usage`,
          { extensions: { file: path, offset: firstInvalidOffset } },
        );
      }
      records.push(record);
      validBytes = end + 1;
    }
    offset = end + 1;
  }
  return { records, tornBytes: bytes.length - validBytes, validBytes };
}
