/**
 * The L4 front end: a `node:net` proxy that picks an upstream per connection and pipes bytes
 * both ways without looking at them. Consistent-hash affinity hashes the client address (no
 * API key is visible at L4). A connect that fails (refused, timed out) counts against the
 * upstream like a failed request and is retried on another upstream — nothing was sent yet, so
 * this is always safe; once connected, the connection is the client's and is never replayed.
 * Bytes from the client that arrive while connecting are held (the socket is paused) and
 * delivered once the upstream connection is up.
 */
import { connect, type Server, type Socket } from 'node:net';
import type { Attempt, Balancer } from './balancer.ts';

export interface TcpProxySettings {
  /** Connect attempts in all, the first included (default 3). */
  maxAttempts: number;
  connectTimeoutMs: number;
  /** Whether connections carry an affinity key (consistent-hash). */
  affinity: boolean;
}

export function handleTcpConnection(balancer: Balancer, settings: TcpProxySettings, client: Socket): void {
  client.pause();
  client.on('error', () => client.destroy());
  const tried = new Set<string>();
  const affinityKey = settings.affinity ? client.remoteAddress : undefined;
  let attempts = 0;
  const started = performance.now();

  const tryNext = () => {
    if (client.destroyed) return;
    const attempt = balancer.begin(tried, affinityKey);
    if ('kind' in attempt) {
      balancer.metrics.requests.inc({ upstream: 'none', status_class: 'refused' });
      balancer.logger.warn(
        { client: client.remoteAddress, attempts, reason: attempt.reason },
        'tcp connection refused',
      );
      client.destroy();
      return;
    }
    attempts += 1;
    tried.add(attempt.upstream.id);
    open(attempt);
  };

  const open = (attempt: Attempt) => {
    const upstream = connect({
      host: attempt.upstream.hostname,
      port: attempt.upstream.port,
      timeout: settings.connectTimeoutMs,
    });
    let connected = false;
    const fail = (error: Error) => {
      upstream.destroy();
      attempt.settle('failure');
      if (attempts < settings.maxAttempts && balancer.hasAlternative(tried) && balancer.tryRetry()) {
        tryNext();
        return;
      }
      balancer.metrics.requests.inc({ upstream: attempt.upstream.id, status_class: 'connect_failed' });
      balancer.logger.warn(
        { client: client.remoteAddress, upstream: attempt.upstream.id, attempts, err: error.message },
        'tcp connect failed',
      );
      client.destroy();
    };
    upstream.once('timeout', () => {
      if (!connected) fail(new Error(`connect timed out after ${settings.connectTimeoutMs} ms`));
    });
    upstream.once('error', (error) => {
      if (!connected) fail(error);
    });
    upstream.once('connect', () => {
      connected = true;
      upstream.setTimeout(0);
      attempt.settle('success');
      // The connection stays counted against the upstream (least connections) until it closes.
      attempt.upstream.inflight += 1;
      balancer.strategy.requestStarted(attempt.upstream.id);
      balancer.metrics.tcpConnections.inc({ upstream: attempt.upstream.id });
      let bytesIn = 0;
      let bytesOut = 0;
      client.on('data', (chunk: Buffer) => {
        bytesIn += chunk.length;
      });
      upstream.on('data', (chunk: Buffer) => {
        bytesOut += chunk.length;
      });
      client.pipe(upstream);
      upstream.pipe(client);
      client.resume();
      let closed = false;
      const close = () => {
        if (closed) return;
        closed = true;
        client.destroy();
        upstream.destroy();
        attempt.upstream.inflight -= 1;
        // Connect time was the latency sample; this only releases the connection count.
        balancer.strategy.requestFinished(attempt.upstream.id, Number.NaN, false);
        balancer.metrics.requests.inc({ upstream: attempt.upstream.id, status_class: 'closed' });
        balancer.logger.info(
          {
            client: client.remoteAddress,
            upstream: attempt.upstream.id,
            attempts,
            bytesIn,
            bytesOut,
            durationMs: Math.round(performance.now() - started),
          },
          'tcp connection',
        );
      };
      upstream.on('error', close);
      upstream.on('close', close);
      client.on('close', close);
    });
  };

  tryNext();
}

/** Ends every proxied connection (used by close() after the grace period). */
export function trackConnections(server: Server): Set<Socket> {
  const sockets = new Set<Socket>();
  server.on('connection', (socket: Socket) => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
  });
  return sockets;
}
