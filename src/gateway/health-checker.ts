/**
 * Active health checks: every `intervalMs` each upstream is probed — `GET {path}` answering 2xx
 * within `timeoutMs` (HTTP), or a TCP connect within `timeoutMs` (TCP) — and the result fed
 * to its HealthState. Checks use their own small connection agent so that a saturated request
 * pool cannot make a healthy upstream look dead, and at most one check per upstream is
 * outstanding so a slow upstream cannot pile them up.
 */
import { connect } from 'node:net';
import { Agent, request } from 'undici';
import type { Upstream } from './upstream.ts';

export interface HealthCheckOptions {
  /** Probe period (default 1000 ms). */
  intervalMs?: number;
  /** A probe slower than this fails (default 500 ms). */
  timeoutMs?: number;
  /** 'http' probes GET `path` (default); 'tcp' only connects. */
  kind?: 'http' | 'tcp';
  /** Path of the HTTP probe (default '/readyz'). */
  path?: string;
  /** Consecutive failures that mark an upstream unhealthy (default 2). */
  unhealthyThreshold?: number;
  /** Consecutive passes that mark it healthy again (default 2). */
  healthyThreshold?: number;
}

export class HealthChecker {
  readonly #upstreams: () => readonly Upstream[];
  readonly #intervalMs: number;
  readonly #timeoutMs: number;
  readonly #kind: 'http' | 'tcp';
  readonly #path: string;
  readonly #onResult: (upstream: Upstream, passed: boolean, changed: boolean) => void;
  readonly #agent: Agent;
  readonly #outstanding = new Set<Upstream>();
  #timer: NodeJS.Timeout | undefined;

  constructor(
    upstreams: () => readonly Upstream[],
    options: HealthCheckOptions,
    onResult: (upstream: Upstream, passed: boolean, changed: boolean) => void,
  ) {
    this.#upstreams = upstreams;
    this.#intervalMs = options.intervalMs ?? 1000;
    this.#timeoutMs = options.timeoutMs ?? 500;
    this.#kind = options.kind ?? 'http';
    this.#path = options.path ?? '/readyz';
    if (!(this.#intervalMs > 0)) throw new RangeError('healthCheck.intervalMs must be positive');
    if (!(this.#timeoutMs > 0)) throw new RangeError('healthCheck.timeoutMs must be positive');
    this.#onResult = onResult;
    this.#agent = new Agent({ connections: 1, keepAliveTimeout: this.#intervalMs * 2 });
  }

  start(): void {
    if (this.#timer) return;
    this.#timer = setInterval(() => this.checkAll(), this.#intervalMs);
    this.#timer.unref();
  }

  /** One round of probes (also used by tests to avoid waiting for the timer). */
  checkAll(): void {
    for (const upstream of this.#upstreams()) {
      if (this.#outstanding.has(upstream)) continue;
      this.#outstanding.add(upstream);
      void this.#probe(upstream)
        .then(
          () => ({ passed: true, error: undefined }),
          (error: unknown) => ({
            passed: false,
            error: error instanceof Error ? error.message : String(error),
          }),
        )
        .then(({ passed, error }) => {
          this.#outstanding.delete(upstream);
          if (upstream.draining) return;
          const changed = upstream.health.record(passed, Date.now(), error);
          this.#onResult(upstream, passed, changed);
        });
    }
  }

  async stop(): Promise<void> {
    clearInterval(this.#timer);
    this.#timer = undefined;
    await this.#agent.destroy();
  }

  async #probe(upstream: Upstream): Promise<void> {
    if (this.#kind === 'tcp') return this.#connectProbe(upstream);
    const response = await request(`${upstream.origin}${this.#path}`, {
      dispatcher: this.#agent,
      signal: AbortSignal.timeout(this.#timeoutMs),
      headers: { 'user-agent': 'pixelfleet-gateway-health-check' },
    });
    await response.body.dump();
    if (response.statusCode < 200 || response.statusCode >= 300) {
      throw new Error(`${this.#path} answered ${response.statusCode}`);
    }
  }

  #connectProbe(upstream: Upstream): Promise<void> {
    return new Promise((resolve, reject) => {
      const socket = connect({ host: upstream.hostname, port: upstream.port, timeout: this.#timeoutMs });
      socket.once('connect', () => {
        socket.destroy();
        resolve();
      });
      socket.once('timeout', () => {
        socket.destroy();
        reject(new Error(`connect timed out after ${this.#timeoutMs} ms`));
      });
      socket.once('error', reject);
    });
  }
}
