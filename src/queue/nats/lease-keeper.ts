/**
 * Keeps this process's leases alive on a consumer whose AckWait is fixed.
 *
 * JetStream has one AckWait per consumer, while a Pixelfleet claim asks for its own `leaseMs`
 * and may `extend` it. So the consumer's AckWait is short (the failure-detection time) and the
 * keeper turns it into any lease length: while a lease runs it sends "in progress" (`+WPI`, which
 * restarts AckWait) every third of AckWait; when the lease ends unsettled it calls `onExpiry`,
 * which makes the job claimable again at once (a nak) or dead-letters it. If this process dies the
 * heartbeats stop and the server redelivers within one AckWait — earlier than the lease would
 * have ended, which is harmless: nobody is left to settle the old delivery, and its lease id is
 * fenced off by the job record anyway.
 */
export interface KeptLease {
  id: string;
  leaseId: string;
  ackSubject: string;
  expiresAt: number;
}

export interface LeaseKeeperOptions {
  ackWaitMs: number;
  /** Fire-and-forget `+WPI` to the ack subject. */
  heartbeat(ackSubject: string): void;
  /** The lease ended unsettled (as far as this process knows). */
  onExpiry(lease: KeptLease): Promise<void>;
  now?: () => number;
}

export class LeaseKeeper {
  readonly #options: LeaseKeeperOptions;
  readonly #now: () => number;
  readonly #leases = new Map<string, { lease: KeptLease; timer: NodeJS.Timeout }>();
  readonly #heartbeatTimer: NodeJS.Timeout;
  #stopped = false;

  constructor(options: LeaseKeeperOptions) {
    this.#options = options;
    this.#now = options.now ?? Date.now;
    this.#heartbeatTimer = setInterval(() => this.#beat(), Math.max(20, options.ackWaitMs / 3));
    this.#heartbeatTimer.unref();
  }

  get size(): number {
    return this.#leases.size;
  }

  hold(lease: KeptLease): void {
    if (this.#stopped) return;
    this.release(lease.id);
    const timer = setTimeout(
      () => this.#expire(lease.id, lease.leaseId),
      Math.max(0, lease.expiresAt - this.#now()),
    );
    timer.unref();
    this.#leases.set(lease.id, { lease, timer });
  }

  /** The lease now ends at `expiresAt` (an extension, here or in another process). */
  extend(id: string, leaseId: string, expiresAt: number): void {
    const held = this.#leases.get(id);
    if (held === undefined || held.lease.leaseId !== leaseId) return;
    this.hold({ ...held.lease, expiresAt });
  }

  release(id: string, leaseId?: string): void {
    const held = this.#leases.get(id);
    if (held === undefined || (leaseId !== undefined && held.lease.leaseId !== leaseId)) return;
    clearTimeout(held.timer);
    this.#leases.delete(id);
  }

  /** Stops heartbeats and expiry handling; held deliveries lapse after one AckWait. */
  stop(): void {
    this.#stopped = true;
    clearInterval(this.#heartbeatTimer);
    for (const held of this.#leases.values()) clearTimeout(held.timer);
    this.#leases.clear();
  }

  #beat(): void {
    const now = this.#now();
    for (const { lease } of this.#leases.values()) {
      if (lease.expiresAt > now) this.#options.heartbeat(lease.ackSubject);
    }
  }

  #expire(id: string, leaseId: string): void {
    const held = this.#leases.get(id);
    if (held === undefined || held.lease.leaseId !== leaseId) return;
    this.#leases.delete(id);
    this.#options.onExpiry(held.lease).catch(() => {
      // The delivery lapses after AckWait and the server redelivers it; the next claim sorts it out.
    });
  }
}
