/**
 * The shared test utilities themselves: free ports bind, temp dirs remove themselves, waitFor
 * resolves with the value or fails with a message.
 */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { test } from 'node:test';
import { freePort, freePorts, tempDir, waitFor } from './index.ts';

test('support - freePort returns a port that can be bound', async () => {
  const port = await freePort();
  const server = createServer();
  await new Promise<void>((resolve) => server.listen({ host: '127.0.0.1', port }, resolve));
  await new Promise<void>((resolve) => server.close(() => resolve()));
  const ports = await freePorts(5);
  assert.equal(new Set(ports).size, 5);
});

test('support - tempDir removes itself through the test context', async (t) => {
  let path = '';
  await t.test('inner', async (inner) => {
    const dir = await tempDir(inner);
    path = dir.path;
    await writeFile(join(dir.path, 'file'), 'x');
    assert.ok(existsSync(path));
  });
  assert.equal(existsSync(path), false);
  {
    await using dir = await tempDir();
    path = dir.path;
  }
  assert.equal(existsSync(path), false, 'await using removes it too');
});

test('support - waitFor returns the first truthy value or times out with the message', async () => {
  let calls = 0;
  assert.equal(await waitFor(() => (++calls >= 3 ? 'ready' : null), { intervalMs: 1 }), 'ready');
  await assert.rejects(
    waitFor(() => false, { timeoutMs: 50, message: 'never' }),
    /never within 50 ms/,
  );
  await assert.rejects(
    waitFor(
      () => {
        throw new Error('boom');
      },
      { timeoutMs: 30 },
    ),
    (error: Error) => error.cause instanceof Error && error.cause.message === 'boom',
  );
});
