/**
 * One upstream server as the gateway sees it: its address and weight, a keep-alive connection
 * pool (undici `Pool`, created on first use), its bulkhead (a connection cap in the pool and an
 * in-flight cap checked before routing), its circuit breaker, its active health, a latency
 * EWMA for /status, and whether it is draining (left the set: no new requests, in-flight ones
 * finish, then the pool closes).
 */
import { Pool } from 'undici';
import { type BreakerState, CircuitBreaker, type CircuitBreakerOptions } from '../resilience/remote/index.ts';
import { HealthState, type HealthThresholds } from './health-state.ts';

export type UpstreamSource = 'static' | 'registry';

export interface UpstreamSpec {
  id: string;
  /** Base URL (http://host:port); in TCP mode only host and port matter. */
  url: string;
  weight?: number;
}

export interface UpstreamLimits {
  /** Most pooled connections to this upstream (default 64). */
  maxConnections: number;
  /** Most requests in flight to this upstream; beyond it the upstream is skipped (default 256). */
  maxInflight: number;
  /** Connect timeout in ms (default 2000). */
  connectTimeoutMs: number;
  /** Idle keep-alive time of pooled connections (default 4000 ms, below Node's 5 s server default). */
  keepAliveTimeoutMs: number;
}

export class Upstream {
  readonly id: string;
  readonly source: UpstreamSource;
  readonly origin: string;
  readonly hostname: string;
  readonly port: number;
  readonly breaker: CircuitBreaker;
  readonly health: HealthState;
  readonly limits: UpstreamLimits;
  weight: number;
  inflight = 0;
  draining = false;
  /** Exponentially weighted latency to response headers (ms), for /status. */
  latencyEwmaMs: number | undefined;
  #pool: Pool | undefined;

  constructor(
    spec: UpstreamSpec,
    source: UpstreamSource,
    options: {
      limits: UpstreamLimits;
      breaker: CircuitBreakerOptions;
      health: HealthThresholds;
      onBreakerStateChange?: (upstream: Upstream, from: BreakerState, to: BreakerState) => void;
    },
  ) {
    const url = new URL(spec.url);
    this.id = spec.id;
    this.source = source;
    this.origin = url.origin === 'null' ? `http://${url.host}` : url.origin;
    this.hostname = url.hostname.replace(/^\[|\]$/g, '');
    this.port = Number(url.port || (url.protocol === 'https:' ? 443 : 80));
    this.weight = validWeight(spec.weight);
    this.limits = options.limits;
    this.health = new HealthState(options.health);
    this.breaker = new CircuitBreaker({
      ...options.breaker,
      onStateChange: (from, to) => options.onBreakerStateChange?.(this, from, to),
    });
  }

  /** The keep-alive pool, created on first use so TCP-mode upstreams never open one. */
  get pool(): Pool {
    this.#pool ??= new Pool(this.origin, {
      connections: this.limits.maxConnections,
      pipelining: 1,
      keepAliveTimeout: this.limits.keepAliveTimeoutMs,
      connect: { timeout: this.limits.connectTimeoutMs },
    });
    return this.#pool;
  }

  get atCapacity(): boolean {
    return this.inflight >= this.limits.maxInflight;
  }

  observeLatency(ms: number): void {
    this.latencyEwmaMs =
      this.latencyEwmaMs === undefined ? ms : this.latencyEwmaMs + 0.3 * (ms - this.latencyEwmaMs);
  }

  /** Graceful: waits for requests already in the pool, then closes its connections. */
  async close(): Promise<void> {
    await this.#pool?.close();
  }

  /** Immediate: aborts whatever is still in flight. */
  async destroy(): Promise<void> {
    await this.#pool?.destroy();
  }
}

export function validWeight(weight: number | undefined): number {
  const value = weight ?? 1;
  if (!(Number.isFinite(value) && value > 0))
    throw new RangeError(`upstream weight must be positive, got ${weight}`);
  return value;
}
