/**
 * The JSON shapes the identity role's internal API sends to data-plane servers. A credential
 * carries the SHA-256 of its key's secret (base64), never the secret: the api server checks the
 * presented secret against it in constant time, exactly as against the local store.
 */
import type { Credential, Tier } from '../types.ts';

export interface CredentialWire extends Omit<Credential, 'secretHash'> {
  secretHash: string;
}

export function credentialToWire(credential: Credential): CredentialWire {
  return { ...credential, secretHash: Buffer.from(credential.secretHash).toString('base64') };
}

export function credentialFromWire(wire: CredentialWire): Credential {
  if (typeof wire?.secretHash !== 'string' || typeof wire.key?.id !== 'string') {
    throw new TypeError('not a credential document');
  }
  const secretHash = new Uint8Array(Buffer.from(wire.secretHash, 'base64'));
  if (secretHash.length !== 32) throw new TypeError('a credential secret hash is 32 bytes');
  return { ...wire, secretHash };
}

export function tierFromWire(wire: Tier): Tier {
  if (typeof wire?.name !== 'string') throw new TypeError('not a tier document');
  return wire;
}
