/**
 * The raw limit of the cluster's topology on this machine (`npm run bench:topology`): the same
 * processes and hops as the local cluster — a gateway in front of 3 api servers, a queue leader
 * with 2 heartbeating followers, 2 worker mains that claim a job, fetch its input from the api
 * server over HTTP, convert in a child, post the result and ack — built from bare node:http,
 * undici and net with none of Pixelfleet's logic (no auth, policies, metrics, Raft or
 * metering), against a bare embedded server (one process and 2 converter children), both
 * converting with the same plain sharp call, in one run.
 *
 * Its ratio is the ceiling of `npm run bench:cluster`'s "cluster / embedded" on the machine:
 * what the extra processes, sockets and wake-ups cost before any feature is added.
 *
 *   node bench/topology-floor.ts [--warmup S] [--duration S]
 */
import { type ChildProcess, fork } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createServer, type IncomingMessage } from 'node:http';
import { connect, createServer as createTcpServer, type Socket } from 'node:net';
import { parseArgs } from 'node:util';
import { Pool } from 'undici';
import { serviceNodeFlags } from '../src/cli/node-flags.ts';
import { corpusJpegs } from '../test/service/harness.ts';

// biome-ignore lint/suspicious/noExplicitAny: frames are ad-hoc JSON between bare processes.
type Frame = any;

const self = new URL(import.meta.url).pathname;
// Children are started as `topology-floor.ts <role> [args]`; options start with a dash.
const role = process.argv[2] === undefined || process.argv[2].startsWith('-') ? 'main' : process.argv[2];
const flags = [...serviceNodeFlags];

function spawnRole(name: string, args: string[] = []): Promise<{ child: ChildProcess; port: number }> {
  const child = fork(self, [name, ...args], {
    execArgv: flags,
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  return new Promise((resolve) => child.once('message', (port) => resolve({ child, port: port as number })));
}

function body(request: IncomingMessage): Promise<Buffer> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    request.on('data', (c: Buffer) => chunks.push(c));
    request.on('end', () => resolve(Buffer.concat(chunks)));
  });
}

/** Frames: u32 length + JSON. */
function framed(socket: Socket, onFrame: (frame: Frame) => void): (frame: unknown) => void {
  let buffered: Buffer = Buffer.alloc(0);
  socket.on('data', (chunk: Buffer) => {
    buffered = buffered.length === 0 ? chunk : Buffer.concat([buffered, chunk]);
    while (buffered.length >= 4) {
      const length = buffered.readUInt32BE(0);
      if (buffered.length < 4 + length) break;
      onFrame(JSON.parse(buffered.subarray(4, 4 + length).toString()));
      buffered = buffered.subarray(4 + length);
    }
  });
  return (frame) => {
    const json = Buffer.from(JSON.stringify(frame));
    const header = Buffer.alloc(4);
    header.writeUInt32BE(json.length);
    socket.write(Buffer.concat([header, json]));
  };
}

/** A pool of converter children, FIFO, one job at a time each. */
async function converterPool(size: number) {
  const idle: ChildProcess[] = [];
  const waiting: Array<{ input: Uint8Array; resolve: (out: Buffer) => void }> = [];
  const pending = new Map<ChildProcess, (out: Buffer) => void>();
  const children = await Promise.all(Array.from({ length: size }, () => spawnConverter()));
  const next = (child: ChildProcess) => {
    const job = waiting.shift();
    if (job === undefined) return void idle.push(child);
    pending.set(child, job.resolve);
    child.send({ input: job.input });
  };
  for (const child of children) {
    child.on('message', (message: { output: Uint8Array }) => {
      const resolve = pending.get(child)!;
      pending.delete(child);
      resolve(Buffer.from(message.output.buffer, message.output.byteOffset, message.output.byteLength));
      next(child);
    });
    idle.push(child);
  }
  return {
    pids: () => children.map((c) => c.pid!),
    convert: (input: Uint8Array) =>
      new Promise<Buffer>((resolve) => {
        waiting.push({ input, resolve });
        const child = idle.shift();
        if (child) next(child);
      }),
  };
}

function spawnConverter(): Promise<ChildProcess> {
  const child = fork(self, ['converter'], { execArgv: flags, serialization: 'advanced' });
  return new Promise((resolve) => child.once('message', () => resolve(child)));
}

async function listen(
  server: ReturnType<typeof createServer> | ReturnType<typeof createTcpServer>,
): Promise<number> {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return (server.address() as { port: number }).port;
}

const roles: Record<string, () => Promise<void>> = {
  async converter() {
    const { default: sharp } = await import('sharp');
    sharp.concurrency(1);
    sharp.cache(false);
    process.on('message', async (message: { input: Uint8Array }) => {
      const output = await sharp(message.input).resize({ width: 320 }).jpeg({ quality: 80 }).toBuffer();
      process.send!({ output: new Uint8Array(output.buffer, output.byteOffset, output.length) });
    });
    process.on('disconnect', () => process.exit(0));
    process.send!('ready');
  },

  // Bare embedded: HTTP in, convert in a child, HTTP out.
  async embedded() {
    const pool = await converterPool(2);
    const server = createServer(async (request, response) => {
      const output = await pool.convert(await body(request));
      response.writeHead(200, { 'content-type': 'image/jpeg', 'content-length': output.length });
      response.end(output);
    });
    process.send!(await listen(server));
    process.on('message', (m) => m === 'pids' && process.send!({ pids: pool.pids() }));
  },

  // Gateway: buffer the body, round robin over the api servers, relay the answer.
  async gateway() {
    const ports = process.argv[3]!.split(',').map(Number);
    const pools = ports.map((port) => new Pool(`http://127.0.0.1:${port}`, { connections: 64 }));
    let next = 0;
    const server = createServer(async (request, response) => {
      const input = await body(request);
      const pool = pools[next++ % pools.length]!;
      const answer = await pool.request({
        method: 'POST',
        path: request.url!,
        body: input,
        headers: { 'content-type': 'image/jpeg', 'x-request-id': String(Math.random()) },
      });
      response.writeHead(answer.statusCode, {
        'content-type': String(answer.headers['content-type']),
        'content-length': String(answer.headers['content-length']),
      });
      answer.body.on('data', (c: Buffer) => response.write(c));
      answer.body.on('end', () => response.end());
    });
    process.send!(await listen(server));
  },

  // Queue follower: answers heartbeats.
  async follower() {
    const server = createTcpServer((socket) => {
      const send = framed(socket, (frame) => send({ ok: frame.hb }));
    });
    process.send!(await listen(server));
  },

  // Queue leader: a FIFO; enqueue, claim (long poll), ack; heartbeats to the followers every 30 ms.
  async leader() {
    const followers = process.argv[3]!.split(',').map(Number);
    const links = followers.map((port) => {
      const socket = connect(port, '127.0.0.1');
      socket.setNoDelay(true);
      return framed(socket, () => {});
    });
    let beat = 0;
    setInterval(() => {
      beat++;
      for (const send of links) send({ hb: beat });
    }, 30);
    setInterval(() => {}, 10); // the Raft tick
    const jobs: unknown[] = [];
    const claims: Array<(job: unknown) => void> = [];
    const server = createTcpServer((socket) => {
      socket.setNoDelay(true);
      const send = framed(socket, (frame) => {
        if (frame.o === 'enqueue') {
          const claim = claims.shift();
          if (claim) claim(frame.a);
          else jobs.push(frame.a);
          send({ i: frame.i, r: true });
        } else if (frame.o === 'claim') {
          const job = jobs.shift();
          if (job !== undefined) send({ i: frame.i, r: job });
          else claims.push((claimed) => send({ i: frame.i, r: claimed }));
        } else if (frame.o === 'ack') {
          send({ i: frame.i, r: true });
        }
      });
    });
    process.send!(await listen(server));
  },

  // Api server: holds the input, enqueues, waits for the worker's result, answers.
  async api() {
    const leader = Number(process.argv[3]);
    const socket = connect(leader, '127.0.0.1');
    socket.setNoDelay(true);
    let requestId = 0;
    const calls = new Map<number, () => void>();
    const send = framed(socket, (frame) => calls.get(frame.i)?.());
    const inputs = new Map<string, Buffer>();
    const waiters = new Map<string, (output: Buffer) => void>();
    const internal = createServer(async (request, response) => {
      const id = request.url!.split('/')[2]!;
      if (request.method === 'GET') {
        const input = inputs.get(id)!;
        response.writeHead(200, {
          'content-type': 'application/octet-stream',
          'content-length': input.length,
        });
        response.end(input);
      } else {
        const output = await body(request);
        waiters.get(id)?.(output);
        response.writeHead(200, { 'content-type': 'application/json' });
        response.end('{"delivered":true}');
      }
    });
    const internalPort = await listen(internal);
    let jobCounter = 0;
    const server = createServer(async (request, response) => {
      const input = await body(request);
      const id = `${process.pid}-${jobCounter++}`;
      inputs.set(id, input);
      const output = await new Promise<Buffer>((resolve) => {
        waiters.set(id, resolve);
        const i = requestId++;
        calls.set(i, () => calls.delete(i));
        send({ i, o: 'enqueue', a: { id, origin: internalPort, options: { width: 320, format: 'jpeg' } } });
      });
      inputs.delete(id);
      waiters.delete(id);
      response.writeHead(200, { 'content-type': 'image/jpeg', 'content-length': output.length });
      response.end(output);
    });
    process.send!(await listen(server));
  },

  // Worker main: claim, fetch the input from its api server, convert in a child, post, ack.
  async worker() {
    const leader = Number(process.argv[3]);
    const pool = await converterPool(1);
    const socket = connect(leader, '127.0.0.1');
    socket.setNoDelay(true);
    let requestId = 0;
    const calls = new Map<number, (r: Frame) => void>();
    const send = framed(socket, (frame) => {
      const call = calls.get(frame.i);
      calls.delete(frame.i);
      call?.(frame.r);
    });
    const call = (o: string, a: unknown) =>
      new Promise<Frame>((resolve) => {
        const i = requestId++;
        calls.set(i, resolve);
        send({ i, o, a });
      });
    const apis = new Map<number, Pool>();
    const api = (port: number) => {
      let pool = apis.get(port);
      if (pool === undefined) {
        pool = new Pool(`http://127.0.0.1:${port}`, { connections: 8 });
        apis.set(port, pool);
      }
      return pool;
    };
    // Two claim loops: one converting, one prefetched (as the pool's prefetch 1).
    const loop = async () => {
      for (;;) {
        const job = (await call('claim', {})) as { id: string; origin: number };
        const got = await api(job.origin).request({ method: 'GET', path: `/jobs/${job.id}/input` });
        const input = Buffer.from(await got.body.arrayBuffer());
        const output = await pool.convert(input);
        const posted = await api(job.origin).request({
          method: 'POST',
          path: `/jobs/${job.id}/result`,
          body: output,
          headers: { 'content-type': 'application/octet-stream' },
        });
        await posted.body.arrayBuffer();
        await call('ack', { id: job.id });
      }
    };
    void loop();
    void loop();
    process.send!(0);
    process.on('message', (m) => m === 'pids' && process.send!({ pids: pool.pids() }));
  },

  async main() {
    const { closedLoop } = await import('./closed-loop.ts');
    const { serverCpu, withCpuSplit } = await import('./cpu-split.ts');
    const { values } = parseArgs({
      args: process.argv.slice(2),
      options: { warmup: { type: 'string', default: '20' }, duration: { type: 'string', default: '15' } },
    });
    const warmS = Number(values.warmup);
    const durationS = Number(values.duration);
    const bodies = corpusJpegs().map((path) => readFileSync(path));
    const request = (index: number) => ({
      method: 'POST' as const,
      path: '/resize',
      body: bodies[index % bodies.length]!,
    });
    const pidsOf = (child: ChildProcess) =>
      new Promise<number[]>((resolve) => {
        child.on('message', (message: Frame) => message?.pids && resolve(message.pids));
        child.send('pids');
      });
    const saturate = async (url: string, parts: Record<string, number[]>) => {
      await closedLoop({ url, connections: 8, durationS: warmS, request });
      return withCpuSplit(parts, () => closedLoop({ url, connections: 8, durationS, request }));
    };
    console.log(
      `${bodies.length} corpus JPEGs; ${warmS} s of warm-up, then ${durationS} s measured, 8 connections`,
    );

    const embedded = await spawnRole('embedded');
    const bare = await saturate(`http://127.0.0.1:${embedded.port}`, {
      'main process': [embedded.child.pid!],
      converters: await pidsOf(embedded.child),
    });
    embedded.child.kill('SIGKILL');

    const followers = await Promise.all([spawnRole('follower'), spawnRole('follower')]);
    const leader = await spawnRole('leader', [followers.map((f) => f.port).join(',')]);
    const apis = await Promise.all([0, 1, 2].map(() => spawnRole('api', [String(leader.port)])));
    const workers = await Promise.all([0, 1].map(() => spawnRole('worker', [String(leader.port)])));
    const gateway = await spawnRole('gateway', [apis.map((a) => a.port).join(',')]);
    const members = [...followers, leader, ...apis, ...workers, gateway].map((m) => m.child);
    const cluster = await saturate(`http://127.0.0.1:${gateway.port}`, {
      gateway: [gateway.child.pid!],
      'api servers': apis.map((a) => a.child.pid!),
      'queue leader and followers': [leader, ...followers].map((m) => m.child.pid!),
      'worker mains': workers.map((w) => w.child.pid!),
      converters: (await Promise.all(workers.map((w) => pidsOf(w.child)))).flat(),
    });
    for (const member of members) member.kill('SIGKILL');

    const split = (cpu: Record<string, number>) =>
      `${Object.entries(cpu)
        .map(([part, ms]) => `${part} ${ms.toFixed(2)}`)
        .join(', ')} (server ${serverCpu(cpu).toFixed(2)})`;
    console.log(`bare embedded: ${bare.perSecond.toFixed(1)} conversions/s, errors ${bare.errorRate}`);
    console.log(`- CPU ms per conversion: ${split(bare.cpu)}`);
    console.log(`bare cluster: ${cluster.perSecond.toFixed(1)} conversions/s, errors ${cluster.errorRate}`);
    console.log(`- CPU ms per conversion: ${split(cluster.cpu)}`);
    console.log(
      `bare cluster / bare embedded: ${((cluster.perSecond / bare.perSecond) * 100).toFixed(1)} % ` +
        '(the ceiling of bench:cluster on this machine)',
    );
    process.exit(0);
  },
};

await roles[role]!();
