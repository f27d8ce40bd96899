/**
 * Membership by heartbeat, the registry's pure core. Each member announces itself every
 * `intervalMs`; a member is suspect after missing `suspectAfterIntervals` of its own intervals
 * and dead (dropped) after `deadAfterIntervals`. State is soft: a restarted registry relearns
 * the whole membership within one interval, so nothing here is persisted.
 *
 * Guarantees: a listener sees each member's life as joined → (changed)* → left | died, in
 * order, once per transition; expiry is evaluated on every read and by `sweep()`, so a view
 * never reports a member alive past its suspect time. Listeners run after the state changed
 * and may read the registry.
 */
import { parseAnnouncement } from './announcement.ts';
import type { MemberAnnouncement, MemberEvent, MemberRole, MemberStatus, MemberView } from './types.ts';

export interface MemberRegistryOptions {
  /** Missed intervals before a member is suspect (default 3): one lost packet is not a failure. */
  suspectAfterIntervals?: number;
  /** Missed intervals before a member is declared dead and dropped (default 6). */
  deadAfterIntervals?: number;
  now?: () => number;
}

interface Entry {
  announcement: MemberAnnouncement;
  lastSeen: number;
  status: MemberStatus;
}

export class MemberRegistry {
  readonly suspectAfterIntervals: number;
  readonly deadAfterIntervals: number;
  readonly #now: () => number;
  readonly #members = new Map<string, Entry>();
  readonly #listeners = new Set<(event: MemberEvent) => void>();

  constructor(options: MemberRegistryOptions = {}) {
    this.suspectAfterIntervals = options.suspectAfterIntervals ?? 3;
    this.deadAfterIntervals = options.deadAfterIntervals ?? 6;
    if (!Number.isFinite(this.suspectAfterIntervals) || this.suspectAfterIntervals <= 0) {
      throw new RangeError(`suspectAfterIntervals must be positive, got ${this.suspectAfterIntervals}`);
    }
    if (!Number.isFinite(this.deadAfterIntervals) || this.deadAfterIntervals <= this.suspectAfterIntervals) {
      throw new RangeError(
        `deadAfterIntervals (${this.deadAfterIntervals}) must be greater than suspectAfterIntervals (${this.suspectAfterIntervals})`,
      );
    }
    this.#now = options.now ?? Date.now;
  }

  /** Records a heartbeat; throws PF_ERR_BAD_REQUEST on a malformed announcement. */
  heartbeat(announcement: MemberAnnouncement): void {
    const parsed = parseAnnouncement(announcement);
    const now = this.#now();
    const events = this.#expire(now);
    const previous = this.#members.get(parsed.id);
    const entry: Entry = { announcement: parsed, lastSeen: now, status: 'alive' };
    this.#members.set(parsed.id, entry);
    if (previous === undefined) events.push({ type: 'joined', member: this.#view(entry, now) });
    else if (previous.status !== 'alive' || routingChanged(previous.announcement, parsed)) {
      events.push({ type: 'changed', member: this.#view(entry, now) });
    }
    this.#emit(events);
  }

  /** Graceful leave; false when the member was not known. */
  leave(id: string): boolean {
    const now = this.#now();
    const events = this.#expire(now);
    const entry = this.#members.get(id);
    if (entry !== undefined) {
      this.#members.delete(id);
      events.push({ type: 'left', member: this.#view(entry, now) });
    }
    this.#emit(events);
    return entry !== undefined;
  }

  members(filter: { role?: MemberRole; status?: MemberStatus } = {}): MemberView[] {
    const now = this.#now();
    const events = this.#expire(now);
    const views: MemberView[] = [];
    for (const entry of this.#members.values()) {
      if (filter.role !== undefined && entry.announcement.role !== filter.role) continue;
      if (filter.status !== undefined && entry.status !== filter.status) continue;
      views.push(this.#view(entry, now));
    }
    this.#emit(events);
    return views.sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  }

  member(id: string): MemberView | undefined {
    const now = this.#now();
    const events = this.#expire(now);
    const entry = this.#members.get(id);
    this.#emit(events);
    return entry === undefined ? undefined : this.#view(entry, now);
  }

  subscribe(listener: (event: MemberEvent) => void): () => void {
    this.#listeners.add(listener);
    return () => {
      this.#listeners.delete(listener);
    };
  }

  /** Evaluates expiry now (call it on a timer so 'died' events fire without reads). */
  sweep(): void {
    this.#emit(this.#expire(this.#now()));
  }

  /** Updates statuses by missed intervals; returns the events, to emit once state is consistent. */
  #expire(now: number): MemberEvent[] {
    const events: MemberEvent[] = [];
    for (const [id, entry] of this.#members) {
      const status = this.#statusAt(entry, now);
      if (status === entry.status) continue;
      entry.status = status;
      if (status === 'dead') {
        this.#members.delete(id);
        events.push({ type: 'died', member: this.#view(entry, now) });
      } else {
        events.push({ type: 'changed', member: this.#view(entry, now) });
      }
    }
    return events;
  }

  #statusAt(entry: Entry, now: number): MemberStatus {
    const missed = (now - entry.lastSeen) / entry.announcement.intervalMs;
    if (missed > this.deadAfterIntervals) return 'dead';
    if (missed > this.suspectAfterIntervals) return 'suspect';
    return 'alive';
  }

  #view(entry: Entry, now: number): MemberView {
    return { ...entry.announcement, status: entry.status, lastSeenAgoMs: Math.max(0, now - entry.lastSeen) };
  }

  #emit(events: MemberEvent[]): void {
    for (const event of events) {
      for (const listener of [...this.#listeners]) listener(event);
    }
  }
}

/** Fields a router acts on; `load` changes every beat and is not an event. */
function routingChanged(before: MemberAnnouncement, after: MemberAnnouncement): boolean {
  return (
    before.ready !== after.ready ||
    before.url !== after.url ||
    before.internalUrl !== after.internalUrl ||
    before.role !== after.role ||
    before.weight !== after.weight ||
    before.startedAt !== after.startedAt ||
    before.intervalMs !== after.intervalMs
  );
}
