import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { percentileOf } from '../support/stats.ts';
import { corpusFile, resize, startInProcess } from './harness.ts';

const image = corpusFile('jpeg/mate-Storm-q85.jpg');

describe('api - overload', () => {
  test('api - a surge beyond the in-flight cap is shed with 503 + Retry-After; admitted latency stays bounded', async () => {
    const service = await startInProcess(['--workers', '1', '--max-inflight', '6']);
    try {
      const started = Date.now();
      const results = await Promise.all(
        Array.from({ length: 60 }, async () => {
          const t0 = performance.now();
          const response = await resize(service, image, 'width=320');
          const body = await response.arrayBuffer();
          return {
            status: response.status,
            retryAfter: response.headers.get('retry-after'),
            ms: performance.now() - t0,
            body: Buffer.from(body),
          };
        }),
      );
      const ok = results.filter((r) => r.status === 200);
      const shed = results.filter((r) => r.status === 503);
      assert.equal(
        ok.length + shed.length,
        results.length,
        `only 200 and 503: ${results.map((r) => r.status)}`,
      );
      assert.ok(ok.length >= 6, `at least the cap was served (${ok.length})`);
      assert.ok(shed.length > 0, 'some requests were shed');
      for (const r of shed) {
        assert.match(r.retryAfter ?? '', /^\d+$/);
        assert.equal(JSON.parse(r.body.toString()).code, 'PF_ERR_OVERLOADED');
      }
      const p99 = percentileOf(
        ok.map((r) => r.ms),
        0.99,
      );
      assert.ok(p99 < 10_000, `admitted p99 ${p99.toFixed(0)} ms is bounded`);
      assert.ok(Date.now() - started < 30_000);
      // Still healthy and serving afterwards.
      const after = await resize(service, image, 'width=64');
      assert.equal(after.status, 200);
      await after.arrayBuffer();
      const metrics = await (await fetch(`${service.url}/metrics`)).text();
      assert.match(metrics, /pixelfleet_requests_shed_total\{code="PF_ERR_OVERLOADED"\} [1-9]/);
    } finally {
      await service.close();
    }
  });

  test('api - a queue above its high-water mark pushes back with 503 PF_ERR_QUEUE_FULL', async () => {
    const service = await startInProcess(['--workers', '1', '--queue-high-water', '3']);
    try {
      const statuses: number[] = [];
      let problem: { code?: string } = {};
      for (let i = 0; i < 15; i++) {
        const response = await fetch(`${service.url}/v1/jobs?width=2500&blur=60&format=png`, {
          method: 'POST',
          body: image,
          headers: service.auth,
        });
        statuses.push(response.status);
        const body = (await response.json()) as { code?: string };
        if (response.status === 503) {
          problem = body;
          assert.match(response.headers.get('retry-after') ?? '', /^\d+$/);
        }
      }
      assert.ok(statuses.includes(202), `some accepted: ${statuses}`);
      assert.ok(statuses.includes(503), `some pushed back: ${statuses}`);
      assert.equal(problem.code, 'PF_ERR_QUEUE_FULL');
    } finally {
      await service.close();
    }
  });
});
