import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { readmePath, renderReadme } from '../../scripts/docs.ts';

test('docs - README reference tables match the code (run `npm run docs` to refresh)', () => {
  const current = readFileSync(readmePath, 'utf8');
  assert.equal(renderReadme(current), current);
});

test('docs - README gives exactly two set-up commands: start and test', () => {
  const readme = readFileSync(readmePath, 'utf8');
  const setup = /<!-- setup -->\n```sh\n([\s\S]*?)```/.exec(readme);
  assert.ok(setup, 'a setup block');
  const commands = setup[1]!.split('\n').filter((line) => line.trim() !== '' && !line.trim().startsWith('#'));
  assert.deepEqual(commands, ['npm ci && npm start', 'npm ci && npm test']);
  const ci = readFileSync(new URL('../../.ci/run', import.meta.url), 'utf8');
  assert.ok(ci.includes('npm ci && npm test'), '.ci/run runs the README test command');
});
