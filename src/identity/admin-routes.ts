/**
 * The admin HTTP API, as a fastify plugin for the private admin listener. Every route needs
 * `Authorization: Bearer <admin token>` (compared in constant time); every change is applied
 * through the management plane, which audits it with the caller (`admin`, or
 * `admin:<name>` when the `X-Pixelfleet-Operator` header names who is at the keyboard) and the
 * request's address. Bodies are validated by JSON schemas that reject unknown fields (a typo in
 * `tiers set` must fail, not be ignored). Errors are thrown as PixelfleetError for the server's
 * problem+json handler.
 *
 *   GET   /admin/accounts                      ?status&tier&after&limit
 *   POST  /admin/accounts                      {name, email?, tier?}                → 201
 *   GET   /admin/accounts/:accountId           account with its keys
 *   PATCH /admin/accounts/:accountId           {tier}
 *   POST  /admin/accounts/:accountId/close     {reason?}   (revokes every key)
 *   GET   /admin/accounts/:accountId/keys
 *   POST  /admin/accounts/:accountId/keys      {scopes?, name?, expiresAt? | expiresInSeconds?} → 201, the key once
 *   GET   /admin/accounts/:accountId/usage     ?from&to&granularity
 *   GET   /admin/keys/:keyId
 *   POST  /admin/keys/:keyId/revoke            {reason?}
 *   GET   /admin/tiers
 *   PUT   /admin/tiers/:name                   partial limits (all of them to create a tier)
 *   GET   /admin/audit                         ?actor&action&target&since&until&before&limit
 */
import type {
  FastifyInstance,
  FastifyPluginAsync,
  FastifyRequest,
  FastifySchemaValidationError,
} from 'fastify';
import { PixelfleetError } from '../errors/index.ts';
import type { ProgressiveLockout } from '../resilience/ratelimit/index.ts';
import { adminTokenMatches } from './admin-token.ts';
import { accountView, auditEntryView, keyView, tierView } from './admin-views.ts';
import type { ChangeBus } from './change-bus.ts';
import type { RandomBytes } from './keys.ts';
import { refuseIfLockedOut } from './locked-out-error.ts';
import { ManagementPlane } from './management-plane.ts';
import type { tierLimitFields } from './tiers.ts';
import {
  type AccountStatus,
  type AuditContext,
  type IdentityStore,
  scopes,
  type TierLimits,
} from './types.ts';

export const usageGranularities = ['hour', 'day', 'month'] as const;
export type UsageGranularity = (typeof usageGranularities)[number];

/** What the usage route delegates to (the usage store, wired in by the server). */
export interface AccountUsageSource {
  /** `from` inclusive, `to` exclusive, epoch ms. The result is sent as JSON as is. */
  accountUsage(accountId: string, from: number, to: number, granularity: UsageGranularity): Promise<unknown>;
}

export interface AdminRoutesOptions {
  store: IdentityStore;
  bus: ChangeBus;
  /** The admin bearer token (see `ensureAdminToken`). */
  token: string;
  usage?: AccountUsageSource;
  /** Limits repeated bad tokens per client address (429 with Retry-After). */
  lockout?: ProgressiveLockout;
  clock?: () => number;
  random?: RandomBytes;
  maxLiveKeysPerAccount?: number;
  /** Path prefix of every route (default `/admin`). */
  prefix?: string;
}

const operatorHeader = 'x-pixelfleet-operator';
const operatorPattern = /^[\w.@-]{1,64}$/;

function invalid(option: string, detail: string): PixelfleetError {
  return new PixelfleetError('PF_ERR_INVALID_OPTION', detail, { extensions: { option } });
}

function parseTime(option: string, value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  const at = /^\d+$/.test(value) ? Number(value) : Date.parse(value);
  if (!Number.isFinite(at))
    throw invalid(option, `${option} must be an ISO 8601 time or epoch milliseconds, got ${value}`);
  return at;
}

function formatValidationErrors(errors: FastifySchemaValidationError[], dataVar: string): Error {
  const error = errors[0];
  if (error === undefined) return new PixelfleetError('PF_ERR_BAD_REQUEST', `invalid ${dataVar}`);
  const where = `${dataVar}${error.instancePath.replaceAll('/', '.')}`;
  // Ajv reports a refused property name on the error itself, beside the enum that refused it.
  const propertyName = (error as { propertyName?: string }).propertyName ?? error.params.propertyName;
  if (propertyName !== undefined || error.schemaPath.includes('/propertyNames')) {
    const name = String(propertyName ?? '');
    const allowedNames = errors.find((candidate) => candidate.params.allowedValues !== undefined)?.params
      .allowedValues as unknown[] | undefined;
    return invalid(
      name,
      `${dataVar} has an unknown field ${JSON.stringify(name)}${allowedNames ? ` (known: ${allowedNames.join(', ')})` : ''}`,
    );
  }
  const allowed = error.params.allowedValues as unknown[] | undefined;
  const detail = allowed === undefined ? error.message : `${error.message}: ${allowed.join(', ')}`;
  return invalid(error.instancePath.split('/').pop() || dataVar, `${where} ${detail}`);
}

/** A schema object whose property names are limited to its properties (without stripping). */
function closedObject(properties: Record<string, unknown>, required: string[] = []) {
  return { type: 'object', properties, required, propertyNames: { enum: Object.keys(properties) } };
}

const accountIdParams = closedObject({ accountId: { type: 'string', minLength: 1, maxLength: 64 } }, [
  'accountId',
]);
const keyIdParams = closedObject({ keyId: { type: 'string', minLength: 1, maxLength: 64 } }, ['keyId']);
const reasonBody = closedObject({ reason: { type: ['string', 'null'], maxLength: 500 } });
const limitQuery = { type: 'integer', minimum: 1, maximum: 1000 };

const tierProperties: Record<(typeof tierLimitFields)[number], unknown> = {
  enabled: { type: 'boolean' },
  ratePerSecond: { type: 'number', exclusiveMinimum: 0 },
  burst: { type: 'integer', minimum: 1 },
  concurrentJobs: { type: 'integer', minimum: 1 },
  maxInputBytes: { type: 'integer', minimum: 1 },
  maxInputPixels: { type: 'integer', minimum: 1 },
  monthlyConversions: { type: ['integer', 'null'], minimum: 0 },
  priceMicroUsdPerCpuSecond: { type: 'integer', minimum: 0 },
  priceMicroUsdPerGigabyteIn: { type: 'integer', minimum: 0 },
  priceMicroUsdPerGigabyteOut: { type: 'integer', minimum: 0 },
};

export const adminRoutes: FastifyPluginAsync<AdminRoutesOptions> = async (app, options) => {
  if (typeof options.token !== 'string' || options.token.length < 16) {
    throw new RangeError('the admin token must be a string of at least 16 characters');
  }
  const clock = options.clock ?? Date.now;
  const management = new ManagementPlane({
    store: options.store,
    bus: options.bus,
    clock,
    ...(options.random === undefined ? {} : { random: options.random }),
    ...(options.maxLiveKeysPerAccount === undefined
      ? {}
      : { maxLiveKeysPerAccount: options.maxLiveKeysPerAccount }),
  });
  const { lockout } = options;

  app.setSchemaErrorFormatter(formatValidationErrors);

  app.addHook('onRequest', async (request) => {
    refuseIfLockedOut(lockout, request.ip);
    const match = /^Bearer\s+(\S+)\s*$/i.exec(request.headers.authorization ?? '');
    if (match === null || !adminTokenMatches(match[1]!, options.token)) {
      lockout?.recordFailure(request.ip);
      throw new PixelfleetError(
        'PF_ERR_ADMIN_UNAUTHORIZED',
        match === null
          ? 'the admin API needs Authorization: Bearer <admin token> (PIXELFLEET_ADMIN_TOKEN or <data dir>/admin-token)'
          : 'the admin token is wrong',
      );
    }
    // A good token does not forgive earlier bad ones (the lockout has no success reset, so one
    // leaked credential cannot be used to wipe a guesser's count); quiet time does.
  });

  function auditContext(request: FastifyRequest): AuditContext {
    const operator = request.headers[operatorHeader];
    const name = typeof operator === 'string' && operatorPattern.test(operator) ? operator : undefined;
    return { actor: name === undefined ? 'admin' : `admin:${name}`, sourceIp: request.ip };
  }

  app.get<{ Querystring: { status?: AccountStatus; tier?: string; after?: string; limit?: number } }>(
    '/accounts',
    {
      schema: {
        querystring: closedObject({
          status: { type: 'string', enum: ['active', 'closed'] },
          tier: { type: 'string', maxLength: 32 },
          after: { type: 'string', maxLength: 64 },
          limit: limitQuery,
        }),
      },
    },
    async (request) => {
      const accounts = await management.listAccounts(request.query);
      return { accounts: accounts.map(accountView) };
    },
  );

  app.post<{ Body: { name: string; email?: string | null; tier?: string } }>(
    '/accounts',
    {
      schema: {
        body: closedObject(
          {
            name: { type: 'string', minLength: 1, maxLength: 200 },
            email: { type: ['string', 'null'], maxLength: 320 },
            tier: { type: 'string', minLength: 1, maxLength: 32 },
          },
          ['name'],
        ),
      },
    },
    async (request, reply) => {
      const account = await management.createAccount(request.body, auditContext(request));
      reply.code(201);
      return { account: accountView(account) };
    },
  );

  app.get<{ Params: { accountId: string } }>(
    '/accounts/:accountId',
    { schema: { params: accountIdParams } },
    async (request) => {
      const account = await management.getAccount(request.params.accountId);
      const keys = await management.listKeys(account.id);
      const now = clock();
      return { account: accountView(account), keys: keys.map((key) => keyView(key, now)) };
    },
  );

  app.patch<{ Params: { accountId: string }; Body: { tier: string } }>(
    '/accounts/:accountId',
    {
      schema: {
        params: accountIdParams,
        body: closedObject({ tier: { type: 'string', minLength: 1, maxLength: 32 } }, ['tier']),
      },
    },
    async (request) => {
      const account = await management.changeAccountTier(
        request.params.accountId,
        request.body.tier,
        auditContext(request),
      );
      return { account: accountView(account) };
    },
  );

  app.post<{ Params: { accountId: string }; Body: { reason?: string | null } | undefined }>(
    '/accounts/:accountId/close',
    { schema: { params: accountIdParams, body: reasonBody } },
    async (request) => {
      const account = await management.closeAccount(
        request.params.accountId,
        request.body?.reason ?? null,
        auditContext(request),
      );
      return { account: accountView(account) };
    },
  );

  app.get<{ Params: { accountId: string } }>(
    '/accounts/:accountId/keys',
    { schema: { params: accountIdParams } },
    async (request) => {
      const keys = await management.listKeys(request.params.accountId);
      const now = clock();
      return { keys: keys.map((key) => keyView(key, now)) };
    },
  );

  app.post<{
    Params: { accountId: string };
    Body:
      | { scopes?: string[]; name?: string | null; expiresAt?: string | null; expiresInSeconds?: number }
      | undefined;
  }>(
    '/accounts/:accountId/keys',
    {
      schema: {
        params: accountIdParams,
        body: closedObject({
          scopes: {
            type: 'array',
            items: { type: 'string', enum: [...scopes] },
            minItems: 1,
            uniqueItems: true,
          },
          name: { type: ['string', 'null'], maxLength: 200 },
          expiresAt: { type: ['string', 'null'] },
          expiresInSeconds: { type: 'integer', minimum: 1 },
        }),
      },
    },
    async (request, reply) => {
      const body = request.body ?? {};
      if (body.expiresAt != null && body.expiresInSeconds !== undefined) {
        throw invalid('expiresAt', 'give expiresAt or expiresInSeconds, not both');
      }
      const expiresAt =
        body.expiresInSeconds !== undefined
          ? clock() + body.expiresInSeconds * 1000
          : (parseTime('expiresAt', body.expiresAt ?? undefined) ?? null);
      const issued = await management.issueKey(
        request.params.accountId,
        { ...(body.scopes === undefined ? {} : { scopes: body.scopes }), name: body.name ?? null, expiresAt },
        auditContext(request),
      );
      reply.code(201).header('cache-control', 'no-store');
      return { key: keyView(issued.key, clock()), apiKey: issued.presentedKey };
    },
  );

  app.get<{
    Params: { accountId: string };
    Querystring: { from?: string; to?: string; granularity?: (typeof usageGranularities)[number] };
  }>(
    '/accounts/:accountId/usage',
    {
      schema: {
        params: accountIdParams,
        querystring: closedObject({
          from: { type: 'string' },
          to: { type: 'string' },
          granularity: { type: 'string', enum: [...usageGranularities] },
        }),
      },
    },
    async (request) => {
      if (options.usage === undefined) {
        throw new PixelfleetError(
          'PF_ERR_USAGE_NOT_CONFIGURED',
          'this server has no usage store wired into the admin API; usage cannot be reported here',
        );
      }
      const account = await management.getAccount(request.params.accountId);
      const now = clock();
      const startOfMonth = new Date(now);
      const defaultFrom = Date.UTC(startOfMonth.getUTCFullYear(), startOfMonth.getUTCMonth(), 1);
      const from = parseTime('from', request.query.from) ?? defaultFrom;
      const to = parseTime('to', request.query.to) ?? now;
      if (from >= to) throw invalid('from', 'from must be before to');
      const granularity = request.query.granularity ?? 'day';
      const usage = await options.usage.accountUsage(account.id, from, to, granularity);
      return {
        accountId: account.id,
        from: new Date(from).toISOString(),
        to: new Date(to).toISOString(),
        granularity,
        usage,
      };
    },
  );

  app.get<{ Params: { keyId: string } }>(
    '/keys/:keyId',
    { schema: { params: keyIdParams } },
    async (request) => {
      return { key: keyView(await management.getKey(request.params.keyId), clock()) };
    },
  );

  app.post<{ Params: { keyId: string }; Body: { reason?: string | null } | undefined }>(
    '/keys/:keyId/revoke',
    { schema: { params: keyIdParams, body: reasonBody } },
    async (request) => {
      const key = await management.revokeKey(
        request.params.keyId,
        request.body?.reason ?? null,
        auditContext(request),
      );
      return { key: keyView(key, clock()) };
    },
  );

  app.get('/tiers', async () => {
    const tiers = await management.listTiers();
    return { tiers: tiers.map(tierView) };
  });

  app.put<{ Params: { name: string }; Body: Partial<TierLimits> }>(
    '/tiers/:name',
    {
      schema: {
        params: closedObject({ name: { type: 'string', minLength: 1, maxLength: 32 } }, ['name']),
        body: { ...closedObject(tierProperties), minProperties: 1 },
      },
    },
    async (request) => {
      const tier = await management.setTier(request.params.name, request.body, auditContext(request));
      return { tier: tierView(tier) };
    },
  );

  app.get<{
    Querystring: {
      actor?: string;
      action?: string;
      target?: string;
      since?: string;
      until?: string;
      before?: number;
      limit?: number;
    };
  }>(
    '/audit',
    {
      schema: {
        querystring: closedObject({
          actor: { type: 'string', maxLength: 100 },
          action: { type: 'string', maxLength: 100 },
          target: { type: 'string', maxLength: 200 },
          since: { type: 'string' },
          until: { type: 'string' },
          before: { type: 'integer', minimum: 1 },
          limit: limitQuery,
        }),
      },
    },
    async (request) => {
      const { since, until, ...rest } = request.query;
      const limit = rest.limit ?? 100;
      const entries = await management.queryAudit({
        ...rest,
        limit,
        ...(since === undefined ? {} : { since: parseTime('since', since)! }),
        ...(until === undefined ? {} : { until: parseTime('until', until)! }),
      });
      const last = entries.at(-1);
      return {
        entries: entries.map(auditEntryView),
        // Pass as `before` to get the next (older) page; null when this page is the last.
        nextBefore: entries.length === limit && last !== undefined ? last.id : null,
      };
    },
  );
};

/** Registers the admin routes under `options.prefix` (default `/admin`) in their own context. */
export async function registerAdminRoutes(app: FastifyInstance, options: AdminRoutesOptions): Promise<void> {
  await app.register(adminRoutes, { ...options, prefix: options.prefix ?? '/admin' });
}
