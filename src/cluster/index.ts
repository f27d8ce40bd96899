/**
 * The cluster: the embedded service's roles as separate processes. `startClusterNode` runs any
 * set of roles in one process (`pixelfleet node`); the supervisor runs a local region of them
 * (`pixelfleet cluster`). The internal HTTP seams live in `api/` (api server side), `worker/`
 * (RemoteJobHost) and `http/` (the pooled, policy-wrapped client).
 */
export { type DeliveryDescriptor, deliveryHeader, type SettlementReport } from './api/delivery.ts';
export { type ApiInternalRoutesOptions, registerApiInternalRoutes } from './api/internal-routes.ts';
export {
  type InternalAnswer,
  type InternalCall,
  InternalHttpClient,
  type InternalHttpClientOptions,
} from './http/index.ts';
export { type ClusterNode, type StartNodeOptions, startClusterNode } from './node.ts';
export { mergeUsageReports } from './roles/identity-role.ts';
export type { RoleName } from './roles/types.ts';
export { RemoteJobHost, type RemoteJobHostOptions } from './worker/remote-job-host.ts';
