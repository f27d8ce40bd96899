import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { percentileOf } from '../support/stats.ts';
import { corpusFile, issueTestKey, resize, startInProcess, target } from './harness.ts';

const image = corpusFile('jpeg/mate-Storm-q85.jpg');

async function timedRequests(to: ReturnType<typeof target>, count: number): Promise<number[]> {
  const latencies: number[] = [];
  for (let i = 0; i < count; i++) {
    const started = performance.now();
    const response = await resize(to, image, 'width=320');
    await response.arrayBuffer();
    assert.equal(response.status, 200);
    latencies.push(performance.now() - started);
  }
  return latencies;
}

describe('fairness - one tenant flooding does not starve another', () => {
  test('fairness - a quiet tenant keeps its p99 while another floods the queue', async () => {
    const service = await startInProcess(['--workers', '2']);
    try {
      const flooder = target(service.url, (await issueTestKey(service.adminUrl, { name: 'flooder' })).apiKey);
      const quiet = target(service.url, (await issueTestKey(service.adminUrl, { name: 'quiet' })).apiKey);
      await timedRequests(quiet, 3); // warm up
      const alone = await timedRequests(quiet, 20);

      let flooding = true;
      let flooderServed = 0;
      const flood = Array.from({ length: 40 }, async () => {
        while (flooding) {
          const response = await resize(flooder, image, 'width=320');
          await response.arrayBuffer();
          if (response.status === 200) flooderServed++;
        }
      });
      await new Promise((resolve) => setTimeout(resolve, 500)); // let the backlog build
      const underFlood = await timedRequests(quiet, 20);
      flooding = false;
      await Promise.all(flood);

      const p99Alone = percentileOf(alone, 0.99);
      const p99Flood = percentileOf(underFlood, 0.99);
      const bound = 3 * p99Alone + 250;
      console.log(
        `# quiet tenant p99 alone ${p99Alone.toFixed(0)} ms, under a 40-connection flood ${p99Flood.toFixed(0)} ms ` +
          `(bound 3 × alone + 250 ms = ${bound.toFixed(0)} ms); flooder served ${flooderServed}`,
      );
      assert.ok(flooderServed > 20, 'the flooder was served too');
      assert.ok(p99Flood <= bound, `quiet p99 ${p99Flood.toFixed(0)} ms > bound ${bound.toFixed(0)} ms`);
    } finally {
      await service.close();
    }
  });
});
