/**
 * `startGateway`: the load balancer in front of the api servers (contract of issue 5). An L7
 * HTTP front end (or an L4 TCP one) on the public listener; the discovery registry, metrics,
 * health and status on the control listener. Upstreams are the registry's alive and ready
 * members of role 'api' with a url, plus static ones from the options.
 *
 * Lifecycle: `close()` stops accepting, lets in-flight requests finish (up to
 * `drainTimeoutMs`), then cuts what is left and closes every pool, timer and listener.
 */
import { createServer as createHttpServer, type Server as HttpServer } from 'node:http';
import { type AddressInfo, createServer as createTcpServer, type Server as TcpServer } from 'node:net';
import type { FastifyInstance } from 'fastify';
import { type MemberRegistry, type MemberRole, MemberRegistry as Registry } from '../discovery/index.ts';
import { createLogger, type Logger } from '../observability/index.ts';
import {
  type CircuitBreakerOptions,
  RetryBudget,
  type RetryBudgetOptions,
} from '../resilience/remote/index.ts';
import { Balancer } from './balancer.ts';
import { type GatewayStatus, gatewayStatus, startControlServer } from './control-server.ts';
import { HealthChecker, type HealthCheckOptions } from './health-checker.ts';
import { createHttpHandler } from './http-proxy.ts';
import { createGatewayMetrics } from './metrics.ts';
import { OutlierDetector, type OutlierDetectorOptions } from './outlier-detector.ts';
import { createStrategy, type StrategyName, strategyNames } from './strategies/index.ts';
import { handleTcpConnection, trackConnections } from './tcp-proxy.ts';
import type { UpstreamSpec } from './upstream.ts';
import { UpstreamSet } from './upstream-set.ts';

export interface GatewayOptions {
  /** Public listener: HTTP in 'http' mode, raw TCP in 'tcp' mode; port 0 = any. */
  host: string;
  port: number;
  /** Control listener: registry routes, /metrics, /healthz, /readyz, /status. */
  controlHost: string;
  controlPort: number;
  /** Default 'http'. */
  mode?: 'http' | 'tcp';
  /** Default 'least-time'. */
  strategy?: StrategyName;
  clusterSecret: string;
  /** Static upstreams besides the registry's (tests, L4). */
  upstreams?: Array<{ id: string; url: string; weight?: number }>;
  logger?: Logger;

  // Tunables (all optional).
  /** The registry the control listener serves (default: a new one with default timing). */
  registry?: MemberRegistry;
  /** Role of the registry members routed to (default 'api'). */
  upstreamRole?: MemberRole;
  /** How often dead members are swept from the registry (default 250 ms). */
  registrySweepIntervalMs?: number;
  /** Active checks (default GET /readyz every 1000 ms, 500 ms timeout, 2 to fail, 2 to pass); false = off. */
  healthCheck?: HealthCheckOptions | false;
  /** Passive outlier detection (default 5 consecutive failures, 5 s base, 300 s cap, 50 % max). */
  outlierDetection?: Omit<OutlierDetectorOptions, 'now'>;
  /** Per-upstream circuit breaker (default Hystrix: 20 requests / 50 % / 10 s window / 5 s open). */
  breaker?: Omit<CircuitBreakerOptions, 'onStateChange'>;
  /** Retry budget shared by all upstreams (default 20 % extra, floor 5 per second, 10 s window). */
  retryBudget?: RetryBudgetOptions;
  /** Attempts per request (or connect attempts per TCP connection), the first included (default 3). */
  maxAttempts?: number;
  /** Largest request body buffered for replay (default 1 MiB + 64 KiB). */
  maxBodyBytes?: number;
  /** Deadline for requests without a Pixelfleet-Deadline header (default 30000 ms). */
  defaultDeadlineMs?: number;
  /** Longest pause inside an upstream's response body (default 30000 ms). */
  upstreamBodyTimeoutMs?: number;
  /** Bulkhead per upstream: pooled connections (default 64) and requests in flight (default 256). */
  maxConnectionsPerUpstream?: number;
  maxInflightPerUpstream?: number;
  /** Upstream connect timeout (default 2000 ms). */
  connectTimeoutMs?: number;
  /** Idle time of pooled upstream connections (default 4000 ms). */
  keepAliveTimeoutMs?: number;
  /** Grace for in-flight requests on close (default 10000 ms). */
  drainTimeoutMs?: number;
  /** Least-time EWMA smoothing (default 0.3); consistent-hash virtual nodes per weight unit (default 160). */
  latencySmoothing?: number;
  virtualNodesPerWeight?: number;
  /** Randomness of the strategies (tests). */
  random?: () => number;
  /** Collect Node process metrics on the gateway's registry (default true). */
  defaultMetrics?: boolean;
}

export interface Gateway {
  /** http://host:port (tcp://host:port in TCP mode). */
  url: string;
  controlUrl: string;
  close(): Promise<void>;
  /** The registry served on the control listener. */
  registry: MemberRegistry;
  /** Snapshot of the upstreams (the body of GET /status). */
  status(): GatewayStatus;
}

export async function startGateway(options: GatewayOptions): Promise<Gateway> {
  const mode = options.mode ?? 'http';
  if (mode !== 'http' && mode !== 'tcp')
    throw new RangeError(`mode must be 'http' or 'tcp', got ${String(mode)}`);
  const strategyName = options.strategy ?? 'least-time';
  if (!strategyNames.includes(strategyName)) throw new RangeError(`unknown strategy ${String(strategyName)}`);
  if (typeof options.clusterSecret !== 'string' || options.clusterSecret === '') {
    throw new RangeError('clusterSecret must be a non-empty string');
  }
  const maxAttempts = positiveInteger('maxAttempts', options.maxAttempts ?? 3);
  const maxBodyBytes = positiveInteger('maxBodyBytes', options.maxBodyBytes ?? 1024 * 1024 + 64 * 1024);
  const drainTimeoutMs = positiveInteger('drainTimeoutMs', options.drainTimeoutMs ?? 10_000);
  const connectTimeoutMs = positiveInteger('connectTimeoutMs', options.connectTimeoutMs ?? 2000);
  const upstreamRole = options.upstreamRole ?? 'api';

  const logger =
    options.logger ?? createLogger({ level: process.env.LOG_LEVEL ?? 'info', name: 'pixelfleet-gateway' });
  const metrics = createGatewayMetrics({ defaultMetrics: options.defaultMetrics });
  const strategy = createStrategy(strategyName, {
    random: options.random,
    latencySmoothing: options.latencySmoothing,
    virtualNodesPerWeight: options.virtualNodesPerWeight,
  });
  const outlier = new OutlierDetector(options.outlierDetection);
  const upstreams = new UpstreamSet({
    limits: {
      maxConnections: positiveInteger('maxConnectionsPerUpstream', options.maxConnectionsPerUpstream ?? 64),
      maxInflight: positiveInteger('maxInflightPerUpstream', options.maxInflightPerUpstream ?? 256),
      connectTimeoutMs,
      keepAliveTimeoutMs: positiveInteger('keepAliveTimeoutMs', options.keepAliveTimeoutMs ?? 4000),
    },
    breaker: options.breaker ?? {},
    health:
      options.healthCheck === false
        ? {}
        : {
            unhealthyThreshold: options.healthCheck?.unhealthyThreshold,
            healthyThreshold: options.healthCheck?.healthyThreshold,
          },
    outlier,
    onBreakerStateChange: (upstream, from, to) => {
      metrics.remote.breakerTransitions.inc({ dependency: upstream.id, to });
      logger.warn({ upstream: upstream.id, from, to }, 'upstream circuit breaker changed state');
    },
    onMembershipChange: ({ type, upstream }) => {
      if (type === 'draining') strategy.forget(upstream.id);
      logger.info(
        { upstream: upstream.id, url: upstream.origin, source: upstream.source, event: type },
        'upstream set changed',
      );
    },
  });
  metrics.setUpstreamCollector(() =>
    upstreams.active().map((upstream) => ({
      id: upstream.id,
      healthy: upstream.health.healthy,
      ejected: outlier.isEjected(upstream.id),
      inflight: upstream.inflight,
    })),
  );
  // The breaker gauge is read at scrape time: open → half-open happens lazily on the clock.
  const breakerGaugeCollect = () => {
    metrics.remote.breakerState.reset();
    for (const upstream of upstreams.active()) {
      metrics.remote.breakerState.set({ dependency: upstream.id }, breakerValue(upstream.breaker.state));
    }
  };
  const balancer = new Balancer({
    upstreams,
    strategy,
    outlier,
    retryBudget: new RetryBudget(options.retryBudget),
    metrics,
    logger,
  });

  upstreams.sync(
    'static',
    (options.upstreams ?? []).map((spec) => ({ ...spec })),
  );
  const registry = options.registry ?? new Registry();
  const syncFromRegistry = () => {
    const specs: UpstreamSpec[] = [];
    for (const member of registry.members({ role: upstreamRole, status: 'alive' })) {
      if (!member.ready || member.url === undefined || !((member.weight ?? 1) > 0)) continue;
      specs.push({ id: member.id, url: member.url, weight: member.weight ?? 1 });
    }
    upstreams.sync('registry', specs);
  };
  const unsubscribe = registry.subscribe(() => syncFromRegistry());
  syncFromRegistry();
  const sweepTimer = setInterval(() => {
    registry.sweep();
    syncFromRegistry();
  }, options.registrySweepIntervalMs ?? 250);
  sweepTimer.unref();

  const healthChecker =
    options.healthCheck === false
      ? undefined
      : new HealthChecker(
          () => upstreams.active(),
          { kind: 'http', ...options.healthCheck },
          (upstream, passed, changed) => {
            metrics.healthChecks.inc({ upstream: upstream.id, result: passed ? 'pass' : 'fail' });
            if (changed) {
              logger.warn(
                {
                  upstream: upstream.id,
                  healthy: upstream.health.healthy,
                  error: upstream.health.snapshot().lastError,
                },
                'upstream health changed',
              );
            }
          },
        );
  healthChecker?.start();

  const affinity = strategyName === 'consistent-hash';
  let publicServer: HttpServer | TcpServer;
  let tcpSockets: Set<import('node:net').Socket> | undefined;
  if (mode === 'http') {
    const server = createHttpServer(
      { keepAliveTimeout: 65_000, requestTimeout: 0 },
      createHttpHandler(balancer, {
        maxBodyBytes,
        maxAttempts,
        defaultDeadlineMs: positiveInteger('defaultDeadlineMs', options.defaultDeadlineMs ?? 30_000),
        bodyTimeoutMs: positiveInteger('upstreamBodyTimeoutMs', options.upstreamBodyTimeoutMs ?? 30_000),
        affinity,
      }),
    );
    publicServer = server;
  } else {
    const server = createTcpServer({ allowHalfOpen: true }, (socket) =>
      handleTcpConnection(balancer, { maxAttempts, connectTimeoutMs, affinity }, socket),
    );
    tcpSockets = trackConnections(server);
    publicServer = server;
  }

  let control: FastifyInstance | undefined;
  try {
    await listen(publicServer, options.host, options.port);
    control = await startControlServer({
      host: options.controlHost,
      port: options.controlPort,
      balancer,
      registry,
      clusterSecret: options.clusterSecret,
      mode,
      beforeScrape: breakerGaugeCollect,
    });
  } catch (error) {
    await control?.close();
    clearInterval(sweepTimer);
    unsubscribe();
    await healthChecker?.stop();
    publicServer.close();
    await upstreams.close(0);
    throw error;
  }

  const publicAddress = publicServer.address() as AddressInfo;
  const controlAddress = control.server.address() as AddressInfo;
  const url = `${mode === 'http' ? 'http' : 'tcp'}://${formatHost(publicAddress.address)}:${publicAddress.port}`;
  const controlUrl = `http://${formatHost(controlAddress.address)}:${controlAddress.port}`;
  logger.info({ url, controlUrl, mode, strategy: strategyName }, 'gateway listening');

  let closing: Promise<void> | undefined;
  return {
    url,
    controlUrl,
    registry,
    status: () => gatewayStatus(balancer, mode),
    close() {
      closing ??= (async () => {
        clearInterval(sweepTimer);
        unsubscribe();
        await healthChecker?.stop();
        const stopped = new Promise<void>((resolve) => publicServer.close(() => resolve()));
        if (publicServer instanceof Object && 'closeIdleConnections' in publicServer) {
          publicServer.closeIdleConnections();
        }
        let timer: NodeJS.Timeout | undefined;
        const expired = new Promise<void>((resolve) => {
          timer = setTimeout(resolve, drainTimeoutMs);
        });
        await Promise.race([stopped, expired]);
        clearTimeout(timer);
        if ('closeAllConnections' in publicServer) publicServer.closeAllConnections();
        for (const socket of tcpSockets ?? []) socket.destroy();
        await stopped;
        await upstreams.close(1000);
        await control?.close();
      })();
      return closing;
    },
  };
}

function breakerValue(state: string): number {
  return state === 'open' ? 2 : state === 'half-open' ? 1 : 0;
}

function listen(server: HttpServer | TcpServer, host: string, port: number): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
}

function formatHost(address: string): string {
  return address.includes(':') ? `[${address}]` : address;
}

function positiveInteger(name: string, value: number): number {
  if (!Number.isInteger(value) || value < 1)
    throw new RangeError(`${name} must be a positive integer, got ${value}`);
  return value;
}
