import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { anyBusy, childPids, corpusJpegs } from '../service/harness.ts';
import { startLocalCluster } from './harness.ts';

test('cluster - a worker killed mid-job and restarted hands its job back at once, not after its lease', {
  timeout: 120_000,
}, async (t) => {
  // One worker whose claims last 45 s unrenewed: longer than the 30 s a sync request waits. Only
  // the restarted worker releasing its old lease can answer in time.
  const cluster = await startLocalCluster(t, {
    apiServers: 1,
    workers: 1,
    workerArgs: ['--job-timeout', '20s', '--lease', '45s'],
  });
  const { apiKey } = await cluster.issueKey();
  const auth = { authorization: `Bearer ${apiKey}` };
  const largest = corpusJpegs().sort((a, b) => readFileSync(b).byteLength - readFileSync(a).byteLength)[0]!;
  const image = readFileSync(largest);

  // The gateway learns the api server from its heartbeats; a quick resize shows the path works.
  for (const deadline = Date.now() + 30_000; ; ) {
    const response = await fetch(`${cluster.gatewayUrl}/v1/resize?width=64`, {
      method: 'POST',
      body: image,
      headers: auth,
    });
    await response.arrayBuffer();
    if (response.status === 200) break;
    assert.ok(Date.now() < deadline, `the cluster never served a resize (last status ${response.status})`);
    await sleep(200);
  }

  // A slow conversion (AVIF at 2000 px: seconds on one core), so the kill lands mid-job.
  const sentAt = Date.now();
  const answer = fetch(`${cluster.gatewayUrl}/v1/resize?width=2000&format=avif&quality=70`, {
    method: 'POST',
    body: image,
    headers: auth,
  }).then(async (response) => ({ response, body: Buffer.from(await response.arrayBuffer()) }));

  const worker = cluster.pids().worker[0]!;
  let busy = false;
  for (const deadline = Date.now() + 10_000; !busy && Date.now() < deadline; ) {
    busy = await anyBusy(childPids(worker));
  }
  assert.ok(busy, 'the converter started on the job');
  const killedAt = Date.now();
  cluster.kill('worker', 1, 'SIGKILL');
  await cluster.restarted('worker', 1, worker, 30_000);

  const { response, body } = await answer;
  const answeredAt = Date.now();
  assert.equal(response.status, 200, body.toString());
  assert.equal(response.headers.get('content-type'), 'image/avif');
  assert.equal(response.headers.get('x-pixelfleet-attempts'), '2', 'the second delivery answered');
  t.diagnostic(
    `killed ${killedAt - sentAt} ms after sending; answered ${answeredAt - killedAt} ms after the kill (lease: 45 s)`,
  );
  assert.ok(answeredAt - killedAt < 15_000, 'answered long before the lease would have run out');

  const log = readFileSync(join(cluster.dataDir, 'cluster', 'worker-1', 'node.log'), 'utf8');
  assert.match(log, /handed back/, 'the restarted worker says it released the old lease');
});
