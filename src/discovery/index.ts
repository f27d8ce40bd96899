/**
 * Discovery: cluster membership by heartbeat. Members announce themselves to the registry
 * (hosted by the gateway's control listener) every interval; missed heartbeats make a member
 * suspect, then dead. Soft state: a restarted registry relearns everything within one interval.
 */
export { parseAnnouncement } from './announcement.ts';
export { hasClusterSecret } from './cluster-secret.ts';
export { HeartbeatClient, type HeartbeatClientOptions } from './heartbeat-client.ts';
export { MemberRegistry, type MemberRegistryOptions } from './member-registry.ts';
export { type RegistryRoutesOptions, registerRegistryRoutes } from './routes.ts';
export {
  type MemberAnnouncement,
  type MemberEvent,
  type MemberEventType,
  type MemberRole,
  type MemberStatus,
  type MemberView,
  memberRoles,
} from './types.ts';
