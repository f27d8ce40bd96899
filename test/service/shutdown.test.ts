import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { corpusFile, resize, startProcess, tempDir } from './harness.ts';

describe('service - graceful shutdown', () => {
  for (const stop of ['SIGTERM', 'Ctrl-C'] as const) {
    test(`service - ${stop} drains in-flight requests, refuses new ones and exits 0`, async () => {
      await drainsOn(stop);
    });
  }
});

/**
 * Ctrl-C in a terminal sends SIGINT to every process of the foreground group, the conversion
 * children included: they must leave the stopping to the service, or the drain loses its work.
 */
async function drainsOn(stop: 'SIGTERM' | 'Ctrl-C'): Promise<void> {
  const dir = await tempDir();
  const service = await startProcess(['--data-dir', dir.path, '--workers', '1'], { detached: true });
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
    if (stop === 'SIGTERM') service.kill('SIGTERM');
    else service.interrupt();
    await new Promise((resolve) => setTimeout(resolve, 100));
    const late = await resize(service, image, 'width=64').then(
      (response) => response.status,
      () => 'refused',
    );
    assert.ok(late === 503 || late === 'refused', `a request after ${stop} is refused (${late})`);
    for (const { status, bytes } of await Promise.all(inflight)) {
      assert.equal(status, 200);
      assert.ok(bytes > 0);
    }
    const { code } = await service.exited;
    assert.equal(code, 0);
    assert.ok(service.logs.some((entry) => entry.msg === 'shut down'));
    // No conversion was lost and redone on the way: no worker died during the drain.
    assert.deepEqual(
      service.logs.filter((entry) => entry.msg === 'worker event' || entry.msg === 'job attempt failed'),
      [],
    );
  } finally {
    service.kill('SIGKILL');
    await dir.remove();
  }
}
