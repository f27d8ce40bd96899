import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { corpusFile, resize, startProcess, temporaryDirectory } from './harness.ts';

describe('service - graceful shutdown', () => {
  test('service - SIGTERM drains in-flight requests, refuses new ones and exits 0', async () => {
    const dir = temporaryDirectory();
    const service = await startProcess(['--data-dir', dir.path, '--workers', '1']);
    try {
      const image = corpusFile('jpeg/mate-Garden.jpg');
      const inflight = Array.from({ length: 4 }, () => resize(service.url, image, 'width=1600&blur=3'));
      await new Promise((resolve) => setTimeout(resolve, 300));
      service.kill('SIGTERM');
      await new Promise((resolve) => setTimeout(resolve, 100));
      const late = await resize(service.url, image, 'width=64').then(
        (response) => response.status,
        () => 'refused',
      );
      assert.ok(late === 503 || late === 'refused', `a request after SIGTERM is refused (${late})`);
      for (const pending of inflight) {
        const response = await pending;
        assert.equal(response.status, 200);
        await response.arrayBuffer();
      }
      const { code } = await service.exited;
      assert.equal(code, 0);
      assert.ok(service.logs.some((entry) => entry.msg === 'shut down'));
    } finally {
      service.kill('SIGKILL');
      dir.remove();
    }
  });
});
