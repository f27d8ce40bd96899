/**
 * The data plane's `CredentialSource` in the cluster: the identity role's internal API, called
 * through a RemotePolicy (idempotent GETs: retried with jitter, behind a breaker). It sits
 * behind the EdgeCache exactly where the SQLite store sits in embedded mode, so every cache
 * guarantee (TTL, single flight, stale-if-error) holds unchanged: when this throws, the cache
 * serves what it has.
 *
 * 404 is an answer ("no such key/tier"); everything else that is not 200 throws.
 */
import { InternalHttpClient } from '../../cluster/http/index.ts';
import type { RemotePolicy } from '../../resilience/remote/index.ts';
import type { Credential, CredentialSource, Tier } from '../types.ts';
import { type CredentialWire, credentialFromWire, tierFromWire } from './wire.ts';

export interface RemoteCredentialSourceOptions {
  /** Base URL of the identity role's internal listener. */
  identityUrl: string;
  clusterSecret: string;
  policy: RemotePolicy;
  /** Clock for `lastSuccessAt` (readiness). */
  now?: () => number;
}

export class RemoteCredentialSource implements CredentialSource {
  readonly #client: InternalHttpClient;
  readonly #now: () => number;
  #lastSuccessAt: number | undefined;

  constructor(options: RemoteCredentialSourceOptions) {
    this.#client = new InternalHttpClient({
      origin: options.identityUrl,
      clusterSecret: options.clusterSecret,
      policy: options.policy,
      dependency: 'identity',
      connections: 8,
    });
    this.#now = options.now ?? Date.now;
  }

  /** When the identity role last answered (readiness: reachable or cache warm). */
  get lastSuccessAt(): number | undefined {
    return this.#lastSuccessAt;
  }

  async findCredential(keyId: string): Promise<Credential | undefined> {
    const wire = await this.#get<CredentialWire>(`/internal/credentials/${encodeURIComponent(keyId)}`);
    return wire === undefined ? undefined : credentialFromWire(wire);
  }

  async getTier(name: string): Promise<Tier | undefined> {
    const wire = await this.#get<Tier>(`/internal/tiers/${encodeURIComponent(name)}`);
    return wire === undefined ? undefined : tierFromWire(wire);
  }

  /** Marks the identity role reachable (the change feed calls this too). */
  noteReachable(): void {
    this.#lastSuccessAt = this.#now();
  }

  close(): Promise<void> {
    return this.#client.close();
  }

  async #get<T>(path: string): Promise<T | undefined> {
    const answer = await this.#client.call({ method: 'GET', path, idempotent: true });
    this.noteReachable();
    if (answer.status === 404 || answer.status === 410) return undefined;
    return JSON.parse(answer.body.toString('utf8')) as T;
  }
}
