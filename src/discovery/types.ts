/**
 * Membership vocabulary of the cluster contract: what a member announces in each heartbeat
 * and what the registry reports back about it.
 */

export type MemberRole = 'api' | 'worker' | 'identity' | 'queue';

export const memberRoles: readonly MemberRole[] = ['api', 'worker', 'identity', 'queue'];

export type MemberStatus = 'alive' | 'suspect' | 'dead';

export interface MemberAnnouncement {
  /** Unique per process incarnation's identity (stable across restarts is fine: `startedAt` tells them apart). */
  id: string;
  role: MemberRole;
  /** Public base URL the gateway routes to (api). */
  url?: string;
  /** Cluster-internal base URL. */
  internalUrl?: string;
  /** Ready to take traffic (false while starting or draining). */
  ready: boolean;
  /** Relative share of traffic for weighted balancing (default 1). */
  weight?: number;
  load?: { inflight: number };
  /** Epoch ms the process started; a new value means the member restarted. */
  startedAt: number;
  /** The member's heartbeat interval: failure detection counts missed intervals of it. */
  intervalMs: number;
}

export interface MemberView extends MemberAnnouncement {
  status: MemberStatus;
  lastSeenAgoMs: number;
}

export type MemberEventType = 'joined' | 'changed' | 'left' | 'died';

export interface MemberEvent {
  type: MemberEventType;
  member: MemberView;
}
