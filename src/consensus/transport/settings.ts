/**
 * Validates `TransportOptions` and fills in defaults, once, at construction. Bad options are a
 * programming error, so they throw `RangeError` naming the option.
 */
import type { DropPolicy, PeerAddress, TransportOptions } from './types.ts';

export interface TransportSettings {
  maxQueuedBytesPerPeer: number;
  dropPolicy: DropPolicy;
  maxFrameBytes: number;
  acceptUnknownPeers: boolean;
  reconnectInitialDelayMs: number;
  reconnectMaxDelayMs: number;
  handshakeTimeoutMs: number;
  heartbeatIntervalMs: number;
  idleTimeoutMs: number;
  random: () => number;
}

export const defaultSettings = {
  maxQueuedBytesPerPeer: 64 * 1024 * 1024,
  dropPolicy: 'oldest',
  maxFrameBytes: 64 * 1024 * 1024,
  acceptUnknownPeers: false,
  reconnectInitialDelayMs: 50,
  reconnectMaxDelayMs: 2000,
  handshakeTimeoutMs: 5000,
  heartbeatIntervalMs: 1000,
  idleTimeoutMs: 5000,
} as const;

/** Smallest accepted secret: shorter shared secrets are guessable offline from one handshake. */
export const minimumSecretBytes = 16;

function positive(name: string, value: number | undefined, fallback: number): number {
  const resolved = value ?? fallback;
  if (!Number.isFinite(resolved) || resolved <= 0) {
    throw new RangeError(`transport option ${name} must be a positive number, got ${value}`);
  }
  return resolved;
}

export function validateNodeId(name: string, id: unknown): void {
  if (typeof id !== 'string' || id.length === 0 || Buffer.byteLength(id, 'utf8') > 255) {
    throw new RangeError(`${name} must be a non-empty string of at most 255 bytes, got ${String(id)}`);
  }
}

export function validateAddress(name: string, address: PeerAddress | undefined): void {
  if (address === undefined || typeof address.host !== 'string' || address.host.length === 0) {
    throw new RangeError(`${name} needs a host`);
  }
  if (!Number.isInteger(address.port) || address.port < 0 || address.port > 65535) {
    throw new RangeError(`${name} port must be an integer in 0..65535, got ${address.port}`);
  }
}

export function resolveSettings(options: TransportOptions): TransportSettings {
  validateNodeId('nodeId', options.nodeId);
  validateAddress('listen', options.listen);
  if (typeof options.onMessage !== 'function') throw new RangeError('onMessage must be a function');
  for (const [id, address] of Object.entries(options.peers ?? {})) {
    validateNodeId('peer id', id);
    if (id === options.nodeId) throw new RangeError(`peers must not include this node (${id})`);
    validateAddress(`peers.${id}`, address);
    if (address.port === 0) throw new RangeError(`peers.${id} needs a real port, not 0`);
  }
  const secretBytes =
    typeof options.secret === 'string'
      ? Buffer.byteLength(options.secret, 'utf8')
      : options.secret instanceof Uint8Array
        ? options.secret.byteLength
        : 0;
  if (secretBytes < minimumSecretBytes) {
    throw new RangeError(`secret must be at least ${minimumSecretBytes} bytes`);
  }
  const dropPolicy = options.dropPolicy ?? defaultSettings.dropPolicy;
  if (dropPolicy !== 'oldest' && dropPolicy !== 'newest') {
    throw new RangeError(`dropPolicy must be 'oldest' or 'newest', got ${String(dropPolicy)}`);
  }
  const settings: TransportSettings = {
    maxQueuedBytesPerPeer: positive(
      'maxQueuedBytesPerPeer',
      options.maxQueuedBytesPerPeer,
      defaultSettings.maxQueuedBytesPerPeer,
    ),
    dropPolicy,
    maxFrameBytes: positive('maxFrameBytes', options.maxFrameBytes, defaultSettings.maxFrameBytes),
    acceptUnknownPeers: options.acceptUnknownPeers ?? defaultSettings.acceptUnknownPeers,
    reconnectInitialDelayMs: positive(
      'reconnectInitialDelayMs',
      options.reconnectInitialDelayMs,
      defaultSettings.reconnectInitialDelayMs,
    ),
    reconnectMaxDelayMs: positive(
      'reconnectMaxDelayMs',
      options.reconnectMaxDelayMs,
      defaultSettings.reconnectMaxDelayMs,
    ),
    handshakeTimeoutMs: positive(
      'handshakeTimeoutMs',
      options.handshakeTimeoutMs,
      defaultSettings.handshakeTimeoutMs,
    ),
    heartbeatIntervalMs: positive(
      'heartbeatIntervalMs',
      options.heartbeatIntervalMs,
      defaultSettings.heartbeatIntervalMs,
    ),
    idleTimeoutMs: positive('idleTimeoutMs', options.idleTimeoutMs, defaultSettings.idleTimeoutMs),
    random: options.random ?? Math.random,
  };
  if (settings.maxFrameBytes > 0xffff_ffff - 64) throw new RangeError('maxFrameBytes must fit a u32 length');
  if (settings.reconnectMaxDelayMs < settings.reconnectInitialDelayMs) {
    throw new RangeError('reconnectMaxDelayMs must be at least reconnectInitialDelayMs');
  }
  if (settings.idleTimeoutMs <= settings.heartbeatIntervalMs) {
    throw new RangeError('idleTimeoutMs must exceed heartbeatIntervalMs, or idle links would be closed');
  }
  return settings;
}
