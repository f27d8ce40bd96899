/**
 * The identity management plane on PostgreSQL: `openPostgresIdentity` gives the store and the
 * LISTEN/NOTIFY change bus, wired together; the migration list sits beside the SQLite one.
 */
export {
  PostgresChangeBus,
  type PostgresChangeBusOptions,
  type PostgresChangeBusStats,
} from './change-bus.ts';
export type { PostgresConnectionOptions } from './connection.ts';
export { appliedPostgresMigrations, applyPostgresMigrations } from './migrate.ts';
export { type PostgresMigration, postgresMigrations } from './migrations.ts';
export {
  defaultChangeChannel,
  type OpenPostgresIdentityOptions,
  openPostgresIdentity,
  type PostgresIdentity,
} from './open.ts';
export { PostgresIdentityStore, type PostgresIdentityStoreOptions } from './store.ts';
