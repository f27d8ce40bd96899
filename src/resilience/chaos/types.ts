/**
 * Shapes of the fault-injecting TCP proxy used by chaos tests: put one in front of a node's
 * port and partition, slow or reset the links to it at runtime, then heal.
 */

export interface ProxyAddress {
  host: string;
  port: number;
}

/**
 * Which way a fault applies: `toTarget` is client → target bytes, `fromTarget` the replies.
 * One-way faults model asymmetric partitions.
 */
export type FaultDirection = 'both' | 'toTarget' | 'fromTarget';

/**
 * What a direction does with bytes:
 * - `forward`: pass them on (after `delayMs`).
 * - `blackhole`: swallow them; connections stay open, nothing arrives.
 * - `stall`: hold them without loss; the sender is slowed by TCP backpressure, as in a
 *   partition shorter than TCP's retransmission give-up time.
 */
export type FaultMode = 'forward' | 'blackhole' | 'stall';

export interface DirectionFault {
  mode: FaultMode;
  delayMs: number;
}

export interface FaultProxyOptions {
  /** Where to forward to. */
  target: ProxyAddress;
  /** Where to listen. Default 127.0.0.1 on a free port. */
  listen?: Partial<ProxyAddress>;
}

export interface FaultProxyStats {
  port: number | null;
  faults: { toTarget: DirectionFault; fromTarget: DirectionFault; refusing: boolean };
  acceptedConnections: number;
  activeConnections: number;
  /** Connections ended with an RST by `resetConnections`, `refuseConnections` or `heal`. */
  resetConnections: number;
  forwardedBytes: { toTarget: number; fromTarget: number };
  discardedBytes: { toTarget: number; fromTarget: number };
}

export interface FaultProxy {
  /** Listen; resolves with the bound port. */
  start(): Promise<{ port: number }>;
  /** Bound port once started, else null. */
  readonly port: number | null;
  /**
   * Forward nothing: bytes are swallowed, connections stay open, new connections are
   * accepted but not passed to the target. Because swallowed bytes leave a TCP stream torn,
   * `heal()` resets every connection that lost bytes (like a connection that timed out in a
   * real partition).
   */
  blackhole(direction?: FaultDirection): void;
  /** Hold bytes without losing them until `heal()`; new connections wait too. */
  stall(direction?: FaultDirection): void;
  /** Add `ms` of one-way latency per chunk (order preserved). 0 removes it. */
  delay(ms: number, direction?: FaultDirection): void;
  /** Send RST on every current connection, both sides. New connections still work. */
  resetConnections(): void;
  /** Reset every current connection and every new one at once (a crashed node's port), until `heal()`. */
  refuseConnections(): void;
  /** Remove every fault; held bytes flow, damaged connections are reset, new ones are forwarded. */
  heal(): void;
  stats(): FaultProxyStats;
  /** Stop listening and destroy every connection. Idempotent. */
  close(): Promise<void>;
}
