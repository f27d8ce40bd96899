/**
 * Identity: the management plane (accounts, API keys, tiers, audit log, change events) and the
 * data plane's key verification (edge cache, refusal of locked-out clients, scope checks). See
 * types.ts for the store contract and edge-cache.ts for the data-plane guarantees.
 */

// The lockout is resilience/ratelimit's; re-exported because callers wire it into identity.
export {
  ProgressiveLockout,
  type ProgressiveLockoutLimiterOptions,
} from '../resilience/ratelimit/index.ts';
export {
  type AccountUsageSource,
  type AdminRoutesOptions,
  adminRoutes,
  registerAdminRoutes,
  type UsageGranularity,
  usageGranularities,
} from './admin-routes.ts';
export {
  type AdminToken,
  adminTokenEnv,
  adminTokenFile,
  adminTokenMatches,
  ensureAdminToken,
  readAdminToken,
} from './admin-token.ts';
export type { AccountView, AuditEntryView, IssuedKeyView, KeyView, TierView } from './admin-views.ts';
export {
  type ChangeBus,
  type ChangeEvent,
  type ChangeEventType,
  type ChangeListener,
  InProcessChangeBus,
  type InProcessChangeBusOptions,
  type Unsubscribe,
} from './change-bus.ts';
export {
  ChangeFeed,
  type ChangeFeedOptions,
  type ChangeFeedPage,
  type NumberedChange,
} from './change-feed.ts';
export {
  EdgeCache,
  type EdgeCacheEvent,
  type EdgeCacheOptions,
  type EdgeCacheStats,
  type UnauthorizedReason,
} from './edge-cache.ts';
export {
  clusterSecretCheck,
  clusterSecretGuard,
  type IdentityInternalRoutesOptions,
  registerIdentityInternalRoutes,
} from './internal-routes.ts';
export { generateKey, hashSecret, keyPrefix, keyStatus, parseKey, type RandomBytes } from './keys.ts';
export { lockedOutError, refuseIfLockedOut } from './locked-out-error.ts';
export {
  type CreateAccountInput,
  type IssuedKey,
  type IssueKeyInput,
  ManagementPlane,
  type ManagementPlaneOptions,
} from './management-plane.ts';
export { type Migration, migrations } from './migrations.ts';
export {
  type CredentialWire,
  credentialFromWire,
  credentialToWire,
  RemoteChangeBus,
  type RemoteChangeBusOptions,
  RemoteCredentialSource,
  type RemoteCredentialSourceOptions,
} from './remote/index.ts';
export {
  createRequestAuthenticator,
  hasScope,
  presentedKeyFromHeaders,
  type RequestAuthenticator,
  type RequestAuthenticatorOptions,
  requireScope,
} from './request-authenticator.ts';
export { openIdentityStore, SqliteIdentityStore, type SqliteIdentityStoreOptions } from './sqlite-store.ts';
export { builtInTierNames, initialTiers, tierLimitFields } from './tiers.ts';
export {
  type Account,
  type AccountQuery,
  type AccountStatus,
  type ApiKey,
  type AuditContext,
  type AuditEntry,
  type AuditQuery,
  type Credential,
  type CredentialSource,
  defaultScopes,
  type IdentityStore,
  type KeyStatus,
  type NewAccount,
  type NewApiKey,
  type Principal,
  type Scope,
  scopes,
  type Tier,
  type TierLimits,
} from './types.ts';
