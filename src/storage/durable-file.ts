/**
 * Small durability helpers. A rename or a new file is only durable once the directory that holds
 * it is fsynced, and a replaced file is only all-or-nothing when it is written to a temporary
 * name, fsynced, then renamed over the old one.
 */
import { randomBytes } from 'node:crypto';
import { open, rename, rm } from 'node:fs/promises';
import { dirname } from 'node:path';

export async function fsyncDirectory(directory: string): Promise<void> {
  const handle = await open(directory, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/**
 * Replaces `path` with `data` so that a crash leaves either the old or the new content. The
 * temporary file is `<path>.<random>.tmp`: two writers of the same path (a redelivered job
 * racing its old attempt) never truncate each other's half-written file. Callers that clean up
 * after a crash remove `<path>.*.tmp`.
 */
export async function writeFileAtomic(
  path: string,
  data: Uint8Array,
  options: { mode?: number } = {},
): Promise<void> {
  const temporary = `${path}.${randomBytes(6).toString('hex')}.tmp`;
  const handle = await open(temporary, 'w', options.mode ?? 0o666);
  try {
    await handle.writeFile(data);
    await handle.sync();
  } catch (error) {
    await handle.close().catch(() => {});
    await rm(temporary, { force: true });
    throw error;
  }
  await handle.close();
  await rename(temporary, path);
  await fsyncDirectory(dirname(path));
}
