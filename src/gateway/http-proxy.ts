/**
 * The L7 front end: a plain `node:http` request handler (cheaper per request than a framework
 * for a proxy that never parses bodies) that buffers the request body (bounded), picks an
 * upstream, forwards over the upstream's keep-alive pool and streams the answer back.
 *
 * Retries go to another upstream, at most `maxAttempts` attempts in all, each retry paid from
 * the shared retry budget, and only when replaying cannot act twice:
 *  - a connection error that proves nothing was sent (ECONNREFUSED, connect timeout, DNS —
 *    the kit's `neverReachedServer`: undici raises these before writing a byte of the
 *    request) is retried for any request, POST included;
 *  - any other connection error, and 502/503/504 answers, are retried only for replayable
 *    requests (idempotent methods, or an Idempotency-Key header);
 *  - a timeout is not retried: the request's deadline is spent.
 * The request body is buffered whole before the first attempt so that a retry can replay it.
 */
import { randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Dispatcher } from 'undici';
import type { PixelfleetError } from '../errors/index.ts';
import { continueTrace, formatTraceparent } from '../observability/index.ts';
import { deadlineHeaders, neverReachedServer, readDeadline } from '../resilience/remote/index.ts';
import type { Attempt, Balancer } from './balancer.ts';
import { clientResponseHeaders, upstreamRequestHeaders } from './headers.ts';
import { statusClass } from './metrics.ts';
import { gatewayError, sendProblem } from './problem-response.ts';
import { apiKeyDigest, isReplayable } from './request-facts.ts';

export interface HttpProxySettings {
  /** Largest request body buffered for replay; larger ones get 413 (default 1 MiB + 64 KiB). */
  maxBodyBytes: number;
  /** Attempts in all, the first included (default 3: at most two retries). */
  maxAttempts: number;
  /** Deadline of a request that carries no Pixelfleet-Deadline header (default 30000 ms). */
  defaultDeadlineMs: number;
  /** Longest silence between two chunks of an upstream's response body (default 30000 ms). */
  bodyTimeoutMs: number;
  /** Whether requests carry an affinity key (consistent-hash only: saves hashing otherwise). */
  affinity: boolean;
}

const retryableStatuses = new Set([502, 503, 504]);
const requestIdPattern = /^[\x21-\x7e]{1,200}$/;

interface Exchange {
  requestId: string;
  traceId: string;
  method: string;
  path: string;
  attempts: number;
  upstream: string | undefined;
  bytesIn: number;
  bytesOut: number;
  status: number;
}

export function createHttpHandler(
  balancer: Balancer,
  settings: HttpProxySettings,
): (request: IncomingMessage, response: ServerResponse) => void {
  return (request, response) => {
    void handle(balancer, settings, request, response).catch((error: unknown) => {
      balancer.logger.error({ err: error }, 'gateway handler failed');
      if (!response.headersSent) response.writeHead(500).end();
      else response.destroy();
    });
  };
}

async function handle(
  balancer: Balancer,
  settings: HttpProxySettings,
  request: IncomingMessage,
  response: ServerResponse,
): Promise<void> {
  const started = performance.now();
  const incomingId = request.headers['x-request-id'];
  const requestId =
    typeof incomingId === 'string' && requestIdPattern.test(incomingId) ? incomingId : randomUUID();
  const trace = continueTrace(firstValue(request.headers.traceparent));
  const url = request.url ?? '/';
  const method = request.method ?? 'GET';
  const exchange: Exchange = {
    requestId,
    traceId: trace.traceId,
    method,
    // The query string may carry secrets or personal data; the log keeps the path only.
    path: url.split('?')[0] ?? '/',
    attempts: 0,
    upstream: undefined,
    bytesIn: 0,
    bytesOut: 0,
    status: 0,
  };
  response.once('close', () => {
    const durationMs = performance.now() - started;
    const status = response.writableFinished ? exchange.status : 499;
    balancer.metrics.requests.inc({
      upstream: exchange.upstream ?? 'none',
      status_class: statusClass(status),
    });
    balancer.metrics.requestDuration.observe({ status_class: statusClass(status) }, durationMs / 1000);
    balancer.logger.info(
      {
        requestId,
        traceId: exchange.traceId,
        method,
        path: exchange.path,
        upstream: exchange.upstream,
        status,
        durationMs: Math.round(durationMs * 10) / 10,
        attempts: exchange.attempts,
        bytesIn: exchange.bytesIn,
        bytesOut: exchange.bytesOut,
      },
      'gateway request',
    );
  });
  const problem = (error: PixelfleetError) => {
    exchange.status = sendProblem(response, error, { requestId, instance: exchange.path });
  };

  const body = await readBody(request, settings.maxBodyBytes);
  if (body === 'too-large') {
    // The rest of the body is not read: close the connection rather than drain it.
    response.setHeader('connection', 'close');
    problem(gatewayError('PF_ERR_BODY_TOO_LARGE', `the request body exceeds ${settings.maxBodyBytes} bytes`));
    return;
  }
  if (body === 'aborted') return;
  exchange.bytesIn = body?.length ?? 0;

  const now = Date.now();
  const deadlineAt = readDeadline(request.headers, now) ?? now + settings.defaultDeadlineMs;
  const headers = upstreamRequestHeaders(request.headers, {
    clientAddress: request.socket.remoteAddress,
    protocol: 'http',
    host: firstValue(request.headers.host),
  });
  headers['x-request-id'] = requestId;
  headers.traceparent = formatTraceparent(trace);
  const replayable = isReplayable(method, request.headers);
  const affinityKey = settings.affinity
    ? (apiKeyDigest(request.headers) ?? request.socket.remoteAddress ?? undefined)
    : undefined;

  const clientGone = new AbortController();
  response.once('close', () => {
    if (!response.writableFinished) clientGone.abort();
  });

  balancer.retryBudget.recordRequest();
  const tried = new Set<string>();
  let lastError: PixelfleetError | undefined;
  while (exchange.attempts < settings.maxAttempts) {
    const attempt = balancer.begin(tried, affinityKey);
    if ('kind' in attempt) {
      problem(lastError ?? noUpstreamError(attempt.reason));
      return;
    }
    exchange.attempts += 1;
    exchange.upstream = attempt.upstream.id;
    tried.add(attempt.upstream.id);
    const remainingMs = deadlineAt - Date.now();
    if (remainingMs <= 0) {
      attempt.settle('cancelled');
      problem(
        gatewayError('PF_ERR_UPSTREAM_TIMEOUT', 'the request deadline passed before an upstream answered'),
      );
      return;
    }

    let upstreamResponse: Dispatcher.ResponseData;
    try {
      upstreamResponse = await attempt.upstream.pool.request({
        path: url,
        method: method as Dispatcher.HttpMethod,
        headers: { ...headers, ...deadlineHeaders(deadlineAt, Date.now()) },
        // A buffer is replayable: a retry sends it again.
        body: body ?? null,
        signal: clientGone.signal,
        headersTimeout: remainingMs,
        bodyTimeout: settings.bodyTimeoutMs,
      });
    } catch (error) {
      if (clientGone.signal.aborted) {
        attempt.settle('cancelled');
        return;
      }
      attempt.settle('failure');
      const timedOut = errorCode(error) === 'UND_ERR_HEADERS_TIMEOUT';
      lastError = timedOut
        ? gatewayError(
            'PF_ERR_UPSTREAM_TIMEOUT',
            `upstream ${attempt.upstream.id} did not answer in time`,
            error,
            {
              upstream: attempt.upstream.id,
            },
          )
        : gatewayError(
            'PF_ERR_UPSTREAM_FAILED',
            `upstream ${attempt.upstream.id}: ${errorCode(error) ?? (error as Error).message}`,
            error,
            { upstream: attempt.upstream.id },
          );
      const safe = !timedOut && (replayable || neverReachedServer(error));
      if (
        safe &&
        exchange.attempts < settings.maxAttempts &&
        balancer.hasAlternative(tried) &&
        balancer.tryRetry()
      ) {
        continue;
      }
      problem(lastError);
      return;
    }

    const status = upstreamResponse.statusCode;
    const shed = status === 503 && upstreamResponse.headers['retry-after'] !== undefined;
    const failed = status >= 500 && !shed;
    if (
      retryableStatuses.has(status) &&
      replayable &&
      exchange.attempts < settings.maxAttempts &&
      balancer.hasAlternative(tried) &&
      balancer.tryRetry()
    ) {
      attempt.settle(shed ? 'shed' : 'failure');
      await upstreamResponse.body.dump().catch(() => undefined);
      continue;
    }
    await relay(
      attempt,
      upstreamResponse,
      response,
      exchange,
      shed ? 'shed' : failed ? 'failure' : 'success',
    );
    return;
  }
}

/** Streams the upstream's answer to the client and settles the attempt when it ends. */
function relay(
  attempt: Attempt,
  upstreamResponse: Dispatcher.ResponseData,
  response: ServerResponse,
  exchange: Exchange,
  outcome: 'success' | 'failure' | 'shed',
): Promise<void> {
  const headersLatency = performance.now() - attempt.startedAt;
  exchange.status = upstreamResponse.statusCode;
  const headers = clientResponseHeaders(upstreamResponse.headers);
  headers['x-request-id'] ??= exchange.requestId;
  response.writeHead(upstreamResponse.statusCode, headers);
  const body = upstreamResponse.body;
  return new Promise((resolve) => {
    let done = false;
    const finish = (result: 'success' | 'failure' | 'shed' | 'cancelled') => {
      if (done) return;
      done = true;
      attempt.settle(result, headersLatency);
      resolve();
    };
    body.on('data', (chunk: Buffer) => {
      exchange.bytesOut += chunk.length;
      if (!response.write(chunk)) body.pause();
    });
    response.on('drain', () => body.resume());
    body.once('end', () => {
      response.end();
      finish(outcome);
    });
    body.once('error', (error) => {
      // The status line is out; a broken body can only be signalled by cutting the connection.
      response.destroy(error);
      finish('failure');
    });
    response.once('close', () => {
      if (!response.writableFinished) {
        body.destroy();
        finish('cancelled');
      }
    });
  });
}

/**
 * The whole body as one buffer (undefined when empty), 'too-large' past the limit, 'aborted' when
 * the client left. One buffer is sent with the request head in one writev; handing undici the
 * chunks instead saves this copy but costs more: it writes an iterable a chunk at a time, awaiting
 * each write (a 250 KB body is a dozen socket writes; about a fifth of the gateway's CPU at
 * saturation).
 */
function readBody(
  request: IncomingMessage,
  limit: number,
): Promise<Buffer | undefined | 'too-large' | 'aborted'> {
  const declared = Number(request.headers['content-length']);
  if (Number.isFinite(declared) && declared > limit) return Promise.resolve('too-large');
  if (request.readableEnded) return Promise.resolve(undefined);
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const onData = (chunk: Buffer) => {
      size += chunk.length;
      if (size > limit) {
        cleanup();
        request.pause();
        resolve('too-large');
        return;
      }
      chunks.push(chunk);
    };
    const onEnd = () => {
      cleanup();
      resolve(size === 0 ? undefined : chunks.length === 1 ? chunks[0] : Buffer.concat(chunks, size));
    };
    const onAborted = () => {
      cleanup();
      resolve('aborted');
    };
    const cleanup = () => {
      request.off('data', onData);
      request.off('end', onEnd);
      request.off('error', onAborted);
      request.off('close', onClose);
    };
    const onClose = () => {
      if (!request.readableEnded) onAborted();
    };
    request.on('data', onData);
    request.once('end', onEnd);
    request.once('error', onAborted);
    request.once('close', onClose);
  });
}

function noUpstreamError(
  reason: 'no-upstreams' | 'all-tried' | 'at-capacity' | 'circuit-open',
): PixelfleetError {
  switch (reason) {
    case 'at-capacity':
      return gatewayError('PF_ERR_OVERLOADED', 'every upstream is at its in-flight limit');
    case 'circuit-open':
      return gatewayError('PF_ERR_NO_UPSTREAM', "every upstream's circuit breaker is open");
    default:
      return gatewayError('PF_ERR_NO_UPSTREAM', 'no upstream server is registered or reachable');
  }
}

function errorCode(error: unknown): string | undefined {
  let current = error;
  for (let depth = 0; depth < 5 && current; depth += 1) {
    const code = (current as { code?: unknown }).code;
    if (typeof code === 'string') return code;
    current = (current as { cause?: unknown }).cause;
  }
  return undefined;
}

function firstValue(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value[0] : value;
}
