/**
 * The identity role: the identity store (embedded SQLite, or PostgreSQL with --postgres) and
 * management plane, the admin API on its own listener (as embedded), and the internal API
 * data-plane servers read keys, tiers and the change feed from. The change feed follows the
 * store's change bus; when that bus may have lost events (PostgreSQL listener reconnected) the
 * feed starts over, so every api server sees a gap and expires its edge cache. Usage reports on the admin API add up what every api server metered: the
 * identity role asks each api member the registry knows (cluster-wide usage comes with the
 * replicated usage store later).
 */
import { join } from 'node:path';
import Fastify from 'fastify';
import { registerProblemHandlers } from '../../api/index.ts';
import type { MemberView } from '../../discovery/index.ts';
import {
  type AccountUsageSource,
  ensureAdminToken,
  registerAdminRoutes,
  registerIdentityInternalRoutes,
} from '../../identity/index.ts';
import { addTotals, emptyTotals } from '../../usage/index.ts';
import type { UsageBucket, UsageReport } from '../../usage/types.ts';
import { openClusterIdentityStore } from '../engines/identity.ts';
import { InternalHttpClient } from '../http/index.ts';
import { ResyncingChangeFeed } from '../identity/resyncing-feed.ts';
import { listenUrl } from './listen-url.ts';
import type { NodeContext, RoleHandle } from './types.ts';

export interface IdentityRoleHandle extends RoleHandle {
  adminUrl: string;
  adminToken: string;
  /** The registry's view of the members (fed by this role's heartbeat answers). */
  observeMembers(members: MemberView[]): void;
}

export async function startIdentityRole(context: NodeContext): Promise<IdentityRoleHandle> {
  const { config, logger } = context;
  const dataDir = join(context.dataDir, 'identity');
  const admin = ensureAdminToken(dataDir, context.env);
  const feed = new ResyncingChangeFeed();
  const identity = await openClusterIdentityStore(context, {
    dataDir,
    onResync: () => {
      logger.warn('identity change bus reconnected: events may be lost, api servers expire their key caches');
      feed.resync();
    },
  });
  const { store, bus } = identity;
  bus.subscribe((event) => feed.append(event));
  registerIdentityInternalRoutes(context.internalApp, {
    source: identity.source,
    feed,
    clusterSecret: context.clusterSecret,
  });

  let apiMembers: MemberView[] = [];
  const clients = new Map<string, InternalHttpClient>();
  const clientFor = (url: string) => {
    let client = clients.get(url);
    if (client === undefined) {
      client = new InternalHttpClient({
        origin: url,
        clusterSecret: context.clusterSecret,
        dependency: 'api',
        connections: 2,
        policy: context.remotePolicy({
          dependency: 'api',
          timeout: { minMs: 500, maxMs: 10_000, initialMs: 5000 },
        }),
      });
      clients.set(url, client);
    }
    return client;
  };
  const clusterUsage: AccountUsageSource = {
    async accountUsage(accountId, from, to, granularity) {
      const query = new URLSearchParams({
        account: accountId,
        from: String(from),
        to: String(to),
        granularity,
      });
      const members = apiMembers.filter((member) => member.internalUrl !== undefined);
      const answers = await Promise.allSettled(
        members.map(async (member) => {
          const answer = await clientFor(member.internalUrl!).call({
            method: 'GET',
            path: `/internal/usage?${query}`,
            idempotent: true,
          });
          return JSON.parse(answer.body.toString('utf8')) as UsageReport;
        }),
      );
      const reports = answers.flatMap((answer) => (answer.status === 'fulfilled' ? [answer.value] : []));
      const missing = members
        .filter((_, index) => answers[index]!.status === 'rejected')
        .map((member) => member.id);
      return { ...mergeUsageReports(accountId, reports), servers: members.length, unreachable: missing };
    },
  };

  const adminApp = Fastify({ logger: false });
  registerProblemHandlers(adminApp);
  try {
    await registerAdminRoutes(adminApp, { store, bus, token: admin.token, usage: clusterUsage });
    await adminApp.listen({ host: config.adminHost, port: config.adminPort });
  } catch (error) {
    await adminApp.close().catch(() => {});
    await identity.close();
    throw error;
  }
  const adminUrl = listenUrl(config.adminHost, adminApp.server.address());
  logger.info(
    {
      adminUrl,
      adminToken: admin.source === 'env' ? 'from PIXELFLEET_ADMIN_TOKEN' : admin.path,
      store: identity.engine,
    },
    'identity role started',
  );

  return {
    name: 'identity',
    adminUrl,
    adminToken: admin.token,
    ready: () => true,
    checks: () => ({
      identityFeedSeq: feed.lastSeq,
      identityFeedWaiting: feed.waiting,
      identityFeedResyncs: feed.resyncs,
      ...identity.checks(),
    }),
    member: () => ({ role: 'identity', internalUrl: context.internalUrl() }),
    urls: { admin: adminUrl },
    observeMembers(members) {
      apiMembers = members.filter((member) => member.role === 'api' && member.status !== 'dead');
    },
    async close() {
      await adminApp.close();
      await Promise.all([...clients.values()].map((client) => client.close()));
      await identity.close();
    },
  };
}

/** Sums per-server usage reports of one account: totals, and buckets by start. */
export function mergeUsageReports(
  accountId: string,
  reports: UsageReport[],
): Omit<UsageReport, 'from' | 'to' | 'granularity'> & Partial<UsageReport> {
  const buckets = new Map<string, UsageBucket>();
  const totals = emptyTotals();
  for (const report of reports) {
    addTotals(totals, report.totals);
    for (const bucket of report.buckets) {
      const into = buckets.get(bucket.start) ?? { start: bucket.start, ...emptyTotals() };
      const { start: _start, ...sums } = bucket;
      addTotals(into, sums);
      buckets.set(bucket.start, into);
    }
  }
  const first = reports[0];
  return {
    accountId,
    ...(first === undefined ? {} : { from: first.from, to: first.to, granularity: first.granularity }),
    buckets: [...buckets.values()].sort((a, b) => a.start.localeCompare(b.start)),
    totals,
  };
}
