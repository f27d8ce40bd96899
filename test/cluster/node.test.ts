import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { test } from 'node:test';
import sharp from 'sharp';
import { serviceNodeFlags } from '../../src/cli/node-flags.ts';
import { corpusJpegs, issueTestKey, repoRoot, testAdminToken } from '../service/harness.ts';
import { freePorts, tempDir, waitFor } from '../support/index.ts';

test('node - every role in one process: resize through its own gateway, then SIGTERM', {
  timeout: 90_000,
}, async (t) => {
  const dir = await tempDir();
  t.after(() => dir.remove());
  const [raft, client] = await freePorts(2);
  const child = spawn(
    process.execPath,
    [
      ...serviceNodeFlags,
      join(repoRoot, 'src/cli/main.ts'),
      'node',
      '--roles',
      'api,queue,worker,identity,gateway',
      '--node-id',
      'n1',
      '--queue-peers',
      `n1=127.0.0.1:${raft}`,
      '--queue-client-port',
      String(client),
      '--queue-nodes',
      `127.0.0.1:${client}`,
      '--http-port',
      '0',
      '--admin-port',
      '0',
      '--gateway-port',
      '0',
      '--workers',
      '1',
      '--data-dir',
      dir.path,
    ],
    {
      env: {
        PATH: process.env.PATH,
        PIXELFLEET_CLUSTER_SECRET: 'node-test-cluster-secret-0123456789',
        PIXELFLEET_ADMIN_TOKEN: testAdminToken,
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  let stderr = '';
  child.stderr!.on('data', (chunk) => {
    stderr += chunk;
  });
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  t.after(() => {
    if (child.exitCode === null) child.kill('SIGKILL');
  });
  const urls = await new Promise<Record<string, string>>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`node did not start; stderr: ${stderr}`)), 60_000);
    createInterface({ input: child.stdout! }).on('line', (line) => {
      if (!line.includes('pixelfleet node started')) return;
      clearTimeout(timer);
      resolve((JSON.parse(line) as { urls: Record<string, string> }).urls);
    });
    exited.then((code) => reject(new Error(`node exited with ${code}; stderr: ${stderr}`)));
  });
  assert.ok(
    urls.gateway && urls.api && urls.admin && urls.internal && urls.queueClient,
    JSON.stringify(urls),
  );

  const { apiKey } = await issueTestKey(urls.admin!);
  const image = readFileSync(corpusJpegs()[0]!);
  let response: Response | undefined;
  await waitFor(
    async () => {
      response = await fetch(`${urls.gateway}/v1/resize?width=90`, {
        method: 'POST',
        body: image,
        headers: { authorization: `Bearer ${apiKey}` },
      });
      if (response.status !== 200) await response.arrayBuffer();
      return response.status === 200;
    },
    { timeoutMs: 30_000, intervalMs: 200, message: 'a resize through the gateway' },
  );
  assert.equal((await sharp(Buffer.from(await response!.arrayBuffer())).metadata()).width, 90);

  const readiness = await fetch(`${urls.internal}/readyz`);
  assert.equal(readiness.status, 200, await readiness.clone().text());

  child.kill('SIGTERM');
  assert.equal(await exited, 0);
});
