/**
 * `pixelfleet cluster` on existing engines: the queue on a 3-server NATS JetStream cluster, rate
 * limits and idempotency keys on Redis, the identity store on PostgreSQL — all real servers
 * started for the test. One region serves every phase, in order: traffic through the gateway,
 * a tier limit shared by both api servers, an Idempotency-Key replayed by the other api server,
 * Redis paused under load (local shares, then back), PostgreSQL down (cached keys verify, the
 * admin API answers 503 at once, then recovers), and kill -9 of the NATS stream leader under
 * async load (every accepted job succeeds and is metered once).
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { jetstreamManager } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import sharp from 'sharp';
import { corpusJpegs } from '../service/harness.ts';
import { sleep, startNatsCluster, startPostgres, startRedisServer, waitFor } from '../support/index.ts';
import { type LocalCluster, startLocalCluster } from './harness.ts';

const limitedTier = {
  enabled: true,
  ratePerSecond: 0.1,
  burst: 5,
  concurrentJobs: 8,
  maxInputBytes: 10 * 1024 * 1024,
  maxInputPixels: 100_000_000,
  monthlyConversions: null,
  priceMicroUsdPerCpuSecond: 0,
  priceMicroUsdPerGigabyteIn: 0,
  priceMicroUsdPerGigabyteOut: 0,
};

async function status(url: string, init: RequestInit = {}): Promise<number> {
  const response = await fetch(url, { ...init, signal: AbortSignal.timeout(15_000) });
  await response.arrayBuffer();
  return response.status;
}

/** Value of an unlabelled gauge on one api server's /metrics. */
async function gauge(apiUrl: string, name: string): Promise<number | undefined> {
  const text = await (await fetch(`${apiUrl}/metrics`)).text();
  const line = text.split('\n').find((entry) => entry.startsWith(`${name} `));
  return line === undefined ? undefined : Number(line.slice(name.length + 1));
}

async function issueKeyOnTier(
  cluster: LocalCluster,
  tier: string,
): Promise<{ accountId: string; apiKey: string }> {
  const created = (await cluster.admin('/admin/accounts', { name: `tenant on ${tier}`, tier })) as {
    account: { id: string };
  };
  const issued = (await cluster.admin(`/admin/accounts/${created.account.id}/keys`, {
    scopes: ['images:write', 'jobs:read', 'usage:read'],
  })) as { apiKey: string };
  return { accountId: created.account.id, apiKey: issued.apiKey };
}

test('cluster - engines: NATS queue, Redis limits and idempotency, PostgreSQL identity, and their faults', {
  timeout: 240_000,
}, async (t) => {
  const begun = performance.now();
  const [nats, redis, postgres] = await Promise.all([
    startNatsCluster({ nodes: 3, owner: t }),
    startRedisServer({ owner: t }),
    startPostgres({ owner: t }),
  ]);
  t.diagnostic(`engines ready in ${Math.round(performance.now() - begun)} ms`);
  const cluster = await startLocalCluster(t, {
    apiServers: 2,
    workers: 2,
    strategy: 'round-robin',
    clusterArgs: ['--queue', nats.urls.join(','), '--redis', redis.url, '--postgres', postgres.url],
  });
  t.diagnostic(`cluster ready in ${Math.round(performance.now() - begun)} ms`);
  const ready = cluster.logs.find((entry) => entry.msg === 'local cluster ready') as {
    engines: Record<string, string>;
  };
  assert.deepEqual(ready.engines, { queue: 'nats', limits: 'redis', identity: 'postgres' });
  assert.equal(cluster.pids().queue.length, 0, 'no Raft queue nodes run on NATS');
  // Engine URLs reach members through their environment, never a log line.
  assert.ok(
    !JSON.stringify(cluster.logs).includes(postgres.url),
    'the PostgreSQL URL (password) is not logged',
  );

  const image = readFileSync(corpusJpegs()[0]!);
  const tenant = await cluster.issueKey();
  const auth = { authorization: `Bearer ${tenant.apiKey}` };

  await t.test('sync resize and async job through the gateway', async () => {
    await waitFor(
      async () =>
        (await status(`${cluster.gatewayUrl}/v1/resize?width=120`, {
          method: 'POST',
          body: image,
          headers: auth,
        })) === 200,
      { timeoutMs: 45_000, intervalMs: 250, message: 'the gateway serves a resize' },
    );
    const sync = await fetch(`${cluster.gatewayUrl}/v1/resize?width=160&format=png`, {
      method: 'POST',
      body: image,
      headers: auth,
    });
    assert.equal(sync.status, 200, await sync.clone().text());
    assert.equal((await sharp(Buffer.from(await sync.arrayBuffer())).metadata()).width, 160);

    const accepted = await fetch(`${cluster.gatewayUrl}/v1/jobs?width=64`, {
      method: 'POST',
      body: image,
      headers: auth,
    });
    assert.equal(accepted.status, 202, await accepted.clone().text());
    const { id } = (await accepted.json()) as { id: string };
    await waitFor(
      async () => {
        const job = await fetch(`${cluster.gatewayUrl}/v1/jobs/${id}`, { headers: auth });
        return ((await job.json()) as { state: string }).state === 'succeeded';
      },
      { timeoutMs: 30_000, intervalMs: 100, message: 'the async job succeeds' },
    );
    const result = await fetch(`${cluster.gatewayUrl}/v1/jobs/${id}/result`, { headers: auth });
    assert.equal(result.status, 200);
    assert.equal((await sharp(Buffer.from(await result.arrayBuffer())).metadata()).width, 64);
  });

  await t.test('a tier limit is shared by both api servers (Redis)', async () => {
    await cluster.admin('/admin/tiers/burst-five', limitedTier, 'PUT');
    const limited = await issueKeyOnTier(cluster, 'burst-five');
    const headers = { authorization: `Bearer ${limited.apiKey}` };
    // 10 requests at each api server at once: one bucket of 5 for both, not 5 each.
    const statuses = await Promise.all(
      Array.from({ length: 20 }, (_, index) =>
        status(`${cluster.apiUrls[index % 2]}/v1/jobs/no-such-job-${index}`, { headers }),
      ),
    );
    const admitted = statuses.filter((code) => code !== 429).length;
    t.diagnostic(
      `burst of 20 on a 5-token tier over 2 api servers: ${admitted} admitted (${statuses.join(',')})`,
    );
    assert.ok(
      admitted >= 5 && admitted <= 6,
      `admitted ${admitted}, expected about 5: ${statuses.join(',')}`,
    );
  });

  await t.test('an Idempotency-Key replays on the other api server (Redis)', async () => {
    const key = `engines-${randomUUID()}`;
    const send = (apiUrl: string) =>
      fetch(`${apiUrl}/v1/resize?width=48&format=webp`, {
        method: 'POST',
        body: image,
        headers: { ...auth, 'idempotency-key': key },
      });
    const first = await send(cluster.apiUrls[0]!);
    assert.equal(first.status, 200, await first.clone().text());
    const firstBody = Buffer.from(await first.arrayBuffer());
    const second = await send(cluster.apiUrls[1]!);
    assert.equal(second.status, 200, await second.clone().text());
    assert.equal(second.headers.get('idempotent-replayed'), 'true');
    assert.deepEqual(Buffer.from(await second.arrayBuffer()), firstBody);
    assert.equal(second.headers.get('x-pixelfleet-job-id'), first.headers.get('x-pixelfleet-job-id'));
  });

  await t.test('Redis paused under load: served on local shares, back to Redis after', async () => {
    let loading = true;
    const outcomes: number[] = [];
    const load = (async () => {
      let index = 0;
      while (loading) {
        const apiUrl = cluster.apiUrls[index++ % 2]!;
        outcomes.push(await status(`${apiUrl}/v1/jobs/no-such-job`, { headers: auth }).catch(() => 0));
        await sleep(20);
      }
    })();
    const limited = await issueKeyOnTier(cluster, 'burst-five');
    try {
      await sleep(500);
      const before = outcomes.length;
      await redis.kill('SIGSTOP');
      const pausedAt = performance.now();
      for (const apiUrl of cluster.apiUrls) {
        await waitFor(async () => (await gauge(apiUrl, 'pixelfleet_ratelimit_fallback_active')) === 1, {
          timeoutMs: 20_000,
          intervalMs: 200,
          message: `${apiUrl} decides locally while Redis is paused`,
        });
      }
      t.diagnostic(
        `both api servers on local shares ${Math.round(performance.now() - pausedAt)} ms after SIGSTOP`,
      );
      // Each of the 2 live api servers (the registry's count) enforces its share: ceil(5 / 2).
      const headers = { authorization: `Bearer ${limited.apiKey}` };
      const statuses = await Promise.all(
        Array.from({ length: 20 }, (_, index) =>
          status(`${cluster.apiUrls[index % 2]}/v1/jobs/no-such-job-${index}`, { headers }),
        ),
      );
      const admitted = statuses.filter((code) => code !== 429).length;
      t.diagnostic(
        `while paused, a burst of 20 on the 5-token tier: ${admitted} admitted (local shares of 3)`,
      );
      assert.equal(admitted, 6, statuses.join(','));
      await sleep(500);
      const during = outcomes.slice(before);
      const served = during.filter((code) => code === 404).length;
      t.diagnostic(`while paused: ${served}/${during.length} requests served`);
      assert.ok(during.length >= 5 && served === during.length, `served ${served} of ${during.length}`);

      await redis.kill('SIGCONT');
      const resumedAt = performance.now();
      for (const apiUrl of cluster.apiUrls) {
        await waitFor(async () => (await gauge(apiUrl, 'pixelfleet_ratelimit_fallback_active')) === 0, {
          timeoutMs: 30_000,
          intervalMs: 200,
          message: `${apiUrl} decides on Redis again`,
        });
      }
      t.diagnostic(
        `both api servers back on Redis ${Math.round(performance.now() - resumedAt)} ms after SIGCONT`,
      );
    } finally {
      loading = false;
      await load;
      await redis.kill('SIGCONT').catch(() => {});
    }
  });

  await t.test(
    'PostgreSQL down: cached keys verify, the admin API answers 503 at once, then recovers',
    async () => {
      await postgres.crash();
      for (let round = 0; round < 4; round++) {
        const code = await status(`${cluster.gatewayUrl}/v1/jobs/no-such-job`, { headers: auth });
        assert.equal(code, 404, `round ${round}: a cached key still verifies while PostgreSQL is down`);
      }
      const startedAt = performance.now();
      const refused = await fetch(`${cluster.adminUrl}/admin/accounts`, {
        method: 'POST',
        headers: { authorization: `Bearer ${cluster.adminToken}`, 'content-type': 'application/json' },
        body: JSON.stringify({ name: 'while down', tier: 'free' }),
        signal: AbortSignal.timeout(15_000),
      });
      const refusedMs = performance.now() - startedAt;
      assert.equal(refused.status, 503);
      assert.match(refused.headers.get('content-type') ?? '', /application\/problem\+json/);
      const problem = (await refused.json()) as { code: string };
      assert.equal(problem.code, 'PF_ERR_MANAGEMENT_UNAVAILABLE');
      t.diagnostic(`create-account answered 503 in ${Math.round(refusedMs)} ms`);
      assert.ok(refusedMs < 3_000, `answered in ${Math.round(refusedMs)} ms`);

      await postgres.restart();
      await waitFor(
        async () =>
          (
            await fetch(`${cluster.adminUrl}/admin/accounts`, {
              method: 'POST',
              headers: { authorization: `Bearer ${cluster.adminToken}`, 'content-type': 'application/json' },
              body: JSON.stringify({ name: 'after restart', tier: 'free' }),
            })
          ).status === 201,
        { timeoutMs: 30_000, intervalMs: 250, message: 'the admin API works once PostgreSQL is back' },
      );
    },
  );

  await t.test(
    'kill -9 of the NATS stream leader under async load: every accepted job succeeds once',
    async () => {
      const fresh = await cluster.issueKey();
      const headers = { authorization: `Bearer ${fresh.apiKey}` };
      const admin = await connect({ servers: nats.urls });
      const accepted: string[] = [];
      const refusals = new Map<number, number>();
      let submitting = true;
      const submitter = async () => {
        while (submitting) {
          try {
            const response = await fetch(`${cluster.gatewayUrl}/v1/jobs?width=32`, {
              method: 'POST',
              body: image,
              headers,
              signal: AbortSignal.timeout(40_000),
            });
            if (response.status === 202) accepted.push(((await response.json()) as { id: string }).id);
            else {
              await response.arrayBuffer();
              refusals.set(response.status, (refusals.get(response.status) ?? 0) + 1);
            }
          } catch {
            refusals.set(0, (refusals.get(0) ?? 0) + 1);
          }
          await sleep(50);
        }
      };
      try {
        const submitters = [submitter(), submitter()];
        await sleep(1_500);
        const manager = await jetstreamManager(admin);
        const leaderName = (await manager.streams.info('PIXELFLEET_JOBS')).cluster?.leader;
        const leader = nats.servers.find((server) => server.name === leaderName);
        assert.ok(leader, `stream leader ${leaderName} is one of the cluster's servers`);
        const beforeKill = accepted.length;
        await leader.kill('SIGKILL');
        const killedAt = performance.now();
        await waitFor(() => accepted.length > beforeKill + 3, {
          timeoutMs: 45_000,
          intervalMs: 100,
          message: 'async jobs are accepted again after the leader kill',
        });
        t.diagnostic(
          `killed ${leaderName}; jobs accepted again within ${Math.round(performance.now() - killedAt)} ms`,
        );
        await sleep(1_000);
        submitting = false;
        await Promise.all(submitters);
      } finally {
        submitting = false;
        await admin.close();
      }
      t.diagnostic(
        `accepted ${accepted.length} jobs; refused ${JSON.stringify(Object.fromEntries(refusals))}`,
      );
      assert.ok(accepted.length >= 10, `accepted ${accepted.length}`);
      assert.equal(new Set(accepted).size, accepted.length);
      for (const id of accepted) {
        await waitFor(
          async () => {
            const job = await fetch(`${cluster.gatewayUrl}/v1/jobs/${id}`, { headers });
            const { state } = (await job.json()) as { state: string };
            assert.notEqual(state, 'dead', `job ${id} was dead-lettered`);
            return state === 'succeeded';
          },
          { timeoutMs: 60_000, intervalMs: 200, message: `job ${id} succeeds` },
        );
      }
      // Metered once each: the usage every api server recorded for this account adds up exactly.
      const { usage } = (await cluster.admin(
        `/admin/accounts/${fresh.accountId}/usage?granularity=month`,
      )) as {
        usage: { totals: { conversions: number }; unreachable: string[] };
      };
      assert.deepEqual(usage.unreachable, []);
      assert.equal(usage.totals.conversions, accepted.length);
    },
  );

  const stopped = await cluster.stop();
  assert.equal(stopped.code, 0);
  t.diagnostic(`whole file ${Math.round(performance.now() - begun)} ms`);
});
