/**
 * `createTransport`: authenticated TCP links between cluster nodes. Each node listens for its
 * peers and dials each peer once; a node sends on the link it dialled and receives on the links
 * its peers dialled, so each direction has its own connection, queue and backoff, and one slow
 * direction never stalls the other. Every link is authenticated with the shared cluster secret
 * (see `handshake.ts`) and every frame MAC'd and sequenced (see `authenticated-connection.ts`).
 * Delivery is at most once and in order per connection; consensus tolerates the rest.
 */
import { createServer, type Server, type Socket } from 'node:net';
import { PixelfleetError } from '../../errors/index.ts';
import type { NodeId } from '../types.ts';
import { AuthenticatedConnection } from './authenticated-connection.ts';
import { secretKey } from './handshake.ts';
import { acceptHandshake, handshakeReader } from './handshake-driver.ts';
import { type LinkContext, OutboundLink } from './outbound-link.ts';
import { resolveSettings, validateAddress, validateNodeId } from './settings.ts';
import type { PeerStats, Transport, TransportOptions, TransportStats } from './types.ts';

/** Handshakes in progress at once; beyond this a flood of stray connections is turned away. */
const maxPendingHandshakes = 64;

function ignoreSocketError(): void {
  // Socket errors surface as 'close'; this listener only keeps them from crashing the process.
}

export function createTransport(options: TransportOptions): Transport {
  const settings = resolveSettings(options);
  const nodeId = options.nodeId;
  const counters = {
    receivedMessages: 0,
    receivedBytes: 0,
    handshakeFailures: 0,
    rejectedFrames: 0,
    droppedUnknownPeer: 0,
  };
  const links = new Map<NodeId, OutboundLink>();
  /** The authenticated connection each peer dialled to us; a newer one replaces an older one. */
  const inbound = new Map<NodeId, AuthenticatedConnection>();
  /** Sockets still in their handshake, so close() can end them too. */
  const handshaking = new Set<Socket>();
  let server: Server | null = null;
  let started: Promise<{ port: number }> | null = null;
  let boundPort: number | null = null;
  let closed = false;

  const context: LinkContext = {
    nodeId,
    secret: secretKey(options.secret),
    settings,
    deliver(from, payload) {
      counters.receivedMessages += 1;
      counters.receivedBytes += payload.length;
      options.onMessage(from, payload);
    },
    countHandshakeFailure() {
      counters.handshakeFailures += 1;
    },
    countRejectedFrame() {
      counters.rejectedFrames += 1;
    },
    onPeerStateChange: options.onPeerStateChange,
  };

  for (const [id, address] of Object.entries(options.peers))
    links.set(id, new OutboundLink(context, id, address));

  function accept(socket: Socket): void {
    socket.on('error', ignoreSocketError);
    if (closed) {
      socket.destroy();
      return;
    }
    if (handshaking.size >= maxPendingHandshakes) {
      counters.handshakeFailures += 1;
      socket.destroy();
      return;
    }
    socket.setNoDelay(true);
    handshaking.add(socket);
    const reader = handshakeReader();
    acceptHandshake(socket, reader, {
      secret: context.secret,
      nodeId,
      timeoutMs: settings.handshakeTimeoutMs,
      admits: (dialerId) => dialerId !== nodeId && (links.has(dialerId) || settings.acceptUnknownPeers),
    }).then(
      ({ peerId, keys }) => {
        handshaking.delete(socket);
        if (closed) {
          socket.destroy();
          return;
        }
        // A peer that redialled (after a restart or a silent partition) supersedes its old link.
        inbound.get(peerId)?.close({ kind: 'local', message: 'superseded by a newer connection' });
        // The constructor may already deliver or close (frames pipelined behind the handshake),
        // so the close handler must not depend on the constructor having returned.
        let registered: AuthenticatedConnection | null = null;
        const connection = new AuthenticatedConnection({
          socket,
          reader,
          keys,
          maxFrameBytes: settings.maxFrameBytes,
          heartbeatIntervalMs: settings.heartbeatIntervalMs,
          idleTimeoutMs: settings.idleTimeoutMs,
          events: {
            onPayload: (payload) => context.deliver(peerId, payload),
            onClose: (reason) => {
              if (reason.kind === 'rejected-frame') counters.rejectedFrames += 1;
              if (registered !== null && inbound.get(peerId) === registered) inbound.delete(peerId);
            },
          },
        });
        if (!connection.closed) {
          registered = connection;
          inbound.set(peerId, connection);
        }
      },
      () => {
        handshaking.delete(socket);
        if (!closed) counters.handshakeFailures += 1;
        socket.destroy();
      },
    );
  }

  function peerStats(): Record<NodeId, PeerStats> {
    const result: Record<NodeId, PeerStats> = {};
    for (const [id, link] of links) result[id] = link.stats();
    return result;
  }

  return {
    start() {
      if (closed) {
        return Promise.reject(new PixelfleetError('PF_ERR_TRANSPORT_UNAVAILABLE', 'the transport is closed'));
      }
      started ??= new Promise((resolve, reject) => {
        const listener = createServer({ noDelay: true }, accept);
        listener.once('error', (error) => {
          reject(
            new PixelfleetError(
              'PF_ERR_TRANSPORT_UNAVAILABLE',
              `node ${nodeId} could not listen on ${options.listen.host}:${options.listen.port}`,
              { cause: error },
            ),
          );
        });
        listener.listen({ host: options.listen.host, port: options.listen.port }, () => {
          const address = listener.address();
          boundPort = typeof address === 'object' && address !== null ? address.port : options.listen.port;
          server = listener;
          listener.on('error', ignoreSocketError);
          if (closed) {
            listener.close();
            reject(
              new PixelfleetError('PF_ERR_TRANSPORT_UNAVAILABLE', 'the transport was closed while starting'),
            );
            return;
          }
          for (const link of links.values()) link.start();
          resolve({ port: boundPort });
        });
      });
      return started;
    },

    send(to, payload) {
      const link = links.get(to);
      if (link === undefined) {
        counters.droppedUnknownPeer += 1;
        return false;
      }
      return link.enqueue(payload);
    },

    addPeer(id, address) {
      validateNodeId('peer id', id);
      validateAddress(`peer ${id}`, address);
      if (id === nodeId) throw new RangeError(`cannot add this node (${id}) as its own peer`);
      if (closed) return;
      const existing = links.get(id);
      if (existing !== undefined) {
        existing.moveTo(address);
        return;
      }
      const link = new OutboundLink(context, id, address);
      links.set(id, link);
      if (server !== null) link.start();
    },

    removePeer(id) {
      links.get(id)?.close();
      links.delete(id);
      inbound.get(id)?.close({ kind: 'local', message: 'peer removed' });
      inbound.delete(id);
    },

    stats(): TransportStats {
      return {
        nodeId,
        port: boundPort,
        receivedMessages: counters.receivedMessages,
        receivedBytes: counters.receivedBytes,
        inboundConnections: inbound.size,
        handshakeFailures: counters.handshakeFailures,
        rejectedFrames: counters.rejectedFrames,
        droppedUnknownPeer: counters.droppedUnknownPeer,
        peers: peerStats(),
      };
    },

    async close() {
      if (closed) return;
      closed = true;
      for (const link of links.values()) link.close();
      for (const connection of inbound.values())
        connection.close({ kind: 'local', message: 'transport closed' });
      inbound.clear();
      for (const socket of handshaking) socket.destroy();
      handshaking.clear();
      const listener = server;
      server = null;
      if (listener !== null) await new Promise<void>((resolve) => listener.close(() => resolve()));
    },
  };
}
