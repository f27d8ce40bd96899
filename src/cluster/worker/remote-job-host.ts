/**
 * The worker role's `JobHost` in the cluster: the api server named in the job's payload (its
 * origin) holds the input and takes the result, over HTTP on its internal listener.
 *
 * - One pooled client per origin, each behind its own RemotePolicy (dependency 'api'): a breaker
 *   per origin, so one dead api server fails fast without slowing jobs of the others; a retry
 *   budget shared by all of them.
 * - GET input is idempotent and retried. POST result is retried too: the api server is
 *   idempotent by job id (metered once, same result file).
 * - 404/410 on the input is an answer: the input is gone (`undefined`: the dispatcher fails the
 *   job permanently). Any other failure throws: the dispatcher nacks with a backoff and the job
 *   is redelivered, perhaps after the api server came back.
 * - Settlement reports are sent in the background (the JobHost contract makes `settled`
 *   synchronous) and retried; `drain` waits for them on shutdown.
 */
import { PixelfleetError } from '../../errors/index.ts';
import type { ClaimedJob } from '../../queue/types.ts';
import { RemotePolicy, type RemotePolicyOptions } from '../../resilience/remote/index.ts';
import type { JobHost, JobOrigin, JobResult, ResizeJobPayload } from '../../worker/dispatcher.ts';
import {
  type DeliveryDescriptor,
  deliveryHeader,
  encodeDelivery,
  type SettlementReport,
} from '../api/delivery.ts';
import { InternalHttpClient } from '../http/index.ts';

export interface RemoteJobHostOptions {
  clusterSecret: string;
  /**
   * Builds the policy for one origin api server (the node's `remotePolicy`: configured jitter,
   * bulkhead, shared retry budget, metrics). Default: a plain RemotePolicy.
   */
  policy?: (options: RemotePolicyOptions) => RemotePolicy;
  /** Connections per api server (default 8). */
  connectionsPerOrigin?: number;
  onError?: (error: unknown, context: { jobId: string; step: string }) => void;
}

export class RemoteJobHost implements JobHost {
  readonly #options: RemoteJobHostOptions;
  readonly #clients = new Map<string, InternalHttpClient>();
  readonly #reports = new Set<Promise<void>>();

  constructor(options: RemoteJobHostOptions) {
    this.#options = options;
  }

  async fetchInput(job: ClaimedJob, payload: ResizeJobPayload): Promise<Buffer | undefined> {
    // A job without an origin was enqueued by an embedded server: nobody here holds its input.
    if (payload.origin === undefined) return undefined;
    const answer = await this.#client(payload).call({
      method: 'GET',
      path: `/internal/jobs/${encodeURIComponent(job.id)}/input?location=${payload.input.location}`,
      idempotent: true,
      ...(job.deadline === undefined ? {} : { deadlineAt: job.deadline }),
    });
    if (answer.status === 404 || answer.status === 410) return undefined;
    return answer.body;
  }

  async deliverResult(job: ClaimedJob, payload: ResizeJobPayload, result: JobResult): Promise<void> {
    const descriptor: DeliveryDescriptor = {
      attempt: job.attempt,
      payload,
      contentType: result.contentType,
      outcome: result.outcome,
    };
    const answer = await this.#client(payload).call({
      method: 'POST',
      path: `/internal/jobs/${encodeURIComponent(job.id)}/result`,
      body: result.output,
      headers: { 'content-type': 'application/octet-stream', [deliveryHeader]: encodeDelivery(descriptor) },
      // Idempotent by job id on the api side.
      idempotent: true,
    });
    if (answer.status === 404 || answer.status === 410) {
      throw new PixelfleetError(
        'PF_ERR_REMOTE_FAILED',
        `api server ${payload.origin?.id} refused the result`,
      );
    }
  }

  settled(
    job: ClaimedJob,
    payload: ResizeJobPayload,
    outcome: { result?: JobResult; error?: PixelfleetError },
  ): void {
    // A sync success was settled by the api server when its result arrived.
    if (outcome.result !== undefined && payload.mode === 'sync') return;
    const report: SettlementReport = {
      attempt: job.attempt,
      payload,
      ...(outcome.result === undefined
        ? {}
        : { result: { contentType: outcome.result.contentType, outcome: outcome.result.outcome } }),
      ...(outcome.error === undefined
        ? {}
        : { error: { code: outcome.error.code, message: outcome.error.message } }),
    };
    const sending = this.#client(payload)
      .call({
        method: 'POST',
        path: `/internal/jobs/${encodeURIComponent(job.id)}/settled`,
        body: JSON.stringify(report),
        headers: { 'content-type': 'application/json' },
        idempotent: true,
      })
      .then(
        () => {},
        (error: unknown) => this.#options.onError?.(error, { jobId: job.id, step: 'settled' }),
      )
      .finally(() => this.#reports.delete(sending));
    this.#reports.add(sending);
  }

  /** Resolves once every settlement report in flight was answered or gave up. */
  async drain(): Promise<void> {
    while (this.#reports.size > 0) await Promise.all(this.#reports);
  }

  /** Circuit breaker state per api server (for /status and tests). */
  breakers(): Record<string, string | undefined> {
    return Object.fromEntries([...this.#clients].map(([url, client]) => [url, client.policy.breaker?.state]));
  }

  async close(): Promise<void> {
    await this.drain();
    await Promise.all([...this.#clients.values()].map((client) => client.close()));
    this.#clients.clear();
  }

  #client(payload: ResizeJobPayload): InternalHttpClient {
    const origin: JobOrigin | undefined = payload.origin;
    if (origin === undefined) {
      throw new PixelfleetError('PF_ERR_INPUT_GONE', 'the job names no origin api server (an embedded job?)');
    }
    let client = this.#clients.get(origin.internalUrl);
    if (client === undefined) {
      client = new InternalHttpClient({
        origin: origin.internalUrl,
        clusterSecret: this.#options.clusterSecret,
        dependency: 'api',
        connections: this.#options.connectionsPerOrigin ?? 8,
        policy: (this.#options.policy ?? ((options) => new RemotePolicy(options)))({
          // Per origin: a dead api server opens its own breaker only, and the breaker gauge says which.
          dependency: `api:${origin.id}`,
          maxAttempts: 3,
          backoff: { initialDelayMs: 50, maxDelayMs: 1000 },
          breaker: { windowMs: 10_000, minimumRequests: 20, errorRatio: 0.5, openMs: 5000 },
          timeout: { minMs: 1000, maxMs: 30_000, initialMs: 10_000 },
        }),
      });
      this.#clients.set(origin.internalUrl, client);
    }
    return client;
  }
}
