/**
 * Where job inputs and outputs live while the queue carries only references to them.
 *
 * - Synchronous requests keep their bytes in memory: the client is waiting, and if the process
 *   dies the client's connection dies with it, so persisting them would buy nothing.
 * - Asynchronous jobs were promised with a 202, so their input is written and fsynced (file and
 *   directory) before the job is enqueued, and their result is fsynced before the job is acked:
 *   `kill -9` at any point loses no accepted job and no reported result.
 * Results of async jobs expire after `resultTtl` and are swept.
 */
import { mkdirSync } from 'node:fs';
import { readdir, readFile, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { writeFileAtomic } from '../storage/index.ts';

export type BlobLocation = 'memory' | 'disk';

export interface StoredResult {
  bytes: Buffer;
  contentType: string;
}

function safeName(id: string): string {
  if (!/^[A-Za-z0-9_-]{1,128}$/.test(id))
    throw new RangeError(`blob id ${JSON.stringify(id)} is not a safe file name`);
  return id;
}

export class BlobStore {
  readonly #memoryInputs = new Map<string, Buffer>();
  readonly #inputDirectory: string;
  readonly #resultDirectory: string;

  constructor(dataDir: string) {
    this.#inputDirectory = join(dataDir, 'blobs', 'inputs');
    this.#resultDirectory = join(dataDir, 'blobs', 'results');
    mkdirSync(this.#inputDirectory, { recursive: true, mode: 0o700 });
    mkdirSync(this.#resultDirectory, { recursive: true, mode: 0o700 });
  }

  async putInput(id: string, bytes: Buffer, location: BlobLocation): Promise<void> {
    if (location === 'memory') this.#memoryInputs.set(id, bytes);
    else await writeFileAtomic(join(this.#inputDirectory, safeName(id)), bytes, { mode: 0o600 });
  }

  /** The input bytes, or undefined when they are gone (a sync caller left, or a restart). */
  async getInput(id: string, location: BlobLocation): Promise<Buffer | undefined> {
    if (location === 'memory') return this.#memoryInputs.get(id);
    try {
      return await readFile(join(this.#inputDirectory, safeName(id)));
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw error;
    }
  }

  async deleteInput(id: string, location: BlobLocation): Promise<void> {
    if (location === 'memory') this.#memoryInputs.delete(id);
    else await rm(join(this.#inputDirectory, safeName(id)), { force: true });
  }

  /** Stores an async result durably; the content type rides in a sidecar-free header line. */
  async putResult(id: string, result: StoredResult): Promise<void> {
    const header = Buffer.from(`${result.contentType}\n`);
    await writeFileAtomic(join(this.#resultDirectory, safeName(id)), Buffer.concat([header, result.bytes]), {
      mode: 0o600,
    });
  }

  async getResult(id: string): Promise<StoredResult | undefined> {
    let raw: Buffer;
    try {
      raw = await readFile(join(this.#resultDirectory, safeName(id)));
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw error;
    }
    const newline = raw.indexOf(10);
    return { contentType: raw.subarray(0, newline).toString(), bytes: raw.subarray(newline + 1) };
  }

  /** Deletes results older than `ttlMs`; returns how many went. */
  async sweepResults(ttlMs: number, now = Date.now()): Promise<number> {
    let removed = 0;
    for (const name of await readdir(this.#resultDirectory)) {
      const path = join(this.#resultDirectory, name);
      try {
        const info = await stat(path);
        if (now - info.mtimeMs > ttlMs) {
          await rm(path, { force: true });
          removed++;
        }
      } catch {
        // Raced with another sweep or a rewrite: nothing to do.
      }
    }
    return removed;
  }

  get memoryInputCount(): number {
    return this.#memoryInputs.size;
  }
}
