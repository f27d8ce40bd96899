/**
 * GET /v1/usage — the calling account's metered usage (conversions, CPU time, bytes and pixels)
 * per minute, hour, day or month, including usage not yet flushed to the aggregate store.
 */
import type { FastifyInstance } from 'fastify';
import { PixelfleetError } from '../../errors/index.ts';
import { requireScope } from '../../identity/index.ts';
import { monthStart } from '../../usage/index.ts';
import type { ApiDependencies } from '../context.ts';

const granularities = new Set(['minute', 'hour', 'day', 'month']);

/** Accepts ISO 8601 or epoch milliseconds. */
function parseTime(name: string, value: string | undefined, fallback: number): number {
  if (value === undefined || value === '') return fallback;
  const ms = /^\d+$/.test(value) ? Number(value) : Date.parse(value);
  if (!Number.isFinite(ms)) {
    throw new PixelfleetError(
      'PF_ERR_INVALID_QUERY',
      `${name} must be an ISO 8601 time or epoch milliseconds, got ${JSON.stringify(value)}`,
      {
        extensions: { parameter: name },
      },
    );
  }
  return ms;
}

export function registerUsageRoutes(app: FastifyInstance, deps: ApiDependencies): void {
  app.get<{ Querystring: Record<string, string | undefined> }>('/v1/usage', async (request) => {
    requireScope(request.principal, 'usage:read');
    const query = request.query;
    for (const name of Object.keys(query)) {
      if (!['from', 'to', 'granularity'].includes(name)) {
        throw new PixelfleetError(
          'PF_ERR_INVALID_QUERY',
          `unknown parameter ${name}; use from, to and granularity`,
          {
            extensions: { parameter: name },
          },
        );
      }
    }
    const now = Date.now();
    const granularity = query.granularity ?? 'day';
    if (!granularities.has(granularity)) {
      throw new PixelfleetError('PF_ERR_INVALID_QUERY', 'granularity must be minute, hour, day or month', {
        extensions: { parameter: 'granularity' },
      });
    }
    const fromMs = parseTime('from', query.from, monthStart(now));
    const toMs = parseTime('to', query.to, now);
    return deps.usage.usageFor(request.principal.accountId, {
      fromMs,
      toMs,
      granularity: granularity as 'minute' | 'hour' | 'day' | 'month',
    });
  });
}
