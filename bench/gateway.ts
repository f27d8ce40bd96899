/**
 * The gateway's added latency and throughput cost: a tiny upstream (1 KiB JSON answer) called
 * directly and through the gateway (L7 http mode and L4 tcp mode), in the same run. The
 * upstream and the gateway each run in their own child process so the load generator does not
 * share their event loop.
 *
 *   node bench/gateway.ts [--duration 5] [--connections 32] [--sequential 3000]
 *
 * Figures: sequential latency on one keep-alive connection (p50/p99 in µs; the difference to
 * direct is the gateway's added latency per request), and closed-loop saturation with
 * autocannon (requests per second, p50/p99 in ms).
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { parseArgs } from 'node:util';
import { pino } from 'pino';
import { Pool } from 'undici';
import { startGateway } from '../src/gateway/index.ts';
import { percentile } from '../test/support/stats.ts';
import { closedLoop } from './closed-loop.ts';

const role = process.argv[2];

if (role === 'upstream') {
  const body = Buffer.from(JSON.stringify({ ok: true, padding: 'x'.repeat(1000) }));
  const server = createServer((request, response) => {
    request.resume();
    request.once('end', () => {
      if (request.url === '/readyz') {
        response.writeHead(200).end('{}');
        return;
      }
      response.writeHead(200, { 'content-type': 'application/json', 'content-length': body.length });
      response.end(body);
    });
  });
  server.keepAliveTimeout = 65_000;
  server.listen(0, '127.0.0.1', () => {
    process.stdout.write(
      `${JSON.stringify({ url: `http://127.0.0.1:${(server.address() as AddressInfo).port}` })}\n`,
    );
  });
} else if (role === 'gateway') {
  const gateway = await startGateway({
    host: '127.0.0.1',
    port: 0,
    controlHost: '127.0.0.1',
    controlPort: 0,
    mode: process.argv[4] as 'http' | 'tcp',
    strategy: 'least-time',
    clusterSecret: 'bench',
    logger: pino({ level: process.env.BENCH_GATEWAY_LOG ?? 'silent' }),
    upstreams: [{ id: 'bench-upstream', url: process.argv[3]! }],
  });
  process.stdout.write(`${JSON.stringify({ url: gateway.url.replace(/^tcp:/, 'http:') })}\n`);
  process.once('SIGTERM', () => void gateway.close().then(() => process.exit(0)));
} else {
  await main();
}

function startChild(args: string[]): Promise<{ child: ChildProcess; url: string }> {
  const child = spawn(process.execPath, [new URL(import.meta.url).pathname, ...args], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  return new Promise((resolve, reject) => {
    let buffer = '';
    child.stdout!.on('data', (chunk: Buffer) => {
      buffer += chunk.toString();
      const line = buffer.split('\n')[0];
      if (buffer.includes('\n') && line) resolve({ child, url: (JSON.parse(line) as { url: string }).url });
    });
    child.once('exit', (code) => reject(new Error(`${args[0]} exited with ${code}`)));
  });
}

async function sequentialLatency(url: string, count: number): Promise<{ p50: number; p99: number }> {
  const pool = new Pool(url, { connections: 1 });
  const samples: number[] = [];
  for (let i = 0; i < count + 200; i += 1) {
    const started = performance.now();
    const response = await pool.request({ method: 'GET', path: '/v1/thing' });
    await response.body.arrayBuffer();
    // The first 200 warm up the JIT and the pools.
    if (i >= 200) samples.push((performance.now() - started) * 1000);
  }
  await pool.close();
  samples.sort((a, b) => a - b);
  return { p50: Math.round(percentile(samples, 0.5)), p99: Math.round(percentile(samples, 0.99)) };
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      duration: { type: 'string', default: '5' },
      connections: { type: 'string', default: '32' },
      sequential: { type: 'string', default: '3000' },
    },
  });
  const durationS = Number(values.duration);
  const connections = Number(values.connections);
  const sequential = Number(values.sequential);
  const upstream = await startChild(['upstream']);
  const l7 = await startChild(['gateway', upstream.url, 'http']);
  const l4 = await startChild(['gateway', upstream.url, 'tcp']);
  const targets = [
    { name: 'direct', url: upstream.url },
    { name: 'gateway L7 (http)', url: l7.url },
    { name: 'gateway L4 (tcp)', url: l4.url },
  ];
  try {
    const rows: Array<Record<string, string | number>> = [];
    for (const target of targets) {
      const latency = await sequentialLatency(target.url, sequential);
      const load = await closedLoop({
        url: target.url,
        connections,
        durationS,
        request: () => ({ method: 'GET', path: '/v1/thing' }),
      });
      rows.push({
        target: target.name,
        'sequential p50 µs': latency.p50,
        'sequential p99 µs': latency.p99,
        [`${connections} conns req/s`]: Math.round(load.perSecond),
        'loaded p50 ms': load.p50,
        'loaded p99 ms': load.p99,
        'error rate': load.errorRate,
      });
    }
    console.table(rows);
    const direct = rows[0]!;
    for (const row of rows.slice(1)) {
      console.log(
        `${row.target}: +${Number(row['sequential p50 µs']) - Number(direct['sequential p50 µs'])} µs p50, ` +
          `+${Number(row['sequential p99 µs']) - Number(direct['sequential p99 µs'])} µs p99 per request; ` +
          `${Math.round((100 * Number(row[`${connections} conns req/s`])) / Number(direct[`${connections} conns req/s`]))} % of direct throughput`,
      );
    }
  } finally {
    for (const child of [l4.child, l7.child, upstream.child]) child.kill('SIGTERM');
  }
}
