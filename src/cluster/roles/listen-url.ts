/** The base URL of a listening server, for logs and for other members to call. */
import type { AddressInfo } from 'node:net';

export function portOf(address: string | AddressInfo | null): number {
  return typeof address === 'object' && address !== null ? address.port : 0;
}

export function listenUrl(host: string, address: string | AddressInfo | null): string {
  return `http://${host.includes(':') ? `[${host}]` : host}:${portOf(address)}`;
}
