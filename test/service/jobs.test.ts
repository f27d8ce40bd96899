import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { corpusFile, startInProcess, waitFor } from './harness.ts';

type Service = Awaited<ReturnType<typeof startInProcess>>;

/** Submits an async job; checks the 202 document and returns the job's id. */
async function submitJob(service: Service, query: string, body: Uint8Array): Promise<string> {
  const response = await fetch(`${service.url}/v1/jobs?${query}`, {
    method: 'POST',
    body,
    headers: service.auth,
  });
  assert.equal(response.status, 202);
  const document = (await response.json()) as {
    id: string;
    state: string;
    links: { self: string; result: string };
  };
  assert.equal(response.headers.get('location'), `/v1/jobs/${document.id}`);
  assert.equal(document.state, 'queued');
  assert.equal(document.links.result, `/v1/jobs/${document.id}/result`);
  return document.id;
}

/** The job's document once it succeeded or failed. */
async function finishedJob(
  service: Service,
  id: string,
  timeoutMs = 30_000,
): Promise<Record<string, unknown>> {
  return waitFor(
    async () => {
      const job = (await (
        await fetch(`${service.url}/v1/jobs/${id}`, { headers: service.auth })
      ).json()) as Record<string, unknown>;
      return job.state === 'succeeded' || job.state === 'failed' ? job : undefined;
    },
    { timeoutMs, intervalMs: 20 },
  );
}

describe('api - asynchronous jobs', () => {
  let service: Service;
  const image = corpusFile('jpeg/skimage-coffee-q90.jpg');

  before(async () => {
    service = await startInProcess(['--workers', '1', '--result-ttl', '2s']);
  });
  after(async () => {
    await service.close();
  });

  const submit = (query: string, body: Uint8Array = image) => submitJob(service, query, body);
  const finished = (id: string) => finishedJob(service, id);

  test('api - a job reports state, attempts and timings, and its result has validators', async () => {
    const id = await submit('width=200&format=png');
    const job = await finished(id);
    assert.equal(job.state, 'succeeded');
    assert.equal(job.attempts, 1);
    assert.ok(job.startedAt && job.finishedAt);
    const timings = job.timings as { queueWaitMs: number; conversionMs: number; cpuMicros: number };
    assert.ok(timings.conversionMs > 0 && timings.cpuMicros > 0);
    const result = job.result as { contentType: string; width: number; bytes: number };
    assert.equal(result.contentType, 'image/png');
    assert.equal(result.width, 200);
    const image1 = await fetch(`${service.url}/v1/jobs/${id}/result`, { headers: service.auth });
    assert.equal(image1.status, 200);
    assert.equal(image1.headers.get('content-type'), 'image/png');
    assert.equal((await image1.arrayBuffer()).byteLength, result.bytes);
    const etag = image1.headers.get('etag')!;
    const again = await fetch(`${service.url}/v1/jobs/${id}/result`, {
      headers: { ...service.auth, 'if-none-match': etag },
    });
    assert.equal(again.status, 304);
  });

  test('api - the result of a job still running is 409; a failed job reports its problem', async () => {
    const slow = await submit('width=2400&blur=80&format=png', corpusFile('jpeg/mate-Garden.jpg'));
    const early = await fetch(`${service.url}/v1/jobs/${slow}/result`, { headers: service.auth });
    assert.equal(early.status, 409);
    assert.equal(((await early.json()) as { code: string }).code, 'PF_ERR_JOB_NOT_FINISHED');
    await finished(slow);

    const truncated = image.subarray(0, Math.floor(image.length / 2));
    const broken = await submit('width=100', truncated);
    const job = await finished(broken);
    assert.equal(job.state, 'failed');
    assert.equal((job.error as { code: string }).code, 'PF_ERR_CORRUPT_IMAGE');
    const result = await fetch(`${service.url}/v1/jobs/${broken}/result`, { headers: service.auth });
    assert.equal(result.status, 409);
    assert.equal(((await result.json()) as { code: string }).code, 'PF_ERR_JOB_FAILED');
  });

  test('api - results expire after the result TTL (410)', async () => {
    const id = await submit('width=64');
    await finished(id);
    const fresh = await fetch(`${service.url}/v1/jobs/${id}/result`, { headers: service.auth });
    assert.equal(fresh.status, 200);
    await fresh.arrayBuffer();
    await new Promise((resolve) => setTimeout(resolve, 2300));
    const expired = await fetch(`${service.url}/v1/jobs/${id}/result`, { headers: service.auth });
    assert.equal(expired.status, 410);
    assert.equal(((await expired.json()) as { code: string }).code, 'PF_ERR_RESULT_EXPIRED');
  });
});

describe('api - leases of long conversions', () => {
  let service: Service;
  // The largest corpus photo to lossless AVIF at full size: seconds of converting, many leases.
  const image = corpusFile('jpeg/mate-TwoWings.jpg');

  before(async () => {
    service = await startInProcess(['--workers', '1', '--lease', '600ms']);
  });
  after(async () => {
    await service.close();
  });

  test('api - a conversion longer than the lease keeps its job: the worker renews the lease', async () => {
    const id = await submitJob(service, 'width=2560&format=avif&lossless=true', image);
    const job = await finishedJob(service, id, 60_000);
    assert.equal(job.state, 'succeeded');
    const timings = job.timings as { conversionMs: number };
    assert.ok(
      timings.conversionMs > 3 * 600,
      `the conversion took ${timings.conversionMs} ms, not several leases`,
    );
    // An unrenewed 600 ms lease would have run out mid-conversion and the job been handed out again.
    assert.equal(job.attempts, 1);
  });
});
