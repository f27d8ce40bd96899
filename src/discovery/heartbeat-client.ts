/**
 * Announces this process to every registry each interval, and leaves gracefully on stop.
 * Registries are independent: each gets its own request with a short timeout, and a registry
 * whose previous heartbeat is still in flight is skipped for this tick, so one stalled or dead
 * registry neither delays the others nor piles up requests. Heartbeats are not retried — the
 * next tick is the retry.
 *
 * Guarantees: after `stop()` resolves no heartbeat is in flight or will be sent, so the DELETE
 * cannot be overtaken by a late heartbeat that re-adds the member; and no socket of this client
 * is left open. The client owns its connection pool for that reason: a heartbeat aborted while
 * connecting can leave a connected but unused socket in a shared pool, which a registry's
 * graceful `close()` then waits on until its headers timeout (a minute).
 */
import { Agent, request } from 'undici';
import { PixelfleetError } from '../errors/index.ts';
import type { MemberAnnouncement, MemberView } from './types.ts';

export interface HeartbeatClientOptions {
  registryUrls: string[];
  clusterSecret: string;
  /** Called each tick so the announcement carries the current readiness and load. */
  announcement: () => MemberAnnouncement;
  /** Default 1 s (the contract's default, `--heartbeat-interval`). */
  intervalMs?: number;
  /** Per-request timeout (default min(interval, 1 s), at least 100 ms). */
  requestTimeoutMs?: number;
  onError?: (error: unknown) => void;
  /** Membership as a registry reported it in its heartbeat response. */
  onMembers?: (members: MemberView[]) => void;
}

/** Cap on the graceful leave: shutdown must not wait on a dead registry. */
const leaveTimeoutMs = 1000;

export class HeartbeatClient {
  readonly intervalMs: number;
  readonly #registryUrls: string[];
  readonly #authorization: string;
  readonly #announcement: () => MemberAnnouncement;
  readonly #requestTimeoutMs: number;
  readonly #onError: (error: unknown) => void;
  readonly #onMembers: ((members: MemberView[]) => void) | undefined;
  readonly #inFlight = new Map<string, Promise<void>>();
  #timer: NodeJS.Timeout | undefined;
  #agent: Agent | undefined;
  #stopping = new AbortController();
  #lastId: string | undefined;

  constructor(options: HeartbeatClientOptions) {
    if (!Array.isArray(options?.registryUrls) || options.registryUrls.length === 0) {
      throw new RangeError('registryUrls must list at least one registry');
    }
    this.#registryUrls = options.registryUrls.map((url) => {
      try {
        return new URL(url).href.replace(/\/+$/, '');
      } catch (cause) {
        throw new RangeError(`registry URL ${String(url)} is not a valid URL`, { cause });
      }
    });
    if (typeof options.clusterSecret !== 'string' || options.clusterSecret.length === 0) {
      throw new RangeError('clusterSecret must be a non-empty string');
    }
    this.#authorization = `Bearer ${options.clusterSecret}`;
    this.#announcement = options.announcement;
    this.intervalMs = options.intervalMs ?? 1000;
    if (!Number.isFinite(this.intervalMs) || this.intervalMs < 10) {
      throw new RangeError(`intervalMs must be ≥ 10, got ${this.intervalMs}`);
    }
    this.#requestTimeoutMs = options.requestTimeoutMs ?? Math.max(100, Math.min(this.intervalMs, 1000));
    this.#onError = options.onError ?? (() => {});
    this.#onMembers = options.onMembers;
  }

  /** Sends a heartbeat now and then every interval; calling it twice has no effect. */
  start(): void {
    if (this.#timer !== undefined) return;
    if (this.#stopping.signal.aborted) this.#stopping = new AbortController();
    this.#agent = new Agent({ connections: 2, keepAliveTimeout: Math.max(1000, this.intervalMs * 4) });
    this.#tick();
    this.#timer = setInterval(() => this.#tick(), this.intervalMs);
    // Heartbeats must never be the only thing keeping a process alive.
    this.#timer.unref();
  }

  /** Stops beating, waits out in-flight heartbeats, then leaves (best effort, ≤ 1 s). */
  async stop(): Promise<void> {
    const agent = this.#agent;
    if (agent === undefined) return;
    this.#agent = undefined;
    clearInterval(this.#timer);
    this.#timer = undefined;
    this.#stopping.abort();
    await Promise.allSettled([...this.#inFlight.values()]);
    const id = this.#lastId;
    if (id !== undefined) {
      const signal = AbortSignal.timeout(leaveTimeoutMs);
      await Promise.allSettled(
        this.#registryUrls.map(async (registryUrl) => {
          const response = await request(`${registryUrl}/registry/members/${encodeURIComponent(id)}`, {
            method: 'DELETE',
            headers: { authorization: this.#authorization },
            signal,
            dispatcher: agent,
          });
          await response.body.dump();
        }),
      );
    }
    await agent.destroy();
  }

  #tick(): void {
    let announcement: MemberAnnouncement;
    try {
      announcement = { ...this.#announcement(), intervalMs: this.intervalMs };
    } catch (error) {
      this.#onError(error);
      return;
    }
    this.#lastId = announcement.id;
    const body = JSON.stringify(announcement);
    for (const registryUrl of this.#registryUrls) {
      if (this.#inFlight.has(registryUrl)) continue;
      const beat = this.#beat(registryUrl, body).finally(() => this.#inFlight.delete(registryUrl));
      this.#inFlight.set(registryUrl, beat);
    }
  }

  async #beat(registryUrl: string, body: string): Promise<void> {
    const agent = this.#agent;
    if (agent === undefined) return;
    try {
      const response = await request(`${registryUrl}/registry/heartbeat`, {
        method: 'POST',
        headers: { authorization: this.#authorization, 'content-type': 'application/json' },
        body,
        signal: AbortSignal.any([this.#stopping.signal, AbortSignal.timeout(this.#requestTimeoutMs)]),
        dispatcher: agent,
      });
      if (response.statusCode !== 200) {
        const problem = (await response.body.json().catch(() => undefined)) as
          | { detail?: unknown }
          | undefined;
        const detail = typeof problem?.detail === 'string' ? `: ${problem.detail}` : '';
        throw new PixelfleetError(
          response.statusCode === 401 ? 'PF_ERR_CLUSTER_UNAUTHORIZED' : 'PF_ERR_REMOTE_FAILED',
          `registry ${registryUrl} answered ${response.statusCode}${detail}`,
          { extensions: { registryUrl, remoteStatus: response.statusCode } },
        );
      }
      const answer = (await response.body.json()) as { members?: MemberView[] };
      if (Array.isArray(answer.members)) this.#onMembers?.(answer.members);
    } catch (error) {
      if (this.#stopping.signal.aborted) return;
      this.#onError(
        error instanceof PixelfleetError
          ? error
          : new PixelfleetError('PF_ERR_REMOTE_FAILED', `heartbeat to ${registryUrl} failed`, {
              cause: error,
              extensions: { registryUrl },
            }),
      );
    }
  }
}
