/**
 * `tempDir()`: a fresh directory under the OS temp dir that removes itself: through the test
 * context's `after` hook when one is given, through `remove()` / `await using`, and at process
 * exit in any case.
 */
import { rmSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type CleanupOwner, onExit } from './cleanup.ts';

export interface TempDir {
  path: string;
  remove(): Promise<void>;
  [Symbol.asyncDispose](): Promise<void>;
}

export async function tempDir(owner?: CleanupOwner, prefix = 'pixelfleet-'): Promise<TempDir> {
  const path = await mkdtemp(join(tmpdir(), prefix));
  const unregister = onExit(() => rmSync(path, { recursive: true, force: true }));
  let removed: Promise<void> | null = null;
  const remove = (): Promise<void> => {
    removed ??= rm(path, { recursive: true, force: true, maxRetries: 3 }).finally(unregister);
    return removed;
  };
  owner?.after(remove);
  return { path, remove, [Symbol.asyncDispose]: remove };
}
