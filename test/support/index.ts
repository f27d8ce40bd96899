/**
 * Shared test utilities: free ports, self-removing temp dirs, polling waits, and real
 * nats-server clusters, redis-server and PostgreSQL servers. Everything here cleans up after itself, even when a test fails.
 */
export { type CleanupOwner, onExit } from './cleanup.ts';
export { freePort, freePorts } from './free-port.ts';
export {
  type NatsCluster,
  type NatsClusterOptions,
  type NatsServerHandle,
  startNatsCluster,
  startNatsServer,
} from './nats-cluster.ts';
export {
  type PostgresServer,
  type PostgresServerOptions,
  postgresBinDir,
  startPostgres,
} from './postgres-server.ts';
export { type RedisServer, type RedisServerOptions, startRedisServer } from './redis-server.ts';
export { type TempDir, tempDir } from './temp-dir.ts';
export {
  type MeshNodeOptions,
  type ReceivedMessage,
  startTransportMesh,
  type TransportMesh,
  type TransportMeshOptions,
  testClusterSecret,
} from './transport-mesh.ts';
export { sleep, type WaitForOptions, waitFor } from './wait-for.ts';
