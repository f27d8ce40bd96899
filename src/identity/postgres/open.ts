/**
 * `openPostgresIdentity`: the management plane's store and change bus on one PostgreSQL, wired
 * the way the cluster runs them. The store announces each change inside its write transaction on
 * the channel the bus listens to, so an event reaches every api server iff its write committed.
 */

import { PostgresChangeBus, type PostgresChangeBusOptions } from './change-bus.ts';
import { identityError } from './connection.ts';
import { PostgresIdentityStore, type PostgresIdentityStoreOptions } from './store.ts';

export interface OpenPostgresIdentityOptions
  extends Omit<PostgresIdentityStoreOptions, 'changeChannel'>,
    Pick<PostgresChangeBusOptions, 'heartbeatIntervalMs' | 'maxReconnectDelayMs' | 'onResync' | 'onError'> {
  /**
   * LISTEN/NOTIFY channel of the change events. Default `pixelfleet_identity`, suffixed with the
   * schema when one is set, so installations sharing a database do not hear each other.
   */
  channel?: string;
}

export interface PostgresIdentity {
  store: PostgresIdentityStore;
  bus: PostgresChangeBus;
  /** Stops the listener, then drains and closes the pool. Idempotent. */
  close(): Promise<void>;
}

export function defaultChangeChannel(schema: string | undefined): string {
  return schema === undefined ? 'pixelfleet_identity' : `pixelfleet_identity_${schema}`.slice(0, 63);
}

/**
 * Migrates (once across concurrent starters), then starts listening. Rejects with
 * PF_ERR_MANAGEMENT_UNAVAILABLE when PostgreSQL is unreachable within the connect timeout,
 * PF_ERR_STORAGE_CORRUPT for a schema newer than this build, and RangeError for bad options.
 */
export async function openPostgresIdentity(options: OpenPostgresIdentityOptions): Promise<PostgresIdentity> {
  const channel = options.channel ?? defaultChangeChannel(options.schema);
  const bus = new PostgresChangeBus({
    url: options.url,
    schema: options.schema,
    connectTimeoutMs: options.connectTimeoutMs,
    queryTimeoutMs: options.queryTimeoutMs,
    applicationName: options.applicationName,
    channel,
    storeAnnounces: true,
    heartbeatIntervalMs: options.heartbeatIntervalMs,
    maxReconnectDelayMs: options.maxReconnectDelayMs,
    onResync: options.onResync,
    onError: options.onError,
  });
  const store = await PostgresIdentityStore.open({ ...options, changeChannel: channel });
  try {
    await bus.start();
  } catch (cause) {
    await Promise.all([bus.close(), store.close()]);
    throw identityError(cause, 'identity change bus');
  }
  let closed: Promise<void> | undefined;
  return {
    store,
    bus,
    close() {
      closed ??= (async () => {
        await bus.close();
        await store.close();
      })();
      return closed;
    },
  };
}
