/**
 * The client port of a queue node: serves the framed protocol of `client-protocol.ts` (queue
 * operations against this node's `RaftQueue`) and plain HTTP `GET /status` / `GET /health` on
 * the same port.
 *
 * Redirects: a follower answers writes with PF_ERR_NOT_LEADER naming the leader and its client
 * address. While no leader is known (an election is running), or the client says the leader we
 * believe in is unreachable, the request is held for up to `holdMs` until a leader emerges and
 * then executed here (if this node won) or redirected — so clients switch to a new leader as soon
 * as it exists rather than after a blind backoff.
 */
import { createServer, type Server, type Socket } from 'node:net';
import { isPixelfleetError, PixelfleetError } from '../../errors/index.ts';
import type { QueueLogger } from '../embedded/index.ts';
import type { EnqueueRequest, EnqueueResult, JobQueue } from '../types.ts';
import {
  encodeFrame,
  FrameSplitter,
  type Operation,
  PROTOCOL_MAGIC,
  type RequestFrame,
  toWireError,
  verifyAdminProof,
} from './client-protocol.ts';
import type { RaftHost } from './node.ts';

/** What a queue with a volatile lane (`RaftQueue`) adds for its clients. */
export interface VolatileLaneHost {
  enqueueWithLane(request: EnqueueRequest): Promise<EnqueueResult & { lane?: string }>;
  watchLane(lane: string, waitMs: number, signal?: AbortSignal): Promise<string>;
}

export interface QueueServerOptions {
  queue: JobQueue & Partial<VolatileLaneHost>;
  host: RaftHost;
  listen: { host: string; port: number };
  /** How long a request may wait for a leader to be elected. Default 2000 ms. */
  holdMs?: number;
  /** Extra members for GET /status (queue stats, process info...). */
  describe?: () => Record<string, unknown>;
  /** The cluster secret: admin operations must prove they know it. Without it they are refused. */
  adminSecret?: string | Uint8Array;
  logger?: QueueLogger;
}

export interface QueueServer {
  readonly port: number;
  close(): Promise<void>;
}

const MAX_HTTP_HEADER_BYTES = 16 * 1024;

export async function startQueueServer(options: QueueServerOptions): Promise<QueueServer> {
  const holdMs = options.holdMs ?? 2000;
  const sockets = new Set<Socket>();
  const leaderWatchers = new Set<() => void>();
  const unsubscribe = options.host.subscribe({
    roleChanged: () => {
      for (const wake of [...leaderWatchers]) wake();
    },
  });
  let closing = false;

  /** Resolves once a leader other than the unreachable one is known, or after `holdMs`. */
  function awaitLeader(unreachable: string | undefined): Promise<void> {
    return new Promise((resolve) => {
      const check = () => {
        const leader = options.host.role.leader;
        if (closing || (leader !== null && options.host.clientAddressOf(leader) !== unreachable)) finish();
      };
      const finish = () => {
        clearTimeout(timer);
        leaderWatchers.delete(check);
        resolve();
      };
      const timer = setTimeout(finish, holdMs);
      leaderWatchers.add(check);
      check();
    });
  }

  function shouldHold(error: unknown, unreachable: string | undefined): boolean {
    if (!isPixelfleetError(error, 'PF_ERR_NOT_LEADER')) return false;
    const leader = options.host.role.leader;
    return leader === null || options.host.clientAddressOf(leader) === unreachable;
  }

  async function execute(request: RequestFrame, signal: AbortSignal): Promise<unknown> {
    const args = request.a ?? {};
    const queue = options.queue;
    switch (request.o) {
      case 'enqueue':
        // Names the volatile lane of a non-durable job, so the client can tell when it is lost.
        return queue.enqueueWithLane ? queue.enqueueWithLane(args as never) : queue.enqueue(args as never);
      case 'watchLane':
        if (!queue.watchLane) {
          throw new PixelfleetError('PF_ERR_BAD_REQUEST', 'this queue node has no volatile lane');
        }
        return {
          lane: await queue.watchLane(String(args.lane ?? ''), Number(args.waitMs ?? 0), signal),
        };
      case 'claim':
        return (
          (await queue.claim({
            consumer: args.consumer as string,
            leaseMs: args.leaseMs as number,
            ...(args.waitMs === undefined ? {} : { waitMs: args.waitMs as number }),
            signal,
          })) ?? null
        );
      case 'ack':
        await queue.ack(args.id as string, args.leaseId as string, args.outcome as never);
        return null;
      case 'nack':
        await queue.nack(args.id as string, args.leaseId as string, args.options as never);
        return null;
      case 'extend':
        return queue.extend(args.id as string, args.leaseId as string, args.leaseMs as number);
      case 'releaseConsumer':
        return { released: await queue.releaseConsumer(args.consumer as string) };
      case 'get':
        return (await queue.get(args.id as string)) ?? null;
      case 'deadLetters':
        return queue.deadLetters(args.limit as number | undefined);
      case 'stats':
        return queue.stats();
      case 'status':
        return status();
      case 'addMember':
      case 'removeMember':
      case 'transferLeadership':
        return administer(request.o, args);
      default:
        throw new PixelfleetError('PF_ERR_BAD_REQUEST', `unknown operation ${JSON.stringify(request.o)}`);
    }
  }

  async function administer(operation: Operation, args: Record<string, unknown>): Promise<unknown> {
    if (
      options.adminSecret === undefined ||
      !verifyAdminProof(options.adminSecret, operation, args, Date.now())
    ) {
      throw new PixelfleetError(
        'PF_ERR_ADMIN_UNAUTHORIZED',
        `${operation} needs a valid proof of the cluster secret`,
      );
    }
    const host = options.host;
    if (operation === 'transferLeadership') {
      if (!host.isLeader) throw host.notLeaderError();
      return { leader: await host.transferLeadership(typeof args.to === 'string' ? args.to : undefined) };
    }
    if (typeof args.id !== 'string' || args.id === '') throw new RangeError('a member id is required');
    if (operation === 'removeMember') await host.removeMember(args.id);
    else await host.addMember(args.id, { host: String(args.host), port: Number(args.port) });
    options.logger?.info({ node: host.id, operation, member: args.id }, 'cluster membership changed');
    return { voters: host.status().voters };
  }

  /** This node closing is not the client's queue closing: tell it to go elsewhere. */
  function nodeError(error: unknown): unknown {
    if (!isPixelfleetError(error, 'PF_ERR_QUEUE_CLOSED')) return error;
    const leader = options.host.role.leader === options.host.id ? null : options.host.role.leader;
    return new PixelfleetError('PF_ERR_SHUTTING_DOWN', `queue node ${options.host.id} is shutting down`, {
      extensions: { leader, leaderAddress: options.host.clientAddressOf(leader) },
    });
  }

  function status(): Record<string, unknown> {
    return { ...options.host.status(), ...options.describe?.() };
  }

  function serveFramed(socket: Socket, first: Buffer): void {
    const splitter = new FrameSplitter();
    const claims = new Map<number, AbortController>();
    let corked = false;
    const send = (frame: Buffer) => {
      if (socket.destroyed) return;
      // Answers produced in one turn leave in one write.
      if (!corked) {
        corked = true;
        socket.cork();
        process.nextTick(() => {
          corked = false;
          socket.uncork();
        });
      }
      socket.write(frame);
    };
    const handle = async (request: RequestFrame) => {
      const controller = new AbortController();
      if (request.o === 'claim' || request.o === 'watchLane') claims.set(request.i, controller);
      try {
        let result: unknown;
        try {
          result = await execute(request, controller.signal);
        } catch (error) {
          if (!shouldHold(error, request.n) || controller.signal.aborted) throw error;
          await awaitLeader(request.n);
          result = await execute(request, controller.signal);
        }
        send(encodeFrame({ i: request.i, r: result }));
      } catch (error) {
        if (controller.signal.aborted && !socket.destroyed) return; // cancelled: no answer
        send(encodeFrame({ i: request.i, e: toWireError(nodeError(error)) }));
      } finally {
        claims.delete(request.i);
      }
    };
    const onFrames = (chunk: Buffer) => {
      let frames: Buffer[];
      try {
        frames = splitter.push(chunk);
      } catch {
        socket.destroy();
        return;
      }
      for (const body of frames) {
        let request: RequestFrame;
        try {
          request = JSON.parse(body.toString('utf8')) as RequestFrame;
          if (typeof request.i !== 'number' || typeof request.o !== 'string')
            throw new Error('not a request');
        } catch {
          socket.destroy();
          return;
        }
        if ((request.o as Operation) === 'cancel') {
          claims.get(Number(request.a?.request))?.abort(new DOMException('claim cancelled', 'AbortError'));
          continue;
        }
        void handle(request);
      }
    };
    socket.on('data', onFrames);
    socket.on('close', () => {
      // A client that went away no longer waits for its claims.
      for (const controller of claims.values())
        controller.abort(new DOMException('client gone', 'AbortError'));
      claims.clear();
    });
    if (first.byteLength > 0) onFrames(first);
  }

  function serveHttp(socket: Socket, first: Buffer): void {
    let head = first;
    const respond = () => {
      const text = head.toString('latin1');
      const end = text.indexOf('\r\n\r\n');
      if (end < 0) {
        if (head.byteLength > MAX_HTTP_HEADER_BYTES) socket.destroy();
        return;
      }
      socket.off('data', onData);
      const [method, path] = text.slice(0, text.indexOf('\r\n')).split(' ');
      let statusCode = 200;
      let body: unknown;
      if (method !== 'GET' && method !== 'HEAD') {
        statusCode = 405;
        body = { code: 'PF_ERR_METHOD_NOT_ALLOWED', detail: 'only GET is served here' };
      } else if (path === '/status') {
        body = status();
      } else if (path === '/health') {
        const leader = options.host.role.leader;
        statusCode = options.host.healthy && leader !== null ? 200 : 503;
        body = { healthy: statusCode === 200, role: options.host.role.role, leader };
      } else {
        statusCode = 404;
        body = { code: 'PF_ERR_NOT_FOUND', detail: 'try GET /status or GET /health' };
      }
      const payload = Buffer.from(`${JSON.stringify(body, null, 2)}\n`);
      const reason = { 200: 'OK', 404: 'Not Found', 405: 'Method Not Allowed', 503: 'Service Unavailable' }[
        statusCode
      ];
      socket.end(
        Buffer.concat([
          Buffer.from(
            `HTTP/1.1 ${statusCode} ${reason}\r\ncontent-type: application/json\r\ncontent-length: ${payload.byteLength}\r\nconnection: close\r\n\r\n`,
            'latin1',
          ),
          method === 'HEAD' ? Buffer.alloc(0) : payload,
        ]),
      );
    };
    const onData = (chunk: Buffer) => {
      head = Buffer.concat([head, chunk]);
      respond();
    };
    socket.on('data', onData);
    respond();
  }

  const server: Server = createServer({ noDelay: true }, (socket) => {
    if (closing) {
      socket.destroy();
      return;
    }
    sockets.add(socket);
    socket.on('error', () => {});
    socket.on('close', () => sockets.delete(socket));
    let first = Buffer.alloc(0);
    const sniff = (chunk: Buffer) => {
      first = Buffer.concat([first, chunk]);
      if (first.byteLength < PROTOCOL_MAGIC.byteLength) return;
      socket.off('data', sniff);
      if (first.subarray(0, PROTOCOL_MAGIC.byteLength).equals(PROTOCOL_MAGIC)) {
        serveFramed(socket, first.subarray(PROTOCOL_MAGIC.byteLength));
      } else {
        serveHttp(socket, first);
      }
    };
    socket.on('data', sniff);
  });

  await new Promise<void>((resolve, reject) => {
    server.once('error', (error) =>
      reject(
        new PixelfleetError(
          'PF_ERR_QUEUE_UNAVAILABLE',
          `queue client port ${options.listen.host}:${options.listen.port} is unavailable`,
          { cause: error },
        ),
      ),
    );
    server.listen({ host: options.listen.host, port: options.listen.port }, () => resolve());
  });
  const address = server.address();
  const port = typeof address === 'object' && address !== null ? address.port : options.listen.port;

  return {
    port,
    async close() {
      if (closing) return;
      closing = true;
      unsubscribe();
      for (const wake of [...leaderWatchers]) wake();
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      // Answers already queued get a moment to leave; then the connections go.
      await new Promise((resolve) => setImmediate(resolve));
      for (const socket of sockets) socket.destroy();
      await closed;
    },
  };
}
