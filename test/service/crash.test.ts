import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import { corpusFile, resize, type ServiceProcess, startProcess, tempDir, waitFor } from './harness.ts';

const slowImage = corpusFile('jpeg/mate-TwoWings.jpg');
const quickImage = corpusFile('jpeg/skimage-rocket.jpg');

async function busyWorkers(url: string): Promise<number> {
  const text = await (await fetch(`${url}/metrics`)).text();
  const match = /pixelfleet_workers\{state="busy"\} (\d+)/.exec(text);
  return match ? Number(match[1]) : 0;
}

describe('worker - crashes and stalls', () => {
  const cleanup: (() => Promise<void>)[] = [];
  after(async () => {
    for (const step of cleanup) await step();
  });

  async function start(argv: string[]): Promise<ServiceProcess> {
    const dir = await tempDir();
    const service = await startProcess(['--data-dir', dir.path, ...argv]);
    cleanup.push(async () => {
      service.kill('SIGKILL');
      await service.exited;
      await dir.remove();
    });
    return service;
  }

  test('worker - kill -9 mid-conversion: the job completes on a restarted worker', async () => {
    const service = await start(['--workers', '1']);
    const [before] = service.workerPids();
    assert.ok(before, 'one worker process');
    const pending = resize(service, slowImage, 'width=2000&blur=40&format=png');
    await waitFor(async () => ((await busyWorkers(service.url)) === 1 ? true : undefined), {
      timeoutMs: 20_000,
      intervalMs: 10,
    });
    process.kill(before, 'SIGKILL');
    const response = await pending;
    const body = Buffer.from(await response.arrayBuffer());
    assert.equal(response.status, 200, body.toString().slice(0, 300));
    assert.equal(response.headers.get('x-pixelfleet-attempts'), '2', 'delivered a second time');
    const [afterKill] = service.workerPids();
    assert.ok(afterKill && afterKill !== before, 'a new worker process took over');
    const metrics = await (await fetch(`${service.url}/metrics`)).text();
    assert.match(metrics, /pixelfleet_worker_restarts_total\{reason="crash"\} 1/);
  });

  test('worker - a conversion past the watchdog is killed, retried, then dead-lettered; others are served', async () => {
    const service = await start(['--workers', '1', '--job-timeout', '300ms', '--max-attempts', '2']);
    const poison = await resize(service, slowImage, 'width=2500&blur=300&format=png');
    const problem = (await poison.json()) as { code: string };
    assert.equal(poison.status, 422);
    assert.equal(problem.code, 'PF_ERR_POISON_INPUT');
    const good = await resize(service, quickImage, 'width=64');
    assert.equal(good.status, 200);
    await good.arrayBuffer();
    const metrics = await (await fetch(`${service.url}/metrics`)).text();
    assert.match(metrics, /pixelfleet_worker_restarts_total\{reason="timeout"\} 2/);
    assert.match(metrics, /pixelfleet_queue_dead_letters 1/);
  });
});

describe('queue - kill -9 of the whole service loses no accepted async job', () => {
  test('queue - accepted jobs survive kill -9 and complete exactly once after restart', async () => {
    const dir = await tempDir();
    const argv = ['--data-dir', dir.path, '--workers', '1'];
    const first = await startProcess(argv);
    const ids: string[] = [];
    try {
      for (let i = 0; i < 12; i++) {
        const response = await fetch(`${first.url}/v1/jobs?width=1200&blur=5&format=webp`, {
          method: 'POST',
          body: slowImage,
          headers: first.auth,
        });
        assert.equal(response.status, 202);
        assert.match(response.headers.get('location') ?? '', /^\/v1\/jobs\//);
        ids.push(((await response.json()) as { id: string }).id);
      }
      first.kill('SIGKILL');
      await first.exited;
      const second = await startProcess(argv, { apiKey: first.apiKey });
      try {
        for (const id of ids) {
          const job = await waitFor(
            async () => {
              const state = (await (
                await fetch(`${second.url}/v1/jobs/${id}`, { headers: second.auth })
              ).json()) as { state: string };
              return state.state === 'succeeded' || state.state === 'failed' ? state : undefined;
            },
            { timeoutMs: 60_000, intervalMs: 100 },
          );
          assert.equal(job.state, 'succeeded', JSON.stringify(job));
          const result = await fetch(`${second.url}/v1/jobs/${id}/result`, { headers: second.auth });
          assert.equal(result.status, 200);
          assert.equal(result.headers.get('content-type'), 'image/webp');
          await result.arrayBuffer();
        }
        const completions = new Map<string, number>();
        for (const entry of [...first.logs, ...second.logs]) {
          if (entry.msg === 'job' && entry.state === 'succeeded') {
            completions.set(entry.jobId as string, (completions.get(entry.jobId as string) ?? 0) + 1);
          }
        }
        for (const id of ids)
          assert.ok((completions.get(id) ?? 0) <= 1, `job ${id} completed ${completions.get(id)} times`);
        // Logs are written asynchronously: a line of the killed run may be missing, none may
        // appear twice. That every job succeeded is checked through the API above.
      } finally {
        second.kill('SIGKILL');
        await second.exited;
      }
    } finally {
      first.kill('SIGKILL');
      await dir.remove();
    }
  });
});
