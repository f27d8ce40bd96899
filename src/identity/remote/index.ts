/**
 * The identity data plane across processes: the remote credential source and change bus an api
 * server puts behind its EdgeCache, and the wire shapes of the identity role's internal API.
 */
export { RemoteChangeBus, type RemoteChangeBusOptions } from './remote-change-bus.ts';
export { RemoteCredentialSource, type RemoteCredentialSourceOptions } from './remote-credential-source.ts';
export { type CredentialWire, credentialFromWire, credentialToWire, tierFromWire } from './wire.ts';
