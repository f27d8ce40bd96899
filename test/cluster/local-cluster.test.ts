import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import sharp from 'sharp';
import { corpusJpegs } from '../service/harness.ts';
import { waitFor } from '../support/index.ts';
import { alive, startLocalCluster } from './harness.ts';

test('cluster - end to end through the gateway: sync, async via another api server, revocation, Ctrl-C', {
  timeout: 120_000,
}, async (t) => {
  const started = performance.now();
  const cluster = await startLocalCluster(t, { apiServers: 2, workers: 2, strategy: 'round-robin' });
  t.diagnostic(`cluster ready in ${Math.round(performance.now() - started)} ms`);
  const pids = cluster.pids();
  assert.equal(pids.api.length, 2);
  assert.equal(pids.queue.length, 3);
  assert.equal(pids.worker.length, 2);
  assert.equal(pids.gateway.length, 1);
  assert.equal(pids.identity.length, 1);

  const { apiKey, keyId, accountId } = await cluster.issueKey();
  const auth = { authorization: `Bearer ${apiKey}` };
  const image = readFileSync(corpusJpegs()[0]!);

  // The gateway learns the api servers from their heartbeats.
  await waitFor(
    async () => {
      const response = await fetch(`${cluster.gatewayUrl}/v1/resize?width=120`, {
        method: 'POST',
        body: image,
        headers: auth,
      });
      await response.arrayBuffer();
      return response.status === 200;
    },
    { timeoutMs: 30_000, intervalMs: 200, message: 'the gateway serves a resize' },
  );

  const sync = await fetch(`${cluster.gatewayUrl}/v1/resize?width=160&format=png`, {
    method: 'POST',
    body: image,
    headers: auth,
  });
  assert.equal(sync.status, 200, await sync.clone().text());
  const metadata = await sharp(Buffer.from(await sync.arrayBuffer())).metadata();
  assert.equal(metadata.width, 160);
  assert.equal(metadata.format, 'png');

  const accepted = await fetch(`${cluster.gatewayUrl}/v1/jobs?width=64`, {
    method: 'POST',
    body: image,
    headers: auth,
  });
  assert.equal(accepted.status, 202);
  const { id } = (await accepted.json()) as { id: string };
  await waitFor(
    async () => {
      const status = await fetch(`${cluster.gatewayUrl}/v1/jobs/${id}`, { headers: auth });
      return ((await status.json()) as { state: string }).state === 'succeeded';
    },
    { timeoutMs: 30_000, intervalMs: 100, message: 'the async job succeeds' },
  );
  // Round robin over two api servers: at least one of these lands on the server that did not
  // take the job and fetches the result from its origin.
  for (let round = 0; round < 4; round++) {
    const result = await fetch(`${cluster.gatewayUrl}/v1/jobs/${id}/result`, { headers: auth });
    assert.equal(result.status, 200, `round ${round}: ${await result.clone().text()}`);
    const output = await sharp(Buffer.from(await result.arrayBuffer())).metadata();
    assert.equal(output.width, 64);
  }

  // Usage: the identity role adds up what each api server metered.
  const { usage } = (await cluster.admin(`/admin/accounts/${accountId}/usage?granularity=month`)) as {
    usage: { totals: { conversions: number }; servers: number; unreachable: string[] };
  };
  assert.ok(usage.totals.conversions >= 3, JSON.stringify(usage));
  assert.equal(usage.servers, 2);
  assert.deepEqual(usage.unreachable, []);

  await cluster.admin(`/admin/keys/${keyId}/revoke`, { reason: 'test' });
  const revokedAt = performance.now();
  await waitFor(
    async () => {
      const statuses = await Promise.all(
        [0, 1, 2, 3].map(async () => {
          const response = await fetch(`${cluster.gatewayUrl}/v1/jobs/${id}`, { headers: auth });
          await response.arrayBuffer();
          return response.status;
        }),
      );
      return statuses.every((status) => status === 401);
    },
    { timeoutMs: 5000, intervalMs: 10, message: 'every api server refuses the revoked key' },
  );
  t.diagnostic(
    `revocation effective on every api server after ${Math.round(performance.now() - revokedAt)} ms`,
  );

  const everyPid = Object.values(cluster.pids()).flat();
  const exit = await cluster.stop('SIGINT');
  assert.equal(exit.code, 0);
  // Ctrl-C reached the whole process group, yet each member heard only the supervisor: stopped
  // once, in order (gateway first, queue last), exit code 0.
  const stopped = cluster.logs.filter((entry) => entry.msg === 'process stopped');
  assert.equal(stopped.length, everyPid.length);
  assert.deepEqual(
    stopped.filter((entry) => entry.code !== 0).map((entry) => entry.process),
    [],
  );
  assert.equal(String(stopped[0]?.process), 'gateway-1');
  assert.match(String(stopped.at(-1)?.process), /^queue-/);
  await waitFor(() => everyPid.every((pid) => !alive(pid)), {
    timeoutMs: 5000,
    message: 'every member process is gone',
  });
});
