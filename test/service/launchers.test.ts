import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { serviceNodeFlags } from '../../src/cli/node-flags.ts';
import { nodeBinary, repoRoot } from './harness.ts';

const flags = serviceNodeFlags.join(' ');

test('launchers - npm start and the pixelfleet bin start the service with the service V8 flags', () => {
  const pkg = JSON.parse(readFileSync(join(repoRoot, 'package.json'), 'utf8'));
  assert.equal(pkg.scripts.start, `node ${flags} src/cli/main.ts start`);
  const bin = readFileSync(join(repoRoot, 'bin/pixelfleet.js'), 'utf8');
  assert.equal(bin.split('\n')[0], `#!/usr/bin/env -S node ${flags}`);
  const reexec = /const serviceNodeFlags = (\[[^\]]*\]);/.exec(bin)?.[1];
  assert.ok(reexec !== undefined, 'the bin names the flags it re-execs an older Node with');
  assert.deepEqual(
    JSON.parse(reexec.replaceAll("'", '"')),
    serviceNodeFlags,
    'the bin re-execs an older Node with the same flags',
  );
});

test('launchers - the pinned Node accepts the flags', () => {
  const run = spawnSync(nodeBinary, [...serviceNodeFlags, '-e', 'process.exit(0)'], { encoding: 'utf8' });
  assert.equal(run.status, 0, run.stderr);
});
