/**
 * The one source of truth for configuration: every setting with its flag, environment
 * variable, type, default and documentation. The loader reads flags, `PIXELFLEET_*` env and an
 * optional JSON file against this table; the README's configuration reference is generated from
 * it (`pixelfleet config --markdown`), so docs and code cannot drift.
 */
import { availableParallelism } from 'node:os';

export type SettingType = 'integer' | 'number' | 'string' | 'boolean' | 'duration' | 'bytes' | 'list';

export interface SettingSpec {
  type: SettingType;
  /** Default value, already in the parsed representation (ms for durations, bytes for sizes). */
  default: unknown;
  doc: string;
  min?: number;
  max?: number;
  /** Allowed values (strings and list items). */
  choices?: readonly string[];
  /** How the docs show a default that depends on the machine (e.g. "one per core"). */
  documentedDefault?: string;
}

const cores = Math.max(1, availableParallelism());

export const settings = {
  httpHost: { type: 'string', default: '127.0.0.1', doc: 'Address the public HTTP API listens on.' },
  httpPort: {
    type: 'integer',
    default: 8080,
    min: 0,
    max: 65535,
    doc: 'Port of the public HTTP API; 0 picks any free port (the chosen address is logged).',
  },
  adminHost: {
    type: 'string',
    default: '127.0.0.1',
    doc: 'Address the admin API listens on (keep it private).',
  },
  adminPort: {
    type: 'integer',
    default: 8081,
    min: 0,
    max: 65535,
    doc: 'Port of the admin API (accounts, keys, tiers); 0 picks any free port.',
  },
  dataDir: {
    type: 'string',
    default: './data',
    doc: 'Directory for the durable queue log, async job inputs and results, and generated secrets.',
  },
  workers: {
    type: 'integer',
    default: cores,
    documentedDefault: 'cores',
    min: 1,
    max: 256,
    doc: 'Conversion worker processes (each converts one image at a time). Default: one per core.',
  },
  maxBodyBytes: {
    type: 'bytes',
    default: 1024 * 1024,
    min: 1024,
    max: 256 * 1024 * 1024,
    doc: 'Largest accepted request body (input image); larger bodies get 413.',
  },
  maxInputPixels: {
    type: 'integer',
    default: 50_000_000,
    min: 1,
    doc: 'Largest input width × height, read from the header before decoding (decompression bombs get 422).',
  },
  maxOutputDimension: {
    type: 'integer',
    default: 8192,
    min: 16,
    max: 65535,
    doc: 'Largest output width or height in pixels (after dpr).',
  },
  maxFrames: {
    type: 'integer',
    default: 100,
    min: 1,
    doc: 'Largest number of frames kept when converting an animation with animated=true.',
  },
  inputFormats: {
    type: 'list',
    default: ['jpeg', 'png', 'webp', 'gif', 'avif'],
    choices: ['jpeg', 'png', 'webp', 'gif', 'avif', 'heif', 'tiff', 'svg'],
    doc: 'Accepted input formats, sniffed from magic bytes (SVG is off by default).',
  },
  jobTimeout: {
    type: 'duration',
    default: 10_000,
    min: 100,
    doc: 'Watchdog: a conversion running longer is killed, its worker restarted and the job retried.',
  },
  lease: {
    type: 'duration',
    default: 5_000,
    min: 300,
    doc: "How long a worker's claim on a job lasts unrenewed. The worker renews it every third of this while it holds the job; one that stops (paused, hung, its machine gone) loses its jobs to another worker after this long.",
  },
  syncTimeout: {
    type: 'duration',
    default: 30_000,
    min: 100,
    doc: 'Deadline of a synchronous /v1/resize request, including queue wait (504 after it).',
  },
  maxAttempts: {
    type: 'integer',
    default: 3,
    min: 1,
    max: 100,
    doc: 'Deliveries of a job before it is dead-lettered (crashes, timeouts and lease expiries count).',
  },
  resultTtl: {
    type: 'duration',
    default: 3_600_000,
    min: 1000,
    doc: 'How long an async job result can be fetched before it expires (410).',
  },
  maxInflight: {
    type: 'integer',
    default: 32 * cores,
    documentedDefault: '32 × cores',
    min: 1,
    doc: 'Load shedding: /v1 requests in flight above this get 503 + Retry-After at once.',
  },
  queueHighWater: {
    type: 'integer',
    default: 1000,
    min: 1,
    doc: 'Backpressure: when this many jobs wait in the queue, new jobs get 503 + Retry-After.',
  },
  globalRate: {
    type: 'number',
    default: 10_000,
    min: 0.001,
    doc: 'Requests per second admitted from all tenants together (a token bucket): per api server, or per cluster when --redis is set.',
  },
  globalBurst: {
    type: 'integer',
    default: 20_000,
    min: 1,
    doc: 'Burst capacity of the global token bucket.',
  },
  accountMaxJobs: {
    type: 'integer',
    default: 500,
    min: 1,
    doc: 'Bulkhead: queued plus running jobs one account may have; more get 429 so one tenant cannot fill the queue.',
  },
  idempotencyTtl: {
    type: 'duration',
    default: 86_400_000,
    min: 1000,
    doc: 'How long a response stored under an Idempotency-Key is replayed.',
  },
  shutdownTimeout: {
    type: 'duration',
    default: 25_000,
    min: 0,
    doc: 'On SIGTERM, how long in-flight requests may take to drain before the process exits.',
  },
  cacheControl: {
    type: 'string',
    default: 'public, max-age=31536000, immutable',
    doc: 'Cache-Control of converted images (an output is a pure function of the input and options).',
  },
  logLevel: {
    type: 'string',
    default: 'info',
    choices: ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'],
    doc: 'Log level of the JSON log on stdout.',
  },
  roles: {
    type: 'list',
    default: [],
    choices: ['gateway', 'api', 'queue', 'worker', 'identity'],
    doc: '`pixelfleet node`: the cluster roles this process runs (any of gateway, api, queue, worker, identity).',
  },
  nodeId: {
    type: 'string',
    default: '',
    doc: "`pixelfleet node`: this process's member id (the Raft id of a queue node); default `<first role>-<pid>`.",
  },
  internalHost: {
    type: 'string',
    default: '127.0.0.1',
    doc: 'Address of the cluster-internal listener (workers → api, api → identity, /metrics, /healthz, /readyz).',
  },
  internalPort: {
    type: 'integer',
    default: 0,
    min: 0,
    max: 65535,
    doc: 'Port of the cluster-internal listener; 0 picks any free port. Fix it when restarts must keep the address.',
  },
  advertiseHost: {
    type: 'string',
    default: '',
    doc: 'Host other members use to reach this process (default: the listen address).',
  },
  queueNodes: {
    type: 'list',
    default: [],
    doc: 'Client addresses (host:port) of the Raft queue nodes that api and worker roles use; any subset works.',
  },
  queuePeers: {
    type: 'list',
    default: [],
    doc: "Queue role: every queue member's Raft address as id=host:port (this node included, named by --node-id).",
  },
  queueClientPort: {
    type: 'integer',
    default: 0,
    min: 0,
    max: 65535,
    doc: "Queue role: port of the node's client listener (on --internal-host); 0 picks any free port.",
  },
  queue: {
    type: 'string',
    default: 'raft',
    doc: 'Api and worker roles: the job queue engine. `raft` (default): the Raft queue nodes of --queue-nodes; `nats://host:port[,host:port...]`: an existing NATS JetStream (2.9+) cluster, and no queue role runs.',
  },
  queueReplicas: {
    type: 'integer',
    default: 0,
    min: 0,
    max: 5,
    documentedDefault: '0 (auto)',
    doc: 'With --queue nats://: replicas of the JetStream streams; 0 picks 3 when --queue names 3 or more servers, else 1.',
  },
  redis: {
    type: 'string',
    default: '',
    doc: 'Api role: `redis://[user:password@]host:port[/db]` for cluster-wide rate limits and idempotency keys. Without it each api server keeps its own. While Redis is unreachable each server enforces its share of every limit.',
  },
  apiServerCount: {
    type: 'integer',
    default: 0,
    min: 0,
    documentedDefault: '0 (registry)',
    doc: 'Api role with --redis: how many api servers share each limit while Redis is unreachable (each then admits limit / N); 0 counts the api servers the registry reports alive.',
  },
  postgres: {
    type: 'string',
    default: '',
    doc: 'Identity role: `postgres://user:password@host:port/database` to keep accounts, keys and tiers in an existing PostgreSQL (LISTEN/NOTIFY feeds the change feed) instead of the embedded SQLite store.',
  },
  identityUrl: {
    type: 'string',
    default: '',
    doc: 'Api role: internal base URL of the identity role (default: this process, when it runs identity).',
  },
  registryUrls: {
    type: 'list',
    default: [],
    doc: "Registry (gateway control) base URLs members heartbeat to (default: this process's gateway, if any).",
  },
  heartbeatInterval: {
    type: 'duration',
    default: 1000,
    min: 50,
    doc: 'How often members announce themselves to the registry (suspect after 3 missed, dropped after 6).',
  },
  retryJitter: {
    type: 'string',
    default: 'full',
    choices: ['none', 'full', 'equal', 'decorrelated'],
    doc: 'Cluster roles: the jitter of the exponential backoff between retries of a remote call (full: uniform below the ceiling; equal: half fixed, half random; decorrelated: uniform between the base and 3 × the previous delay).',
  },
  remoteConcurrency: {
    type: 'integer',
    default: 64,
    min: 1,
    doc: 'Cluster roles: bulkhead — calls in flight at once per remote dependency (per api server, for workers); one more is refused at once instead of queueing.',
  },
  gatewayHost: { type: 'string', default: '127.0.0.1', doc: 'Gateway role: address of the public listener.' },
  gatewayPort: {
    type: 'integer',
    default: 8000,
    min: 0,
    max: 65535,
    doc: 'Gateway role: port of the public listener that clients call; 0 picks any free port.',
  },
  gatewayControlPort: {
    type: 'integer',
    default: 0,
    min: 0,
    max: 65535,
    doc: 'Gateway role: port of the control listener (registry, /metrics, /status) on --internal-host.',
  },
  gatewayStrategy: {
    type: 'string',
    default: 'least-time',
    choices: ['round-robin', 'weighted-round-robin', 'least-connections', 'least-time', 'consistent-hash'],
    doc: 'Gateway role: how an upstream api server is chosen for each request.',
  },
  gatewayMode: {
    type: 'string',
    default: 'http',
    choices: ['http', 'tcp'],
    doc: 'Gateway role: L7 (http, per request) or L4 (tcp, per connection) balancing.',
  },
  config: {
    type: 'string',
    default: '',
    doc: 'Optional JSON file with any of these settings (camelCase keys); flags and env override it.',
  },
} as const satisfies Record<string, SettingSpec>;

export type SettingName = keyof typeof settings;

type ValueOf<S extends SettingSpec> = S['type'] extends 'integer' | 'number' | 'duration' | 'bytes'
  ? number
  : S['type'] extends 'boolean'
    ? boolean
    : S['type'] extends 'list'
      ? string[]
      : string;

export type Config = { readonly [K in SettingName]: ValueOf<(typeof settings)[K]> };

/** `httpPort` → `--http-port`. */
export function flagOf(name: string): string {
  return `--${name.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`;
}

/** `httpPort` → `PIXELFLEET_HTTP_PORT`. */
export function envOf(name: string): string {
  return `PIXELFLEET_${name.replace(/[A-Z]/g, (c) => `_${c}`).toUpperCase()}`;
}
