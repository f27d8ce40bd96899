/**
 * The identity role's store: the embedded SQLite one under `<dataDir>/identity`, or an existing
 * PostgreSQL (`--postgres postgres://...`). On PostgreSQL the store announces each change with
 * NOTIFY inside its write transaction and the LISTEN bus hears it — from any identity process
 * sharing the database — and after the listener reconnects `onResync` says events may have been
 * lost. Data-plane reads go through a circuit breaker (guarded-source.ts). The PostgreSQL module
 * is imported only here, only when asked for, so nothing else loads `pg`.
 */
import {
  type ChangeBus,
  type CredentialSource,
  type IdentityStore,
  InProcessChangeBus,
  openIdentityStore,
} from '../../identity/index.ts';
import { GuardedCredentialSource } from '../identity/guarded-source.ts';
import type { NodeContext } from '../roles/types.ts';

export interface ClusterIdentityStore {
  engine: 'sqlite' | 'postgres';
  /** The management plane's store (admin API). */
  store: IdentityStore;
  /** What the internal routes answer data-plane reads from. */
  source: CredentialSource;
  /** Change events after each committed write. */
  bus: ChangeBus;
  checks(): Record<string, unknown>;
  close(): Promise<void>;
}

export interface OpenClusterIdentityStoreOptions {
  dataDir: string;
  /** The bus may have missed events (PostgreSQL listener reconnected). */
  onResync: () => void;
}

export async function openClusterIdentityStore(
  context: NodeContext,
  options: OpenClusterIdentityStoreOptions,
): Promise<ClusterIdentityStore> {
  const { config, logger } = context;
  if (config.postgres === '') {
    const store = await openIdentityStore(options.dataDir);
    return {
      engine: 'sqlite',
      store,
      source: store,
      bus: new InProcessChangeBus(),
      checks: () => ({ identityStore: 'sqlite' }),
      close: () => store.close(),
    };
  }
  const { openPostgresIdentity } = await import('../../identity/postgres/index.ts');
  let lastWarning = Number.NEGATIVE_INFINITY;
  const identity = await openPostgresIdentity({
    url: config.postgres,
    applicationName: `pixelfleet-${context.nodeId}`.slice(0, 63),
    onResync: options.onResync,
    onError: (error) => {
      // An outage fails every heartbeat and reconnect: one line a second is enough.
      const now = Date.now();
      if (now - lastWarning < 1000) return;
      lastWarning = now;
      logger.warn({ err: error }, 'identity change bus (PostgreSQL LISTEN) failed');
    },
  });
  const source = new GuardedCredentialSource({ source: identity.store, metrics: context.remoteMetrics });
  return {
    engine: 'postgres',
    store: identity.store,
    source,
    bus: identity.bus,
    checks: () => ({
      identityStore: 'postgres',
      identityStoreBreaker: source.breaker.state,
      identityListening: identity.bus.stats().listening,
    }),
    close: () => identity.close(),
  };
}
