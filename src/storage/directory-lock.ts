/**
 * An advisory lock on a data directory: a `LOCK` file holding the owner's pid. Two processes
 * appending to one log would interleave frames and corrupt it, so a second opener is refused.
 * A lock left by a process that no longer exists (killed with SIGKILL) is taken over.
 */
import { open, readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { PixelfleetError } from '../errors/index.ts';

export interface DirectoryLock {
  readonly path: string;
  release(): Promise<void>;
}

/** Locks held by this process: its own pid in the file says nothing about which opener holds it. */
const heldInThisProcess = new Set<string>();

export async function acquireDirectoryLock(directory: string): Promise<DirectoryLock> {
  const path = join(directory, 'LOCK');
  if (heldInThisProcess.has(path)) {
    throw new PixelfleetError('PF_ERR_STORAGE_LOCKED', `${directory} is already open in this process`);
  }
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      const handle = await open(path, 'wx');
      try {
        await handle.writeFile(`${process.pid}\n`);
      } finally {
        await handle.close();
      }
      heldInThisProcess.add(path);
      return { path, release: () => releaseLock(path) };
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
    }
    const owner = Number.parseInt(await readFile(path, 'utf8').catch(() => ''), 10);
    if (Number.isInteger(owner) && owner !== process.pid && isProcessAlive(owner)) {
      throw new PixelfleetError(
        'PF_ERR_STORAGE_LOCKED',
        `${directory} is in use by process ${owner}; stop it or choose another data directory`,
        { extensions: { pid: owner } },
      );
    }
    // The owner is gone: remove its stale lock and try to take it (another opener may race us).
    await rm(path, { force: true });
  }
  throw new PixelfleetError(
    'PF_ERR_STORAGE_LOCKED',
    `could not lock ${directory}: other openers keep racing`,
  );
}

async function releaseLock(path: string): Promise<void> {
  if (!heldInThisProcess.delete(path)) return;
  await rm(path, { force: true });
}

/** Whether a process with this pid exists (ours or another user's). */
export function isProcessAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    // EPERM: it exists but belongs to someone else.
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}
