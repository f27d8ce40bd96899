/**
 * Change events of the management plane (pub/sub): the management plane publishes after a write
 * commits, and data-plane caches subscribe to drop what the write made stale. In embedded mode
 * the bus is in-process and delivery is synchronous, so a revocation has reached every local
 * cache by the time `publish` returns; the cluster will carry the same typed events over the
 * network. Events are hints, not the source of truth: a lost event (a crash between commit and
 * publish) is repaired by the cache TTL, which is why the TTL stays as the backstop.
 */

export type ChangeEvent =
  | { type: 'key.issued'; at: number; keyId: string; accountId: string }
  | { type: 'key.revoked'; at: number; keyId: string; accountId: string; reason: string | null }
  | { type: 'account.closed'; at: number; accountId: string; revokedKeyIds: readonly string[] }
  | { type: 'account.tier-changed'; at: number; accountId: string; tier: string }
  | { type: 'tier.changed'; at: number; tier: string };

export type ChangeEventType = ChangeEvent['type'];
export type ChangeListener = (event: ChangeEvent) => void;
export type Unsubscribe = () => void;

export interface ChangeBus {
  publish(event: ChangeEvent): void;
  /** Receives every event published after this call; returns the function that stops it. */
  subscribe(listener: ChangeListener): Unsubscribe;
}

export interface InProcessChangeBusOptions {
  /**
   * Called when a listener throws. One faulty subscriber must not stop the others (or the
   * publisher, whose write has already committed) from seeing the event.
   */
  onListenerError?: (error: unknown, event: ChangeEvent) => void;
}

export class InProcessChangeBus implements ChangeBus {
  readonly #listeners = new Set<ChangeListener>();
  readonly #onListenerError: (error: unknown, event: ChangeEvent) => void;

  constructor(options: InProcessChangeBusOptions = {}) {
    this.#onListenerError =
      options.onListenerError ??
      ((error, event) => {
        process.emitWarning(
          `change bus listener failed on ${event.type}: ${(error as Error)?.message ?? error}`,
        );
      });
  }

  publish(event: ChangeEvent): void {
    // Copy so a listener that unsubscribes (or subscribes) during delivery does not skew it.
    for (const listener of [...this.#listeners]) {
      try {
        listener(event);
      } catch (error) {
        this.#onListenerError(error, event);
      }
    }
  }

  subscribe(listener: ChangeListener): Unsubscribe {
    // Wrap so the same function subscribed twice gets two independent subscriptions.
    const subscription: ChangeListener = (event) => listener(event);
    this.#listeners.add(subscription);
    return () => {
      this.#listeners.delete(subscription);
    };
  }

  get subscriberCount(): number {
    return this.#listeners.size;
  }
}
