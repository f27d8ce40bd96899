import assert from 'node:assert/strict';
import { test } from 'node:test';
import { corpusFile, resize, startInProcess } from './harness.ts';

test('service - a propagated Pixelfleet-Deadline caps the sync wait (504), and the job expires unconverted', async () => {
  const service = await startInProcess(['--workers', '1']);
  try {
    const image = corpusFile('jpeg/mate-Garden.jpg');
    // Keep the only worker busy so the next job waits in the queue past its deadline.
    const busy = resize(service, image, 'width=2000&format=avif&quality=90').then(async (response) => {
      await response.arrayBuffer();
      return response.status;
    });
    const started = performance.now();
    const late = await resize(service, image, 'width=64', { 'pixelfleet-deadline': '150' });
    const elapsed = performance.now() - started;
    assert.equal(late.status, 504);
    assert.equal(((await late.json()) as { code: string }).code, 'PF_ERR_DEADLINE_EXCEEDED');
    assert.ok(elapsed < 5_000, `answered after ${Math.round(elapsed)} ms, not at the 30 s sync timeout`);
    assert.equal(await busy, 200);
    // Without the header the server's own timeout applies and the request succeeds.
    const normal = await resize(service, image, 'width=64');
    assert.equal(normal.status, 200);
    await normal.arrayBuffer();
    // An unreadable header is ignored, not an error.
    const garbage = await resize(service, image, 'width=64', { 'pixelfleet-deadline': 'soon' });
    assert.equal(garbage.status, 200);
    await garbage.arrayBuffer();
  } finally {
    await service.close();
  }
});
