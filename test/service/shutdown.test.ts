import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { corpusFile, resize, startProcess, tempDir } from './harness.ts';

describe('service - graceful shutdown', () => {
  test('service - SIGTERM drains in-flight requests, refuses new ones and exits 0', async () => {
    const dir = await tempDir();
    const service = await startProcess(['--data-dir', dir.path, '--workers', '1']);
    try {
      const image = corpusFile('jpeg/mate-Garden.jpg');
      // Bodies are read as soon as they arrive: Node's bundled undici asserts when a server closes
      // a connection whose response body the caller has not started reading yet.
      const inflight = Array.from({ length: 4 }, () =>
        resize(service, image, 'width=1600&blur=3').then(async (response) => ({
          status: response.status,
          bytes: (await response.arrayBuffer()).byteLength,
        })),
      );
      await new Promise((resolve) => setTimeout(resolve, 300));
      service.kill('SIGTERM');
      await new Promise((resolve) => setTimeout(resolve, 100));
      const late = await resize(service, image, 'width=64').then(
        (response) => response.status,
        () => 'refused',
      );
      assert.ok(late === 503 || late === 'refused', `a request after SIGTERM is refused (${late})`);
      for (const { status, bytes } of await Promise.all(inflight)) {
        assert.equal(status, 200);
        assert.ok(bytes > 0);
      }
      const { code } = await service.exited;
      assert.equal(code, 0);
      assert.ok(service.logs.some((entry) => entry.msg === 'shut down'));
    } finally {
      service.kill('SIGKILL');
      await dir.remove();
    }
  });
});
