#!/usr/bin/env -S node --initial-old-space-size=128 --external-memory-accounted-in-global-limit
// Entry point of the `pixelfleet` command. The project runs on Node 24 (type stripping), pinned
// through the `node` devDependency; when launched by an older system Node, re-exec under the pin.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

// The same flags as the shebang's, for the re-exec (src/cli/node-flags.ts says why).
const serviceNodeFlags = ['--initial-old-space-size=128', '--external-memory-accounted-in-global-limit'];
const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const main = join(root, 'src', 'cli', 'main.ts');
const major = Number(process.versions.node.split('.')[0]);
if (major >= 24) {
  await import(main);
} else {
  const pinned = join(root, 'node_modules', '.bin', 'node');
  if (!existsSync(pinned)) {
    console.error('pixelfleet needs Node.js 24: run `npm install` in the repository first');
    process.exit(1);
  }
  const child = spawnSync(pinned, [...serviceNodeFlags, main, ...process.argv.slice(2)], {
    stdio: 'inherit',
  });
  process.exit(child.status ?? 1);
}
