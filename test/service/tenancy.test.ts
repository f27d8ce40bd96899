import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import {
  adminCall,
  corpusFile,
  defineTier,
  issueTestKey,
  resize,
  startInProcess,
  target,
  waitFor,
} from './harness.ts';

type Service = Awaited<ReturnType<typeof startInProcess>>;
const image = corpusFile('jpeg/skimage-rocket.jpg');

async function problemOf(response: Response): Promise<{ code: string; status: number; detail: string }> {
  assert.equal(response.headers.get('content-type'), 'application/problem+json');
  return (await response.json()) as { code: string; status: number; detail: string };
}

describe('tenancy - keys, limits, idempotency and metering over HTTP', () => {
  let service: Service;
  before(async () => {
    service = await startInProcess(['--workers', '2']);
  });
  after(async () => {
    await service.close();
  });

  test('tenancy - /v1 needs a valid key: missing, malformed and unknown keys are 401', async () => {
    for (const headers of [
      {},
      { authorization: 'Basic abc' },
      { authorization: 'Bearer pf_live_nope_nope' },
    ]) {
      const response = await fetch(`${service.url}/v1/resize?width=64`, {
        method: 'POST',
        body: image,
        headers,
      });
      assert.equal(response.status, 401);
      assert.equal((await problemOf(response)).code, 'PF_ERR_UNAUTHORIZED');
    }
  });

  test('tenancy - a key without the scope a route needs is 403', async () => {
    const readOnly = await issueTestKey(service.adminUrl, { scopes: ['usage:read'] });
    const response = await resize(target(service.url, readOnly.apiKey), image, 'width=64');
    assert.equal(response.status, 403);
    assert.equal((await problemOf(response)).code, 'PF_ERR_FORBIDDEN');
    const usage = await fetch(`${service.url}/v1/usage`, {
      headers: { authorization: `Bearer ${readOnly.apiKey}` },
    });
    assert.equal(usage.status, 200);
    await usage.arrayBuffer();
  });

  test('tenancy - a revoked key stops working within a second (measured)', async () => {
    const tenant = await issueTestKey(service.adminUrl);
    const as = target(service.url, tenant.apiKey);
    const first = await resize(as, image, 'width=32');
    assert.equal(first.status, 200);
    await first.arrayBuffer();
    const revokedAt = performance.now();
    await adminCall(service.adminUrl, `/admin/keys/${tenant.keyId}/revoke`, { reason: 'test' });
    await waitFor(
      async () => {
        const response = await fetch(`${service.url}/v1/usage`, { headers: as.auth });
        await response.arrayBuffer();
        return response.status === 401 ? true : undefined;
      },
      { timeoutMs: 5000, intervalMs: 5 },
    );
    const latencyMs = performance.now() - revokedAt;
    console.log(`# revocation reached the data plane in ${latencyMs.toFixed(1)} ms (target ≤ 1000 ms)`);
    assert.ok(latencyMs < 1000, `revocation latency ${latencyMs} ms`);
  });

  test('tenancy - the tier token bucket refuses a burst with 429, Retry-After and RateLimit headers', async () => {
    await defineTier(service.adminUrl, 'trickle', { ratePerSecond: 1, burst: 3 });
    const tenant = await issueTestKey(service.adminUrl, { tier: 'trickle' });
    const statuses: number[] = [];
    let refused: Response | undefined;
    for (let i = 0; i < 6; i++) {
      const response = await fetch(`${service.url}/v1/usage`, {
        headers: { authorization: `Bearer ${tenant.apiKey}` },
      });
      statuses.push(response.status);
      if (response.status === 200) {
        assert.match(response.headers.get('ratelimit') ?? '', /"trickle";r=\d+;t=\d+/);
        assert.match(response.headers.get('ratelimit-policy') ?? '', /"trickle";q=3/);
        await response.arrayBuffer();
      } else refused ??= response;
    }
    assert.deepEqual(statuses.slice(0, 3), [200, 200, 200], 'the burst is admitted');
    assert.ok(refused, `then refused: ${statuses}`);
    assert.equal(refused.status, 429);
    assert.equal((await problemOf(refused)).code, 'PF_ERR_RATE_LIMITED');
    assert.match(refused.headers.get('retry-after') ?? '', /^\d+$/);
    assert.match(refused.headers.get('ratelimit') ?? '', /"trickle";r=0/);
  });

  test('tenancy - per-key concurrency: conversions beyond the tier cap get 429', async () => {
    await defineTier(service.adminUrl, 'single', { concurrentJobs: 1 });
    const tenant = target(service.url, (await issueTestKey(service.adminUrl, { tier: 'single' })).apiKey);
    const slow = corpusFile('jpeg/mate-Garden.jpg');
    const results = await Promise.all(
      Array.from({ length: 4 }, async () => {
        const response = await resize(tenant, slow, 'width=1600&blur=4');
        return { status: response.status, body: await response.text() };
      }),
    );
    const statuses = results.map((r) => r.status);
    assert.ok(statuses.includes(200), `${statuses}`);
    const refused = results.find((r) => r.status === 429);
    assert.ok(refused, `some refused: ${statuses}`);
    assert.equal(JSON.parse(refused.body).code, 'PF_ERR_CONCURRENCY_LIMITED');
  });

  test('tenancy - the monthly quota stops conversions once used up', async () => {
    await defineTier(service.adminUrl, 'quota2', { monthlyConversions: 2 });
    const tenant = target(service.url, (await issueTestKey(service.adminUrl, { tier: 'quota2' })).apiKey);
    for (let i = 0; i < 2; i++) {
      const ok = await resize(tenant, image, `width=${40 + i}`);
      assert.equal(ok.status, 200);
      await ok.arrayBuffer();
    }
    const third = await resize(tenant, image, 'width=42');
    assert.equal(third.status, 429);
    assert.equal((await problemOf(third)).code, 'PF_ERR_QUOTA_EXCEEDED');
  });

  test('tenancy - a tier input size limit is enforced before the body is read (413)', async () => {
    await defineTier(service.adminUrl, 'small-inputs', { maxInputBytes: 50_000 });
    const tenant = target(
      service.url,
      (await issueTestKey(service.adminUrl, { tier: 'small-inputs' })).apiKey,
    );
    const response = await resize(tenant, image, 'width=64');
    assert.equal(response.status, 413);
    assert.equal((await problemOf(response)).code, 'PF_ERR_TIER_BODY_TOO_LARGE');
  });

  test('tenancy - anonymous access is off by default and per-IP limited once enabled', async () => {
    const refused = await fetch(`${service.url}/v1/resize?width=64`, { method: 'POST', body: image });
    assert.equal(refused.status, 401);
    await refused.arrayBuffer();
    await adminCall(
      service.adminUrl,
      '/admin/tiers/anonymous',
      { enabled: true, burst: 2, ratePerSecond: 0.5 },
      'PUT',
    );
    try {
      const statuses: number[] = [];
      for (let i = 0; i < 4; i++) {
        const response = await fetch(`${service.url}/v1/resize?width=${30 + i}`, {
          method: 'POST',
          body: image,
        });
        statuses.push(response.status);
        await response.arrayBuffer();
      }
      assert.deepEqual(statuses.slice(0, 2), [200, 200]);
      assert.ok(statuses.includes(429), `per-IP bucket refuses: ${statuses}`);
    } finally {
      await adminCall(service.adminUrl, '/admin/tiers/anonymous', { enabled: false }, 'PUT');
    }
  });

  test('tenancy - Idempotency-Key replays the first response byte for byte; mismatches are 422', async () => {
    const headers = { 'idempotency-key': `order-${Date.now()}` };
    const first = await resize(service, image, 'width=100&format=webp', headers);
    const firstBody = Buffer.from(await first.arrayBuffer());
    assert.equal(first.status, 200);
    assert.equal(first.headers.get('idempotent-replayed'), null);
    const second = await resize(service, image, 'width=100&format=webp', headers);
    const secondBody = Buffer.from(await second.arrayBuffer());
    assert.equal(second.status, 200);
    assert.equal(second.headers.get('idempotent-replayed'), 'true');
    assert.ok(secondBody.equals(firstBody), 'same bytes');
    assert.equal(second.headers.get('etag'), first.headers.get('etag'));
    assert.equal(
      second.headers.get('server-timing'),
      first.headers.get('server-timing'),
      'the original timings',
    );
    const other = await resize(service, image, 'width=101&format=webp', headers);
    assert.equal(other.status, 422);
    assert.equal((await problemOf(other)).code, 'PF_ERR_IDEMPOTENCY_KEY_REUSED');
  });

  test('tenancy - a duplicate while the first is running is 409; a rejected request frees its key', async () => {
    const key = { 'idempotency-key': `slow-${Date.now()}` };
    const slow = corpusFile('jpeg/mate-Garden.jpg');
    const firstPending = resize(service, slow, 'width=2500&blur=60&format=png', key);
    // Send the duplicate once the first is being converted.
    await waitFor(
      async () => {
        const metrics = await (await fetch(`${service.url}/metrics`)).text();
        return /pixelfleet_workers\{state="busy"\} [1-9]/.test(metrics) ? true : undefined;
      },
      { timeoutMs: 10_000, intervalMs: 5 },
    );
    const duplicate = await resize(service, slow, 'width=2500&blur=60&format=png', key);
    assert.equal(duplicate.status, 409);
    assert.equal((await problemOf(duplicate)).code, 'PF_ERR_IDEMPOTENCY_IN_PROGRESS');
    const first = await firstPending;
    assert.equal(first.status, 200);
    await first.arrayBuffer();

    const freed = { 'idempotency-key': `fix-me-${Date.now()}` };
    const invalid = await resize(service, image, 'width=abc', freed);
    assert.equal(invalid.status, 400);
    await invalid.arrayBuffer();
    const fixed = await resize(service, image, 'width=50', freed);
    assert.equal(fixed.status, 200, 'the key was not burnt by the validation failure');
    await fixed.arrayBuffer();
  });

  test('tenancy - async jobs are visible to their own account only', async () => {
    const submitted = await fetch(`${service.url}/v1/jobs?width=64`, {
      method: 'POST',
      body: image,
      headers: service.auth,
    });
    assert.equal(submitted.status, 202);
    const { id } = (await submitted.json()) as { id: string };
    const other = await issueTestKey(service.adminUrl);
    const peek = await fetch(`${service.url}/v1/jobs/${id}`, {
      headers: { authorization: `Bearer ${other.apiKey}` },
    });
    assert.equal(peek.status, 404);
    await peek.arrayBuffer();
    const own = await fetch(`${service.url}/v1/jobs/${id}`, { headers: service.auth });
    assert.equal(own.status, 200);
    await own.arrayBuffer();
  });

  test('tenancy - GET /v1/usage and the admin usage report what the account converted', async () => {
    const tenant = await issueTestKey(service.adminUrl);
    const as = target(service.url, tenant.apiKey);
    let bytesOut = 0;
    for (let i = 0; i < 3; i++) {
      const response = await resize(as, image, `width=${60 + i}`);
      assert.equal(response.status, 200);
      bytesOut += (await response.arrayBuffer()).byteLength;
    }
    const report = (await (
      await fetch(`${service.url}/v1/usage?granularity=day`, { headers: as.auth })
    ).json()) as {
      totals: { conversions: number; bytesOut: number; bytesIn: number; cpuMicros: number };
    };
    assert.equal(report.totals.conversions, 3);
    assert.equal(report.totals.bytesOut, bytesOut);
    assert.equal(report.totals.bytesIn, image.length * 3);
    assert.ok(report.totals.cpuMicros > 0);
    const admin = (await adminCall(
      service.adminUrl,
      `/admin/accounts/${tenant.accountId}/usage?granularity=day`,
    )) as {
      usage: { totals: { conversions: number } };
    };
    assert.equal(JSON.stringify(admin).includes('"conversions":3'), true, JSON.stringify(admin));
    const bad = await fetch(`${service.url}/v1/usage?granularity=week`, { headers: as.auth });
    assert.equal(bad.status, 400);
    assert.equal((await problemOf(bad)).code, 'PF_ERR_INVALID_QUERY');
  });
  // Last: the lockout is per client address, and every test here calls from 127.0.0.1.
  test('tenancy - repeated bad keys from one client are locked out progressively (429)', async () => {
    let locked: Response | undefined;
    for (let i = 0; i < 30 && !locked; i++) {
      const response = await fetch(`${service.url}/v1/usage`, {
        headers: { authorization: `Bearer pf_live_bad${i}_guess` },
      });
      if (response.status === 429) locked = response;
      else await response.arrayBuffer();
    }
    assert.ok(locked, 'locked out after repeated failures');
    assert.equal((await problemOf(locked)).code, 'PF_ERR_AUTH_LOCKED_OUT');
    assert.match(locked.headers.get('retry-after') ?? '', /^\d+$/);
    const metrics = await (await fetch(`${service.url}/metrics`)).text();
    assert.match(metrics, /pixelfleet_requests_rejected_total\{code="PF_ERR_AUTH_LOCKED_OUT"\} [1-9]/);
  });
});
