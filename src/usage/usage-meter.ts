/**
 * The usage meter of an api server: records every finished conversion exactly once, sums usage
 * per account per minute in memory, flushes the sums in batches to the durable aggregate store,
 * and answers usage queries including what has not been flushed yet (read-your-writes).
 *
 * Exactly once, end to end:
 * - `record` resolves only after the record's line is fsynced in the active segment (group
 *   commit), so a caller that acks the job after `record` resolved can never lose it.
 * - A record id already pending in memory, in flight, or counted by the store is a duplicate:
 *   it is neither written nor counted again, and `record` resolves with `duplicate: true`.
 * - On open, unsealed segments (the active one, or one whose seal a crash interrupted) are
 *   replayed into the store, which counts only ids it has not seen; then they are sealed. A
 *   segment is sealed only after a flush that covers all its records committed, so sealed
 *   segments never need replay and the store knows every id ever acknowledged.
 *
 * Only one process may open a data directory (`<dataDir>/usage/LOCK`), which is what makes the
 * in-memory dedup and the month-to-date cache exact.
 */
import { mkdir, open, readdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { PixelfleetError } from '../errors/index.ts';
import { acquireDirectoryLock, type DirectoryLock, fsyncDirectory } from '../storage/index.ts';
import { MonthToDateCache } from './month-to-date-cache.ts';
import { PendingUsage } from './pending-usage.ts';
import { ReadWriteGate } from './read-write-gate.ts';
import { listSegments, readUnsealedSegment, type SegmentFile, sealSegment } from './segment-files.ts';
import { SegmentWriter, type SegmentWriterStats } from './segment-writer.ts';
import { SqliteUsageStore } from './sqlite-store.ts';
import { monthStart, nextMonthStart } from './time-buckets.ts';
import type {
  RecordOutcome,
  UsageGranularity,
  UsageQuery,
  UsageRecord,
  UsageReport,
  UsageStore,
  UsageTotals,
} from './types.ts';
import { usageReport, validateAccountId, validateUsageQuery } from './usage-query.ts';
import { encodeUsageRecordLine, validateUsageRecord } from './usage-record.ts';

export interface UsageMeterOptions {
  /** The data directory: segments go to `<dataDir>/usage/segments/`, the default store to `<dataDir>/usage.db`. */
  dataDir: string;
  /** The aggregate store; default a `SqliteUsageStore` at `<dataDir>/usage.db`, closed with the meter. */
  store?: UsageStore;
  /** Epoch-ms clock: recording windows of segments and the default `now` of `monthToDate`. */
  clock?: () => number;
  /** How often pending usage is flushed to the store (ms). Bounds how much replay a crash costs. */
  flushIntervalMs?: number;
  /** Flush early when this many records are pending, bounding memory under bursts. */
  maxPendingRecords?: number;
  /** Length of a recording window (ms, aligned to the epoch): segments never span two windows. */
  rotateEveryMs?: number;
  /** A segment that reached this size is rotated before the next batch. */
  maxSegmentBytes?: number;
  /** Accounts whose month-to-date totals are kept in memory. */
  monthToDateCacheSize?: number;
  /** Queries that could return more buckets than this are refused (PF_ERR_INVALID_QUERY). */
  maxQueryBuckets?: number;
  /** Background failures (a flush or a seal); both are retried or redone on the next open. */
  onError?: (error: Error) => void;
}

export interface UsageMeterRecovery {
  /** Unsealed segments found on open (left by a crash). */
  unsealedSegments: number;
  /** Records read from them; the store counted only those it had not seen. */
  replayedRecords: number;
  /** Of those, the ones the store had not counted yet (recorded but not flushed before the crash). */
  recoveredRecords: number;
  /** Bytes cut off torn tails (writes a crash interrupted before they were acknowledged). */
  truncatedBytes: number;
}

export interface UsageMeterStats {
  recorded: number;
  duplicates: number;
  pendingRecords: number;
  flushes: number;
  flushedRecords: number;
  flushFailures: number;
  segmentsSealed: number;
  monthToDateCacheEntries: number;
  segments: SegmentWriterStats;
  recovery: UsageMeterRecovery;
}

const defaults = {
  flushIntervalMs: 2_000,
  maxPendingRecords: 20_000,
  rotateEveryMs: 3_600_000,
  maxSegmentBytes: 32 * 1024 * 1024,
  monthToDateCacheSize: 100_000,
  maxQueryBuckets: 50_000,
};
const replayChunk = 5_000;

function positiveInteger(name: string, value: number | undefined, fallback: number): number {
  const chosen = value ?? fallback;
  if (!Number.isSafeInteger(chosen) || chosen < 1)
    throw new RangeError(`${name} must be a positive integer, got ${chosen}`);
  return chosen;
}

function closedError(): PixelfleetError {
  return new PixelfleetError('PF_ERR_STORAGE_UNAVAILABLE', 'the usage meter is closed');
}

/** Opens (and recovers) the usage meter of `dataDir`. */
export async function openUsageMeter(options: UsageMeterOptions): Promise<UsageMeter> {
  if (typeof options.dataDir !== 'string' || options.dataDir === '')
    throw new RangeError('dataDir must be a directory path');
  const settings = {
    flushIntervalMs: positiveInteger('flushIntervalMs', options.flushIntervalMs, defaults.flushIntervalMs),
    maxPendingRecords: positiveInteger(
      'maxPendingRecords',
      options.maxPendingRecords,
      defaults.maxPendingRecords,
    ),
    rotateEveryMs: positiveInteger('rotateEveryMs', options.rotateEveryMs, defaults.rotateEveryMs),
    maxSegmentBytes: positiveInteger('maxSegmentBytes', options.maxSegmentBytes, defaults.maxSegmentBytes),
    monthToDateCacheSize: positiveInteger(
      'monthToDateCacheSize',
      options.monthToDateCacheSize,
      defaults.monthToDateCacheSize,
    ),
    maxQueryBuckets: positiveInteger('maxQueryBuckets', options.maxQueryBuckets, defaults.maxQueryBuckets),
  };
  const usageDirectory = join(options.dataDir, 'usage');
  const segmentDirectory = join(usageDirectory, 'segments');
  await mkdir(segmentDirectory, { recursive: true });
  const lock = await acquireDirectoryLock(usageDirectory);
  let store: UsageStore | undefined;
  try {
    store = options.store ?? new SqliteUsageStore({ path: join(options.dataDir, 'usage.db') });
    const recovery = await recoverSegments(segmentDirectory, store);
    const segments = await listSegments(segmentDirectory);
    const nextSequence = segments.reduce((highest, segment) => Math.max(highest, segment.sequence), 0) + 1;
    return new UsageMeter({
      ...settings,
      store,
      ownsStore: options.store === undefined,
      lock,
      segmentDirectory,
      nextSequence,
      recovery,
      clock: options.clock ?? Date.now,
      onError: options.onError ?? ((error) => process.emitWarning(error)),
    });
  } catch (error) {
    if (options.store === undefined) await store?.close().catch(() => {});
    await lock.release();
    throw error;
  }
}

/** Replays every unsealed segment into the store, then seals (or removes) it. */
async function recoverSegments(directory: string, store: UsageStore): Promise<UsageMeterRecovery> {
  const recovery: UsageMeterRecovery = {
    unsealedSegments: 0,
    replayedRecords: 0,
    recoveredRecords: 0,
    truncatedBytes: 0,
  };
  for (const name of await readdir(directory)) {
    if (name.endsWith('.tmp')) await rm(join(directory, name), { force: true });
  }
  const segments = await listSegments(directory);
  const sealedNames = new Set(segments.filter((segment) => segment.sealed).map((segment) => segment.name));
  for (const segment of segments) {
    if (segment.sealed) continue;
    recovery.unsealedSegments++;
    const contents = await readUnsealedSegment(segment.path);
    if (contents.tornBytes > 0) {
      const handle = await open(segment.path, 'r+');
      try {
        await handle.truncate(contents.validBytes);
        await handle.sync();
      } finally {
        await handle.close();
      }
      recovery.truncatedBytes += contents.tornBytes;
    }
    for (let start = 0; start < contents.records.length; start += replayChunk) {
      const outcome = await store.applyBatch(contents.records.slice(start, start + replayChunk));
      recovery.recoveredRecords += outcome.inserted;
    }
    recovery.replayedRecords += contents.records.length;
    if (sealedNames.has(`${segment.name}.gz`) || contents.records.length === 0) {
      // Its seal completed before the crash (or it never held a record): the plain file is redundant.
      await rm(segment.path, { force: true });
      await fsyncDirectory(directory);
    } else {
      await sealSegment(segment.path, directory);
    }
  }
  return recovery;
}

interface UsageMeterSettings {
  store: UsageStore;
  ownsStore: boolean;
  lock: DirectoryLock;
  segmentDirectory: string;
  nextSequence: number;
  recovery: UsageMeterRecovery;
  clock: () => number;
  onError: (error: Error) => void;
  flushIntervalMs: number;
  maxPendingRecords: number;
  rotateEveryMs: number;
  maxSegmentBytes: number;
  monthToDateCacheSize: number;
  maxQueryBuckets: number;
}

export class UsageMeter {
  readonly #settings: UsageMeterSettings;
  readonly #store: UsageStore;
  readonly #writer: SegmentWriter;
  readonly #gate = new ReadWriteGate();
  readonly #monthToDate: MonthToDateCache;
  /** Pending usage, oldest generation first; new records go to the last one. */
  #generations: PendingUsage[] = [new PendingUsage()];
  /** Admissions in progress by record id: a concurrent duplicate waits for the first one. */
  readonly #admitting = new Map<string, Promise<RecordOutcome>>();
  /** Rotated segments waiting for a flush to cover their records before they are sealed. */
  #rotated: SegmentFile[] = [];
  #flushChain: Promise<void> = Promise.resolve();
  #flushQueued = false;
  #sealing: Promise<void> = Promise.resolve();
  readonly #timer: NodeJS.Timeout;
  #closed = false;
  #storeClosed = false;
  #closing: Promise<void> | undefined;
  #recorded = 0;
  #duplicates = 0;
  #flushes = 0;
  #flushedRecords = 0;
  #flushFailures = 0;
  #segmentsSealed = 0;

  /** Use `openUsageMeter`: opening recovers the data directory first. */
  constructor(settings: UsageMeterSettings) {
    this.#settings = settings;
    this.#store = settings.store;
    this.#monthToDate = new MonthToDateCache(settings.monthToDateCacheSize);
    this.#writer = new SegmentWriter({
      directory: settings.segmentDirectory,
      nextSequence: settings.nextSequence,
      clock: settings.clock,
      rotateEveryMs: settings.rotateEveryMs,
      maxSegmentBytes: settings.maxSegmentBytes,
      onRotated: (segment) => {
        this.#rotated.push(segment);
        // The rotation follows file I/O, so every record of the segment has reached pending usage
        // by now; the flush seals the segment once those records are committed.
        setImmediate(() => this.#requestFlush());
      },
    });
    this.#timer = setInterval(() => this.#tick(), settings.flushIntervalMs);
    this.#timer.unref();
  }

  /**
   * Records one finished conversion. Resolves once the record is durable (call it before acking
   * the job); `duplicate: true` when this record id was recorded before, even before a restart.
   * Rejects with PF_ERR_INVALID_USAGE_RECORD for a malformed record, PF_ERR_STORAGE_UNAVAILABLE
   * when the meter is closed or its disk failed (then do not ack: the job will be redone).
   */
  async record(record: UsageRecord): Promise<RecordOutcome> {
    const valid = validateUsageRecord(record);
    if (this.#closed) throw closedError();
    const inFlight = this.#admitting.get(valid.recordId);
    if (inFlight !== undefined) {
      await inFlight;
      this.#duplicates++;
      return { duplicate: true };
    }
    const admission = this.#admit(valid);
    this.#admitting.set(valid.recordId, admission);
    try {
      return await admission;
    } finally {
      this.#admitting.delete(valid.recordId);
    }
  }

  /** Usage of one account in calendar-aligned UTC buckets, including not-yet-flushed records. */
  async usageFor(accountId: string, query: UsageQuery): Promise<UsageReport> {
    validateAccountId(accountId);
    const valid = validateUsageQuery(query, this.#settings.maxQueryBuckets);
    if (this.#closed) throw closedError();
    return this.#gate.read(async () => {
      const stored = await this.#store.buckets(accountId, valid.fromMs, valid.toMs, valid.granularity);
      // Read pending usage after the store: records that arrived meanwhile are then included.
      const buckets = new Map(stored.map((bucket) => [bucket.startMs, { ...bucket.totals }]));
      for (const generation of this.#generations) {
        generation.addBucketsInto(buckets, accountId, valid.fromMs, valid.toMs, valid.granularity);
      }
      return usageReport(accountId, valid, buckets);
    });
  }

  /** The `AccountUsageSource` of the admin API: `usageFor` with positional arguments. */
  accountUsage(
    accountId: string,
    fromMs: number,
    toMs: number,
    granularity: UsageGranularity,
  ): Promise<UsageReport> {
    return this.usageFor(accountId, { fromMs, toMs, granularity });
  }

  /**
   * Totals of the calendar month (UTC) holding `nowMs`, for the quota check on every request.
   * Served from memory after the first call per account and month, kept exact as records arrive.
   */
  async monthToDate(accountId: string, nowMs: number = this.#settings.clock()): Promise<UsageTotals> {
    validateAccountId(accountId);
    if (!Number.isSafeInteger(nowMs) || nowMs < 0) {
      throw new PixelfleetError(
        'PF_ERR_INVALID_QUERY',
        `nowMs must be an epoch-millisecond integer, got ${nowMs}`,
        {
          extensions: { parameter: 'nowMs' },
        },
      );
    }
    if (this.#closed) throw closedError();
    const cached = this.#monthToDate.get(accountId, nowMs);
    if (cached !== undefined) return cached;
    return this.#gate.read(async () => {
      const fromMs = monthStart(nowMs);
      const toMs = nextMonthStart(nowMs);
      const totals = await this.#store.totals(accountId, fromMs, toMs);
      for (const generation of this.#generations) generation.addTotalsInto(totals, accountId, fromMs, toMs);
      // Cached in the same synchronous step as the pending read: later records are added by `record`.
      this.#monthToDate.set(accountId, nowMs, totals);
      return { ...totals };
    });
  }

  /** Applies all pending usage to the store now (and seals segments whose records it covered). */
  flush(): Promise<void> {
    const done = this.#flushChain.then(() => this.#flushOnce());
    this.#flushChain = done.catch(() => {});
    return done;
  }

  /** Stops accepting records, waits for those in flight, flushes, seals every segment and closes the store. */
  close(): Promise<void> {
    this.#closing ??= this.#shutDown();
    return this.#closing;
  }

  get stats(): UsageMeterStats {
    return {
      recorded: this.#recorded,
      duplicates: this.#duplicates,
      pendingRecords: this.#generations.reduce((sum, generation) => sum + generation.size, 0),
      flushes: this.#flushes,
      flushedRecords: this.#flushedRecords,
      flushFailures: this.#flushFailures,
      segmentsSealed: this.#segmentsSealed,
      monthToDateCacheEntries: this.#monthToDate.size,
      segments: this.#writer.stats,
      recovery: { ...this.#settings.recovery },
    };
  }

  async #admit(record: UsageRecord): Promise<RecordOutcome> {
    if (this.#isPending(record.recordId) || (await this.#store.hasRecord(record.recordId))) {
      this.#duplicates++;
      return { duplicate: true };
    }
    await this.#writer.append(encodeUsageRecordLine(record));
    this.#generations.at(-1)!.add(record);
    this.#monthToDate.add(record);
    this.#recorded++;
    if (this.#generations.at(-1)!.size >= this.#settings.maxPendingRecords) this.#requestFlush();
    return { duplicate: false };
  }

  #isPending(recordId: string): boolean {
    for (const generation of this.#generations) if (generation.has(recordId)) return true;
    return false;
  }

  #tick(): void {
    this.#writer.rotateIfDue().then(
      () => this.#requestFlush(),
      (error: Error) => this.#settings.onError(error),
    );
  }

  /** A background flush; at most one is queued behind the running one. */
  #requestFlush(): void {
    if (this.#flushQueued || this.#storeClosed) return;
    this.#flushQueued = true;
    this.flush().catch((error: Error) => this.#settings.onError(error));
  }

  async #flushOnce(): Promise<void> {
    this.#flushQueued = false;
    if (this.#storeClosed) return;
    await this.#gate.write(async () => {
      const sealable = this.#rotated;
      this.#rotated = [];
      const taken = this.#generations;
      const records = taken.flatMap((generation) => generation.records);
      if (records.length > 0) {
        this.#generations = [...taken, new PendingUsage()];
        try {
          await this.#store.applyBatch(records);
        } catch (error) {
          // Keep the generations (a retry is harmless: the store deduplicates by id) and the
          // segments unsealed until a flush succeeds.
          this.#rotated = [...sealable, ...this.#rotated];
          this.#flushFailures++;
          throw error;
        }
        this.#generations = this.#generations.filter((generation) => !taken.includes(generation));
        this.#flushes++;
        this.#flushedRecords += records.length;
      }
      for (const segment of sealable) this.#seal(segment);
    });
  }

  #seal(segment: SegmentFile): void {
    this.#sealing = this.#sealing.then(async () => {
      try {
        await sealSegment(segment.path, this.#settings.segmentDirectory);
        this.#segmentsSealed++;
      } catch (cause) {
        // Left unsealed; the next open replays and seals it.
        this.#settings.onError(
          new PixelfleetError('PF_ERR_STORAGE_UNAVAILABLE', `could not seal usage segment ${segment.name}`, {
            cause,
          }),
        );
      }
    });
  }

  async #shutDown(): Promise<void> {
    this.#closed = true;
    clearInterval(this.#timer);
    try {
      await Promise.allSettled([...this.#admitting.values()]);
      await this.#writer.close();
      await this.flush();
      await this.#sealing;
    } finally {
      this.#storeClosed = true;
      if (this.#settings.ownsStore) await this.#store.close();
      await this.#settings.lock.release();
    }
  }
}
