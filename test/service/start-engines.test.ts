import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { test } from 'node:test';
import { nodeBinary, repoRoot } from './harness.ts';

test('service - pixelfleet start refuses the cluster-only engine settings instead of ignoring them', () => {
  for (const [flag, value] of [
    ['--queue', 'nats://127.0.0.1:4222'],
    ['--redis', 'redis://127.0.0.1:6379'],
    ['--postgres', 'postgres://pixelfleet@127.0.0.1:5432/pixelfleet'],
  ] as const) {
    const run = spawnSync(nodeBinary, [join(repoRoot, 'src/cli/main.ts'), 'start', flag, value], {
      cwd: repoRoot,
      encoding: 'utf8',
      timeout: 30_000,
      env: { PATH: process.env.PATH, HOME: process.env.HOME },
    });
    assert.equal(run.status, 2, run.stderr);
    assert.match(
      run.stderr,
      new RegExp(`invalid configuration: ${flag}: existing engines are used by the cluster roles`),
    );
  }
});
