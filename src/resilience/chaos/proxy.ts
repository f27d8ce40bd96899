/**
 * `createFaultProxy`: a loopback TCP proxy for chaos tests. Route one node's traffic to
 * another through it, then at runtime blackhole, stall, delay or reset that link, and heal it.
 * It guarantees that whatever it does forward arrives in order and complete up to the fault,
 * and that a stream it tore (bytes swallowed) is never resumed half-way but reset on heal, as
 * a real partition long enough to lose data would end the TCP connection.
 */
import { connect, createServer, type Server, type Socket } from 'node:net';
import { Channel } from './channel.ts';
import type {
  DirectionFault,
  FaultDirection,
  FaultProxy,
  FaultProxyOptions,
  FaultProxyStats,
  ProxyAddress,
} from './types.ts';

type OneWay = 'toTarget' | 'fromTarget';

function directions(direction: FaultDirection): OneWay[] {
  if (direction === 'both') return ['toTarget', 'fromTarget'];
  if (direction === 'toTarget' || direction === 'fromTarget') return [direction];
  throw new RangeError(`direction must be 'both', 'toTarget' or 'fromTarget', got ${String(direction)}`);
}

function validateAddress(name: string, address: Partial<ProxyAddress> | undefined, required: boolean): void {
  if (address === undefined) {
    if (required) throw new RangeError(`${name} is required`);
    return;
  }
  if (address.host !== undefined && (typeof address.host !== 'string' || address.host.length === 0)) {
    throw new RangeError(`${name}.host must be a non-empty string`);
  }
  if (required && address.host === undefined) throw new RangeError(`${name}.host is required`);
  const port = address.port;
  if (port === undefined ? required : !Number.isInteger(port) || port < 0 || port > 65535) {
    throw new RangeError(`${name}.port must be an integer in 0..65535, got ${port}`);
  }
}

/** Send RST rather than FIN: the far side must see the abrupt failure a crash or timeout gives. */
function reset(socket: Socket | null): void {
  if (socket === null || socket.destroyed) return;
  socket.resetAndDestroy();
}

class ProxiedConnection {
  readonly client: Socket;
  upstream: Socket | null = null;
  /** Bytes were swallowed: the two ends can no longer agree on the stream. */
  torn = false;
  readonly toTarget: Channel;
  fromTarget: Channel | null = null;
  readonly #target: ProxyAddress;
  readonly #faults: Record<OneWay, DirectionFault>;
  readonly #counters: FaultProxyStats;
  readonly #onClosed: () => void;
  #closedSockets = 0;

  constructor(
    client: Socket,
    target: ProxyAddress,
    faults: Record<OneWay, DirectionFault>,
    counters: FaultProxyStats,
    onClosed: () => void,
  ) {
    this.client = client;
    this.#target = target;
    this.#faults = faults;
    this.#counters = counters;
    this.#onClosed = onClosed;
    this.toTarget = new Channel(client, this.#hooks('toTarget'));
    this.#watch(client);
  }

  /** Open the target side. Deferred while client → target is partitioned: no SYN gets through. */
  dialIfAllowed(): void {
    if (this.upstream !== null || this.client.destroyed || this.#faults.toTarget.mode !== 'forward') return;
    const upstream = connect({ host: this.#target.host, port: this.#target.port, allowHalfOpen: true });
    upstream.setNoDelay(true);
    this.upstream = upstream;
    this.fromTarget = new Channel(upstream, this.#hooks('fromTarget'));
    this.fromTarget.connect(this.client);
    this.toTarget.connect(upstream);
    this.#watch(upstream);
  }

  pump(): void {
    this.toTarget.pump();
    this.fromTarget?.pump();
  }

  reset(): void {
    this.#counters.resetConnections += 1;
    this.toTarget.stop();
    this.fromTarget?.stop();
    reset(this.client);
    reset(this.upstream);
  }

  #hooks(direction: OneWay) {
    return {
      fault: () => this.#faults[direction],
      forwarded: (bytes: number) => {
        this.#counters.forwardedBytes[direction] += bytes;
      },
      discarded: (bytes: number) => {
        this.torn = true;
        this.#counters.discardedBytes[direction] += bytes;
      },
    };
  }

  #watch(socket: Socket): void {
    socket.on('error', () => {
      // An error on one side (refused target, reset client) ends both, abruptly.
      this.toTarget.stop();
      this.fromTarget?.stop();
      reset(this.client);
      reset(this.upstream);
    });
    socket.on('close', () => {
      this.#closedSockets += 1;
      const expected = this.upstream === null ? 1 : 2;
      if (this.#closedSockets === 1 && expected === 2) return;
      // The client left before the target side was ever opened, or both sides are done.
      this.toTarget.stop();
      this.fromTarget?.stop();
      this.upstream?.destroy();
      this.#onClosed();
    });
  }
}

export function createFaultProxy(options: FaultProxyOptions): FaultProxy {
  validateAddress('target', options.target, true);
  validateAddress('listen', options.listen, false);
  const target = { ...options.target };
  const listen = { host: options.listen?.host ?? '127.0.0.1', port: options.listen?.port ?? 0 };
  const faults: Record<OneWay, DirectionFault> = {
    toTarget: { mode: 'forward', delayMs: 0 },
    fromTarget: { mode: 'forward', delayMs: 0 },
  };
  let refusing = false;
  const counters: FaultProxyStats = {
    port: null,
    faults: { toTarget: faults.toTarget, fromTarget: faults.fromTarget, refusing },
    acceptedConnections: 0,
    activeConnections: 0,
    resetConnections: 0,
    forwardedBytes: { toTarget: 0, fromTarget: 0 },
    discardedBytes: { toTarget: 0, fromTarget: 0 },
  };
  const connections = new Set<ProxiedConnection>();
  let server: Server | null = null;
  let started: Promise<{ port: number }> | null = null;
  let closed = false;

  const onConnection = (client: Socket): void => {
    client.setNoDelay(true);
    counters.acceptedConnections += 1;
    if (refusing || closed) {
      client.on('error', () => {});
      counters.resetConnections += 1;
      client.resetAndDestroy();
      return;
    }
    const connection: ProxiedConnection = new ProxiedConnection(client, target, faults, counters, () =>
      connections.delete(connection),
    );
    connections.add(connection);
    connection.dialIfAllowed();
  };

  const faultsChanged = (): void => {
    for (const connection of connections) {
      connection.dialIfAllowed();
      connection.pump();
    }
  };

  const setFault = (direction: FaultDirection, change: Partial<DirectionFault>): void => {
    for (const oneWay of directions(direction)) Object.assign(faults[oneWay], change);
    faultsChanged();
  };

  return {
    start() {
      if (closed) return Promise.reject(new Error('the fault proxy is closed'));
      started ??= new Promise((resolve, reject) => {
        const listener = createServer({ allowHalfOpen: true, noDelay: true }, onConnection);
        listener.once('error', reject);
        listener.listen({ host: listen.host, port: listen.port }, () => {
          const address = listener.address();
          counters.port = typeof address === 'object' && address !== null ? address.port : listen.port;
          server = listener;
          resolve({ port: counters.port });
        });
      });
      return started;
    },

    get port() {
      return counters.port;
    },

    blackhole(direction = 'both') {
      setFault(direction, { mode: 'blackhole' });
    },

    stall(direction = 'both') {
      setFault(direction, { mode: 'stall' });
    },

    delay(ms, direction = 'both') {
      if (!Number.isFinite(ms) || ms < 0)
        throw new RangeError(`delay must be a non-negative number, got ${ms}`);
      setFault(direction, { delayMs: ms });
    },

    resetConnections() {
      for (const connection of [...connections]) connection.reset();
    },

    refuseConnections() {
      refusing = true;
      for (const connection of [...connections]) connection.reset();
    },

    heal() {
      refusing = false;
      for (const fault of Object.values(faults)) Object.assign(fault, { mode: 'forward', delayMs: 0 });
      for (const connection of [...connections]) {
        if (connection.torn) connection.reset();
      }
      faultsChanged();
    },

    stats() {
      return {
        ...counters,
        faults: { toTarget: { ...faults.toTarget }, fromTarget: { ...faults.fromTarget }, refusing },
        activeConnections: connections.size,
        forwardedBytes: { ...counters.forwardedBytes },
        discardedBytes: { ...counters.discardedBytes },
      };
    },

    async close() {
      if (closed) return;
      closed = true;
      for (const connection of [...connections]) {
        connection.toTarget.stop();
        connection.fromTarget?.stop();
        connection.client.destroy();
        connection.upstream?.destroy();
      }
      connections.clear();
      const listener = server;
      server = null;
      if (listener !== null) await new Promise<void>((resolve) => listener.close(() => resolve()));
    },
  };
}
