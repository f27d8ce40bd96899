/**
 * Raft storage on the record log (`src/storage`): what a node's Readies tell it to persist
 * (entries, hard state, snapshots), written so that a restart hands the core exactly what was
 * fsynced (`PersistedState`).
 *
 * Layout: one record per Ready — its hard state (if changed) and its entries. Entries replace
 * every stored entry at or after their first index, so a conflicting suffix the leader overwrote
 * is truncated on replay simply by replaying records in order; no separate truncate record is
 * needed. A Ready is one record, so a torn write loses a whole Ready or nothing, never entries
 * without the hard state that goes with them (the record log's CRC framing drops a torn tail).
 *
 * Snapshots (taken by this node with `compact`, or received from the leader in a Ready) go to
 * their own file, `raft-snapshot-<index>-<term>.bin` (written to a temporary name in chunks,
 * fsynced, renamed), OFF the log's fsync chain: a state of tens of megabytes must not hold up
 * the small appends behind it (which would stall heartbeats and trigger needless elections).
 * Only then does the record log compact, into a small record naming that file (with its CRC),
 * plus the hard state and the entries after the snapshot; older records and snapshot files are
 * deleted. Replay = that record (and file), then later records. A crash at any point leaves the
 * previous snapshot and the full log after it.
 *
 * Group commit: `save` appends without waiting; records appended while an fsync runs share the
 * next one. The returned promise resolves once the Ready is durable. A Ready that only advances
 * the commit index writes nothing: the core never needs a durable commit index for safety (it
 * relearns it from the leader), so it rides along with the next record, or the final flush.
 */
import { type FileHandle, open, readdir, readFile, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { crc32 } from 'node:zlib';
import type { Entry, HardState, PersistedState, Ready, Snapshot } from '../../consensus/index.ts';
import { PixelfleetError } from '../../errors/index.ts';
import { fsyncDirectory, openRecordLog, type RecordLog, type RecordLogStats } from '../../storage/index.ts';
import {
  ByteReader,
  ByteWriter,
  bytesText,
  entriesSize,
  hardStateSize,
  readEntries,
  readHardState,
  textBytes,
  writeEntries,
  writeHardState,
} from './binary.ts';

const READY_RECORD = 1;
const STATE_RECORD = 3;
const SNAPSHOT_FILE_PATTERN = /^raft-snapshot-\d{20}-\d+\.bin(\.tmp)?$/;
/** Snapshot files are written and flushed this much at a time (see the module header). */
const SNAPSHOT_WRITE_CHUNK = 4 * 1024 * 1024;

export interface RaftStorageOptions {
  directory: string;
  /** Called once when a write or fsync fails; the storage (and so the node) is unusable after. */
  onError?: (error: Error) => void;
}

export interface RaftStorageRecovery {
  /** Bytes cut off a torn tail on open (0 after a clean shutdown). */
  truncatedBytes: number;
  truncation?: { file: string; offset: number; reason: string };
  /** Records replayed after the snapshot. */
  replayedRecords: number;
}

interface StoredState {
  hardState: HardState;
  snapshot: Snapshot | undefined;
  /** Entries after the snapshot, contiguous. */
  entries: Entry[];
}

/** How the log's state record names the snapshot file. */
interface SnapshotFile {
  name: string;
  crc: number;
  length: number;
}

export async function openRaftStorage(
  options: RaftStorageOptions,
): Promise<{ storage: RaftStorage; recovery: RaftStorageRecovery }> {
  let storage: RaftStorage | undefined;
  const { log, recovery } = await openRecordLog({
    directory: options.directory,
    onError: (error) => (storage ? options.onError?.(error) : undefined),
  });
  try {
    const state: StoredState = recovery.snapshot
      ? await decodeState(recovery.snapshot, options.directory)
      : { hardState: { term: 0, vote: null, commit: 0 }, snapshot: undefined, entries: [] };
    await removeSnapshotFiles(
      options.directory,
      state.snapshot ? snapshotFileName(state.snapshot) : undefined,
    );
    for (const [position, record] of recovery.records.entries()) {
      applyReadyRecord(state, record, `${options.directory} record ${position}`);
    }
    storage = new RaftStorage(log, state, options.directory);
    const result: RaftStorageRecovery = {
      truncatedBytes: recovery.truncatedBytes,
      replayedRecords: recovery.records.length,
    };
    if (recovery.truncation) result.truncation = recovery.truncation;
    return { storage, recovery: result };
  } catch (error) {
    await log.close().catch(() => {});
    throw error;
  }
}

export class RaftStorage {
  readonly #log: RecordLog;
  readonly #directory: string;
  /** Snapshot writes, one after another (a newer one supersedes an older one still queued). */
  #snapshotChain: Promise<void> = Promise.resolve();
  /** A mirror of what the log holds (once its pending writes land): what a restart would see. */
  readonly #state: StoredState;
  /** The mirror's hard state moved (commit only) since the last record carried it. */
  #hardStateUnwritten = false;

  /** Use `openRaftStorage`. */
  constructor(log: RecordLog, state: StoredState, directory: string) {
    this.#log = log;
    this.#state = state;
    this.#directory = directory;
  }

  /** What to hand the Raft core at start: everything recovered from disk. */
  persistedState(): PersistedState {
    const persisted: PersistedState = {
      hardState: { ...this.#state.hardState },
      entries: [...this.#state.entries],
    };
    if (this.#state.snapshot) persisted.snapshot = this.#state.snapshot;
    return persisted;
  }

  get snapshot(): Snapshot | undefined {
    return this.#state.snapshot;
  }

  /**
   * Persists a Ready's snapshot, entries and hard state, in that order. Returns a promise that
   * resolves once they are durable, or undefined when the Ready has nothing to persist.
   */
  save(ready: Ready): Promise<void> | undefined {
    if (ready.snapshot !== undefined) {
      const state = this.#state;
      state.snapshot = ready.snapshot;
      state.entries = state.entries.filter((entry) => entry.index > ready.snapshot!.meta.index);
      if (ready.entries.length > 0) replaceSuffix(state, ready.entries);
      if (ready.hardState) state.hardState = { ...ready.hardState };
      // The log's state record lands atomically: snapshot file, entries and hard state together.
      return this.#persistSnapshot(ready.snapshot);
    }
    if (ready.hardState) {
      this.#state.hardState = { ...ready.hardState };
      this.#hardStateUnwritten = true;
    }
    if (ready.entries.length === 0 && !ready.mustSync) return undefined;
    if (ready.entries.length > 0) replaceSuffix(this.#state, ready.entries);
    return this.#appendRecord(ready.entries);
  }

  #appendRecord(entries: readonly Entry[]): Promise<void> {
    const hardState = this.#hardStateUnwritten ? this.#state.hardState : undefined;
    this.#hardStateUnwritten = false;
    return this.#log.append(encodeReadyRecord(hardState, entries));
  }

  /**
   * Log compaction after `RaftNode.compact`: the snapshot replaces every entry up to its index.
   * Written atomically with the entries after it; a crash before it lands keeps the old state.
   */
  compact(snapshot: Snapshot): Promise<void> {
    const state = this.#state;
    state.snapshot = snapshot;
    state.entries = state.entries.filter((entry) => entry.index > snapshot.meta.index);
    return this.#persistSnapshot(snapshot);
  }

  #persistSnapshot(snapshot: Snapshot): Promise<void> {
    const job = this.#snapshotChain.then(async () => {
      // A newer snapshot replaced this one before its turn: that one is written instead.
      if (this.#state.snapshot !== snapshot) return;
      const name = snapshotFileName(snapshot);
      await writeSnapshotFile(this.#directory, name, snapshot.data);
      if (this.#state.snapshot !== snapshot) return;
      // Everything appended before this call is in the mirror, as the record log requires.
      this.#hardStateUnwritten = false;
      await this.#log.compact(
        encodeState(this.#state, { name, crc: crc32(snapshot.data), length: snapshot.data.byteLength }),
      );
      await removeSnapshotFiles(this.#directory, name);
    });
    this.#snapshotChain = job.catch(() => {});
    return job;
  }

  /** Resolves once everything saved so far is durable. */
  sync(): Promise<void> {
    return this.#log.sync();
  }

  get writable(): boolean {
    return this.#log.writable;
  }

  stats(): RecordLogStats & { entries: number; snapshotIndex: number } {
    return {
      ...this.#log.stats(),
      entries: this.#state.entries.length,
      snapshotIndex: this.#state.snapshot?.meta.index ?? 0,
    };
  }

  /** Flushes pending writes (and the latest commit index) and releases the directory. */
  async close(): Promise<void> {
    await this.#snapshotChain;
    if (this.#hardStateUnwritten && this.#log.writable) {
      await this.#appendRecord([]).catch(() => {});
    }
    await this.#log.close();
  }
}

/** Stored entries from `entries[0].index` on are replaced (a conflicting suffix is dropped). */
function replaceSuffix(state: StoredState, entries: readonly Entry[]): void {
  const first = entries[0]!.index;
  const offset = state.snapshot?.meta.index ?? 0;
  const keep = first - offset - 1;
  if (keep < 0 || keep > state.entries.length) {
    throw new PixelfleetError(
      'PF_ERR_RAFT_STATE_CORRUPT',
      `entries starting at ${first} do not follow the stored log (snapshot ${offset}, ${state.entries.length} entries)`,
    );
  }
  if (keep < state.entries.length) state.entries.length = keep;
  for (const entry of entries) state.entries.push(entry);
}

function encodeReadyRecord(hardState: HardState | undefined, entries: readonly Entry[]): Buffer {
  const writer = new ByteWriter(1 + 1 + (hardState ? hardStateSize(hardState) : 0) + entriesSize(entries));
  writer.u8(READY_RECORD);
  writer.u8(hardState ? 1 : 0);
  if (hardState) writeHardState(writer, hardState);
  writeEntries(writer, entries);
  return writer.finish();
}

function applyReadyRecord(state: StoredState, record: Uint8Array, where: string): void {
  const reader = new ByteReader(record, where);
  if (reader.u8() !== READY_RECORD) {
    throw new PixelfleetError('PF_ERR_STORAGE_CORRUPT', `${where} is not a Raft ready record`);
  }
  const hasHardState = reader.u8() === 1;
  const hardState = hasHardState ? readHardState(reader) : undefined;
  const entries = readEntries(reader);
  if (entries.length > 0) replaceSuffix(state, entries);
  if (hardState) state.hardState = hardState;
}

function snapshotFileName(snapshot: Snapshot): string {
  return `raft-snapshot-${String(snapshot.meta.index).padStart(20, '0')}-${snapshot.meta.term}.bin`;
}

/** Writes `data` to `<directory>/<name>` durably and atomically, flushing as it goes. */
async function writeSnapshotFile(directory: string, name: string, data: Uint8Array): Promise<void> {
  const temporary = join(directory, `${name}.tmp`);
  const handle = await open(temporary, 'w');
  try {
    for (let offset = 0; offset < data.byteLength; offset += SNAPSHOT_WRITE_CHUNK) {
      await writeFully(
        handle,
        data.subarray(offset, Math.min(offset + SNAPSHOT_WRITE_CHUNK, data.byteLength)),
        offset,
      );
      // Flushing chunk by chunk keeps any one journal commit (and the appends queued behind it) short.
      await handle.datasync();
    }
    await handle.sync();
  } catch (error) {
    await handle.close().catch(() => {});
    await rm(temporary, { force: true });
    throw error;
  }
  await handle.close();
  await rename(temporary, join(directory, name));
  await fsyncDirectory(directory);
}

async function writeFully(handle: FileHandle, data: Uint8Array, position: number): Promise<void> {
  let written = 0;
  while (written < data.byteLength) {
    const { bytesWritten } = await handle.write(data, written, data.byteLength - written, position + written);
    if (bytesWritten === 0) throw new Error('snapshot write made no progress');
    written += bytesWritten;
  }
}

/** Deletes snapshot files (and leftovers of interrupted writes) other than `keep`. */
async function removeSnapshotFiles(directory: string, keep: string | undefined): Promise<void> {
  for (const name of await readdir(directory)) {
    if (name !== keep && SNAPSHOT_FILE_PATTERN.test(name)) await rm(join(directory, name), { force: true });
  }
}

function encodeState(state: StoredState, file: SnapshotFile | undefined): Buffer {
  const meta = state.snapshot ? textBytes(JSON.stringify({ meta: state.snapshot.meta, file })) : undefined;
  const writer = new ByteWriter(
    1 + hardStateSize(state.hardState) + 1 + (meta ? 4 + meta.byteLength : 0) + entriesSize(state.entries),
  );
  writer.u8(STATE_RECORD);
  writeHardState(writer, state.hardState);
  writer.u8(meta ? 1 : 0);
  if (meta) writer.bytes(meta);
  writeEntries(writer, state.entries);
  return writer.finish();
}

async function decodeState(data: Uint8Array, directory: string): Promise<StoredState> {
  const reader = new ByteReader(data, 'Raft storage snapshot');
  if (reader.u8() !== STATE_RECORD) {
    throw new PixelfleetError('PF_ERR_STORAGE_CORRUPT', 'Raft storage snapshot has an unknown format');
  }
  const hardState = readHardState(reader);
  let snapshot: Snapshot | undefined;
  if (reader.u8() === 1) {
    const { meta, file } = JSON.parse(bytesText(reader.bytes())) as {
      meta: Snapshot['meta'];
      file: SnapshotFile;
    };
    const path = join(directory, file.name);
    const content = await readFile(path).catch((error: unknown) => {
      throw new PixelfleetError('PF_ERR_STORAGE_CORRUPT', `${path}: the snapshot the log names is missing`, {
        cause: error,
      });
    });
    if (content.byteLength !== file.length || crc32(content) !== file.crc) {
      throw new PixelfleetError('PF_ERR_STORAGE_CORRUPT', `${path} does not match its length and checksum`);
    }
    snapshot = { meta, data: content };
  }
  return { hardState, snapshot, entries: readEntries(reader) };
}
