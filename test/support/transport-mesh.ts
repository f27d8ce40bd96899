/**
 * `startTransportMesh()`: N consensus transports on free loopback ports, every node a peer of
 * every other, each recording what it receives. For transport tests and for Raft integration
 * tests that want real authenticated links. Closed by `close()` or the owner's `after` hook.
 */
import {
  createTransport,
  type Transport,
  type TransportOptions,
} from '../../src/consensus/transport/index.ts';
import type { CleanupOwner } from './cleanup.ts';
import { freePorts } from './free-port.ts';

export interface ReceivedMessage {
  from: string;
  payload: Uint8Array;
}

export interface TransportMesh {
  transports: Record<string, Transport>;
  ports: Record<string, number>;
  /** Everything each node received, in arrival order. */
  received: Record<string, ReceivedMessage[]>;
  /** Received payloads decoded as UTF-8, per node. */
  texts(nodeId: string): string[];
  close(): Promise<void>;
}

export type MeshNodeOptions = Partial<Omit<TransportOptions, 'nodeId' | 'listen' | 'peers' | 'onMessage'>>;

export interface TransportMeshOptions {
  nodeIds: string[];
  /** Shared secret; default a fixed test secret. */
  secret?: string | Uint8Array;
  /** Extra options for every node, or per node by id. */
  options?: MeshNodeOptions | ((nodeId: string) => MeshNodeOptions);
  /** Route node `to`'s address, as seen by `from`, elsewhere (e.g. through a fault proxy). */
  addressOf?: (from: string, to: string, port: number) => { host: string; port: number };
  /** Listen ports by node id (e.g. chosen up front with `freePorts`); free ports otherwise. */
  ports?: Record<string, number>;
  owner?: CleanupOwner;
}

export const testClusterSecret = 'pixelfleet-test-cluster-secret-0123456789';

export async function startTransportMesh(options: TransportMeshOptions): Promise<TransportMesh> {
  const portList = await freePorts(options.nodeIds.length);
  const ports: Record<string, number> = {};
  options.nodeIds.forEach((id, index) => {
    ports[id] = options.ports?.[id] ?? portList[index]!;
  });
  const transports: Record<string, Transport> = {};
  const received: Record<string, ReceivedMessage[]> = {};
  for (const nodeId of options.nodeIds) {
    const peers: TransportOptions['peers'] = {};
    for (const other of options.nodeIds) {
      if (other === nodeId) continue;
      peers[other] = options.addressOf?.(nodeId, other, ports[other]!) ?? {
        host: '127.0.0.1',
        port: ports[other]!,
      };
    }
    const extra = typeof options.options === 'function' ? options.options(nodeId) : (options.options ?? {});
    const inbox: ReceivedMessage[] = [];
    received[nodeId] = inbox;
    transports[nodeId] = createTransport({
      secret: options.secret ?? testClusterSecret,
      ...extra,
      nodeId,
      listen: { host: '127.0.0.1', port: ports[nodeId]! },
      peers,
      onMessage: (from, payload) => inbox.push({ from, payload }),
    });
  }
  const close = async (): Promise<void> => {
    await Promise.all(Object.values(transports).map((transport) => transport.close()));
  };
  options.owner?.after(close);
  try {
    await Promise.all(Object.values(transports).map((transport) => transport.start()));
  } catch (error) {
    await close();
    throw error;
  }
  return {
    transports,
    ports,
    received,
    texts: (nodeId) => received[nodeId]!.map((message) => Buffer.from(message.payload).toString('utf8')),
    close,
  };
}
