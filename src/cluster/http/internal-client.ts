/**
 * The HTTP client for calls between cluster roles (api → identity, worker → api, api → api):
 * one pooled undici connection pool per peer, every call through that peer's RemotePolicy
 * (bulkhead, breaker, per-attempt timeout with the deadline header, retries under a budget),
 * and the cluster secret as the bearer token.
 *
 * A call resolves with the answer for 2xx, 304, 404 and 410 (answers the caller interprets) and
 * rejects otherwise with the kit's `errorFromResponse` (the peer's own code when its problem
 * document names one), so the policy's classifiers see which failures are transient.
 */
import { Pool } from 'undici';
import { errorFromResponse, type RemotePolicy } from '../../resilience/remote/index.ts';

export interface InternalCall {
  method: 'GET' | 'POST' | 'DELETE';
  /** Path and query, e.g. `/internal/jobs/abc/input`. */
  path: string;
  body?: Buffer | string;
  headers?: Record<string, string>;
  /** Safe to repeat after the request may have reached the peer. */
  idempotent: boolean;
  /** Absolute epoch-ms deadline of the whole call, retries included. */
  deadlineAt?: number;
  signal?: AbortSignal;
}

export interface InternalAnswer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: Buffer;
}

export interface InternalHttpClientOptions {
  /** Base URL of the peer, e.g. http://127.0.0.1:7301 */
  origin: string;
  clusterSecret: string;
  policy: RemotePolicy;
  /** The peer's name in errors and logs (e.g. 'identity', 'api'). */
  dependency: string;
  /** Pooled connections to this peer (default 16): the per-dependency connection bulkhead. */
  connections?: number;
}

const answerStatuses = new Set([304, 404, 410]);

export class InternalHttpClient {
  readonly origin: string;
  readonly policy: RemotePolicy;
  readonly #pool: Pool;
  readonly #authorization: string;
  readonly #dependency: string;

  constructor(options: InternalHttpClientOptions) {
    const url = new URL(options.origin);
    this.origin = url.origin;
    this.policy = options.policy;
    this.#dependency = options.dependency;
    this.#authorization = `Bearer ${options.clusterSecret}`;
    this.#pool = new Pool(url.origin, {
      connections: options.connections ?? 16,
      keepAliveTimeout: 10_000,
      // The policy's per-attempt timeout aborts the request; these are only backstops.
      headersTimeout: 60_000,
      bodyTimeout: 60_000,
    });
  }

  call(call: InternalCall): Promise<InternalAnswer> {
    return this.policy.execute(
      async (context) => {
        const response = await this.#pool.request({
          method: call.method,
          path: call.path,
          headers: { ...call.headers, ...context.headers, authorization: this.#authorization },
          ...(call.body === undefined ? {} : { body: call.body }),
          signal: context.signal,
        });
        const body = Buffer.from(await response.body.arrayBuffer());
        if (
          (response.statusCode >= 200 && response.statusCode < 300) ||
          answerStatuses.has(response.statusCode)
        ) {
          return { status: response.statusCode, headers: response.headers, body };
        }
        throw errorFromResponse(this.#dependency, response.statusCode, parseProblem(body));
      },
      {
        idempotent: call.idempotent,
        ...(call.deadlineAt === undefined ? {} : { deadlineAt: call.deadlineAt }),
        ...(call.signal === undefined ? {} : { signal: call.signal }),
      },
    );
  }

  close(): Promise<void> {
    return this.#pool.close();
  }
}

function parseProblem(body: Buffer): unknown {
  try {
    return JSON.parse(body.toString('utf8'));
  } catch {
    return undefined;
  }
}
