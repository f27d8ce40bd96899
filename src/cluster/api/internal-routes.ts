/**
 * The api server's internal listener: what workers in other processes call instead of the
 * in-process JobHost (cluster-secret bearer on every route; the gateway never routes here).
 *
 *   GET  /internal/jobs/:id/input?location=memory|disk   the input bytes; 410 PF_ERR_INPUT_GONE
 *   POST /internal/jobs/:id/result                       output bytes + `Pixelfleet-Delivery`;
 *                                                        200 once the result is durable and metered
 *   POST /internal/jobs/:id/settled                      JSON SettlementReport
 *   GET  /internal/jobs/:id/result                       an async result held here (404 if not)
 *   GET  /internal/usage?account&from&to&granularity     usage this server metered
 *
 * The first three run once per conversion and are served on bare node:http (`RawRoutes`, see
 * cluster/http/raw-routes.ts); the other two on the listener's fastify instance.
 *
 * Idempotent by job id: a worker that retries a POST, or a redelivered job that posts again, is
 * metered once (the meter deduplicates by job id) and overwrites the same result file.
 */
import type { FastifyInstance } from 'fastify';
import type { BlobStore } from '../../api/blobs.ts';
import { PixelfleetError } from '../../errors/index.ts';
import { clusterSecretCheck, clusterSecretGuard } from '../../identity/index.ts';
import type { JobIdentity, LocalJobHost } from '../../service/job-host.ts';
import type { UsageGranularity } from '../../usage/types.ts';
import type { UsageMeter } from '../../usage/usage-meter.ts';
import type { RawRoutes } from '../http/raw-routes.ts';
import { decodeDelivery, deliveryHeader, type SettlementReport } from './delivery.ts';

export interface ApiInternalRoutesOptions {
  host: LocalJobHost;
  blobs: BlobStore;
  usage: UsageMeter;
  clusterSecret: string;
  /**
   * Called with the id of a job whose outcome reached this server (result or final failure):
   * the api role passes `RaftQueueClient.settled`, so a queue leader change does not make the
   * client enqueue a finished synchronous job again.
   */
  onSettled?: (jobId: string) => void;
}

const jobIdPattern = /^[A-Za-z0-9_-]{1,128}$/;
const granularities = new Set<UsageGranularity>(['minute', 'hour', 'day', 'month']);

function checkId(id: string): void {
  if (!jobIdPattern.test(id)) throw new PixelfleetError('PF_ERR_JOB_NOT_FOUND', `no job ${id}`);
}

/** A path's job id, percent-decoded and checked (404 for one that cannot be a job's). */
function jobId(encoded: string): string {
  let id: string;
  try {
    id = decodeURIComponent(encoded);
  } catch {
    throw new PixelfleetError('PF_ERR_JOB_NOT_FOUND', 'no such job');
  }
  checkId(id);
  return id;
}

function json(value: unknown) {
  return { contentType: 'application/json; charset=utf-8', body: JSON.stringify(value) };
}

function parseReport(body: Buffer): SettlementReport {
  let report: SettlementReport;
  try {
    report = JSON.parse(body.toString('utf8')) as SettlementReport;
  } catch (cause) {
    throw new PixelfleetError('PF_ERR_BAD_REQUEST', 'a settlement is a JSON object', { cause });
  }
  if (report?.payload?.kind !== 'resize' || !Number.isInteger(report.attempt)) {
    throw new PixelfleetError('PF_ERR_BAD_REQUEST', 'a settlement names the payload and attempt');
  }
  return report;
}

function errorFromReport(report: SettlementReport['error']): PixelfleetError | undefined {
  if (report === undefined) return undefined;
  try {
    return new PixelfleetError(report.code as never, report.message);
  } catch {
    return new PixelfleetError('PF_ERR_CONVERSION_FAILED', report.message);
  }
}

export function registerApiInternalRoutes(
  app: FastifyInstance,
  raw: RawRoutes,
  options: ApiInternalRoutesOptions,
): void {
  const { host, blobs, usage } = options;
  const guard = clusterSecretGuard(options.clusterSecret);
  const check = clusterSecretCheck(options.clusterSecret);

  // Once per conversion each: on bare node:http (raw-routes.ts says why).
  raw.add('GET', /^\/internal\/jobs\/(?<id>[^/]+)\/input$/, check, async (request) => {
    const id = jobId(request.params.id);
    const location = request.query.get('location') === 'memory' ? 'memory' : 'disk';
    const bytes = await blobs.getInput(id, location);
    if (bytes === undefined) {
      throw new PixelfleetError(
        'PF_ERR_INPUT_GONE',
        location === 'memory'
          ? `the input of job ${id} is no longer held: the synchronous request ended`
          : `the input of job ${id} is no longer on disk`,
      );
    }
    return { contentType: 'application/octet-stream', body: bytes };
  });

  raw.add('POST', /^\/internal\/jobs\/(?<id>[^/]+)\/result$/, check, async (request) => {
    const id = jobId(request.params.id);
    const descriptor = decodeDelivery(request.headers[deliveryHeader]);
    const job: JobIdentity = { id, attempt: descriptor.attempt };
    const result = { output: request.body, contentType: descriptor.contentType, outcome: descriptor.outcome };
    await host.deliverResult(job, descriptor.payload, result);
    // A sync waiter gets its image now: the bytes are here, and the worker acks next.
    if (descriptor.payload.mode === 'sync') {
      host.settled(job, descriptor.payload, { result });
      options.onSettled?.(id);
    }
    return json({ delivered: true });
  });

  raw.add('POST', /^\/internal\/jobs\/(?<id>[^/]+)\/settled$/, check, (request) => {
    const id = jobId(request.params.id);
    const report = parseReport(request.body);
    const job: JobIdentity = { id, attempt: report.attempt };
    if (report.result !== undefined) {
      // A sync success was settled when its result arrived (the waiter needed the bytes).
      if (report.payload.mode === 'sync') return json({ settled: true });
      const result = { output: Buffer.alloc(0), ...report.result };
      host.settled(job, report.payload, { result });
      return json({ settled: true });
    }
    const error =
      errorFromReport(report.error) ?? new PixelfleetError('PF_ERR_CONVERSION_FAILED', 'the job failed');
    host.settled(job, report.payload, { error });
    options.onSettled?.(id);
    return json({ settled: true });
  });

  app.get<{ Params: { id: string } }>(
    '/internal/jobs/:id/result',
    { onRequest: guard },
    async (request, reply) => {
      const { id } = request.params;
      checkId(id);
      const stored = await blobs.getResult(id);
      if (stored === undefined)
        throw new PixelfleetError('PF_ERR_JOB_NOT_FOUND', `no result of job ${id} here`);
      return reply.type(stored.contentType).send(stored.bytes);
    },
  );

  app.get<{ Querystring: { account?: string; from?: string; to?: string; granularity?: string } }>(
    '/internal/usage',
    { onRequest: guard },
    async (request) => {
      const { account, from, to, granularity = 'month' } = request.query;
      if (!account) throw new PixelfleetError('PF_ERR_INVALID_QUERY', 'account is required');
      if (!granularities.has(granularity as UsageGranularity)) {
        throw new PixelfleetError('PF_ERR_INVALID_QUERY', 'granularity must be minute, hour, day or month');
      }
      const fromMs = from === undefined ? 0 : Number(from);
      const toMs = to === undefined ? Date.now() + 60_000 : Number(to);
      if (!Number.isFinite(fromMs) || !Number.isFinite(toMs)) {
        throw new PixelfleetError('PF_ERR_INVALID_QUERY', 'from and to are epoch milliseconds');
      }
      return usage.usageFor(account, { fromMs, toMs, granularity: granularity as UsageGranularity });
    },
  );
}
