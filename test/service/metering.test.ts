import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  corpusFile,
  issueTestKey,
  resize,
  type ServiceProcess,
  startProcess,
  target,
  tempDir,
  waitFor,
} from './harness.ts';

const images = ['jpeg/mate-Storm-q85.jpg', 'jpeg/skimage-rocket.jpg', 'jpeg/mate-Garden.jpg'].map(corpusFile);

interface Received {
  conversions: number;
  bytesIn: number;
  bytesOut: number;
}

function add(into: Received, bytesIn: number, bytesOut: number): void {
  into.conversions++;
  into.bytesIn += bytesIn;
  into.bytesOut += bytesOut;
}

async function busyWorker(service: ServiceProcess): Promise<boolean | undefined> {
  const text = await (await fetch(`${service.url}/metrics`)).text();
  return /pixelfleet_workers\{state="busy"\} [1-9]/.test(text) ? true : undefined;
}

describe('metering - the invariant', () => {
  test('metering - after worker kills and a service kill -9, usage equals what clients received', async () => {
    const dir = await tempDir();
    const argv = ['--data-dir', dir.path, '--workers', '2'];
    let service = await startProcess(argv);
    const tenants = await Promise.all(
      ['alpha', 'beta'].map(async (name) => ({ name, ...(await issueTestKey(service.adminUrl, { name })) })),
    );
    const received = new Map(tenants.map((t) => [t.accountId, { conversions: 0, bytesIn: 0, bytesOut: 0 }]));
    const asyncJobs: { accountId: string; apiKey: string; id: string; bytesIn: number }[] = [];
    try {
      // Sync traffic for both tenants, with a worker killed mid-conversion.
      const sync = tenants.flatMap((tenant) =>
        Array.from({ length: 6 }, async (_, i) => {
          const input = images[i % images.length]!;
          const response = await resize(target(service.url, tenant.apiKey), input, `width=${300 + i}&blur=2`);
          const body = await response.arrayBuffer();
          assert.equal(response.status, 200);
          add(received.get(tenant.accountId)!, input.length, body.byteLength);
        }),
      );
      await waitFor(() => busyWorker(service), { timeoutMs: 20_000, intervalMs: 5 });
      process.kill(service.workerPids()[0]!, 'SIGKILL');
      await Promise.all(sync);

      // Async jobs, then kill -9 of the whole service while they are queued or running.
      for (const tenant of tenants) {
        for (let i = 0; i < 6; i++) {
          const input = images[i % images.length]!;
          const response = await fetch(`${service.url}/v1/jobs?width=${900 + i}&blur=3`, {
            method: 'POST',
            body: input,
            headers: { authorization: `Bearer ${tenant.apiKey}` },
          });
          assert.equal(response.status, 202);
          const { id } = (await response.json()) as { id: string };
          asyncJobs.push({ accountId: tenant.accountId, apiKey: tenant.apiKey, id, bytesIn: input.length });
        }
      }
      service.kill('SIGKILL');
      await service.exited;

      service = await startProcess(argv, { apiKey: tenants[0]!.apiKey });
      for (const job of asyncJobs) {
        const auth = { authorization: `Bearer ${job.apiKey}` };
        await waitFor(
          async () => {
            const state = (await (
              await fetch(`${service.url}/v1/jobs/${job.id}`, { headers: auth })
            ).json()) as {
              state: string;
            };
            return state.state === 'succeeded' ? true : undefined;
          },
          { timeoutMs: 60_000, intervalMs: 100 },
        );
        const result = await fetch(`${service.url}/v1/jobs/${job.id}/result`, { headers: auth });
        assert.equal(result.status, 200);
        add(received.get(job.accountId)!, job.bytesIn, (await result.arrayBuffer()).byteLength);
      }

      for (const tenant of tenants) {
        const report = (await (
          await fetch(`${service.url}/v1/usage?granularity=month`, {
            headers: { authorization: `Bearer ${tenant.apiKey}` },
          })
        ).json()) as { totals: Received };
        const expected = received.get(tenant.accountId)!;
        console.log(
          `# ${tenant.name}: clients received ${JSON.stringify(expected)}; metered ${JSON.stringify(report.totals)}`,
        );
        assert.equal(report.totals.conversions, expected.conversions, 'nothing lost, nothing counted twice');
        assert.equal(report.totals.bytesIn, expected.bytesIn);
        assert.equal(report.totals.bytesOut, expected.bytesOut);
      }
      const metrics = await (await fetch(`${service.url}/metrics`)).text();
      assert.ok(!/pixelfleet_queue_dead_letters [1-9]/.test(metrics), 'no job was dead-lettered');
    } finally {
      service.kill('SIGKILL');
      await service.exited;
      await dir.remove();
    }
  });
});
