/**
 * Real `nats-server` processes for tests and benchmarks: `startNatsCluster` (routes between
 * N nodes, JetStream on file storage, ready once every node agrees on a meta leader) and
 * `startNatsServer` (one node). Servers run from PATH (Debian's package) on free loopback
 * ports in a temp dir. Nothing outlives the test: `stop()` (also registered on the test
 * context's `after` when one is given) kills every process and removes the dir; an exit hook
 * does the same if the test process ends early; and a tiny watchdog shell kills the servers
 * if the test process is killed outright (SIGKILL leaves no chance for hooks).
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type CleanupOwner, onExit } from './cleanup.ts';
import { freePorts } from './free-port.ts';
import { sleep, waitFor } from './wait-for.ts';

export interface NatsClusterOptions {
  /** Number of servers. Default 3 for a cluster, 1 for `startNatsServer`. */
  nodes?: number;
  /** Enable JetStream with file storage. Default true. */
  jetstream?: boolean;
  /** A test context (or suite): `stop()` is registered on its `after` hook. */
  owner?: CleanupOwner;
  /** How long to wait for the cluster to be ready. Default 30 s. */
  readyTimeoutMs?: number;
  /** Cluster name in the routes block. Default "pixelfleet". */
  clusterName?: string;
  /** nats-server binary. Default `nats-server` from PATH. */
  binary?: string;
}

export interface NatsServerHandle {
  /** server_name, e.g. "n1"; also the name JetStream reports as a stream leader. */
  readonly name: string;
  /** Current process id, or -1 while the server is not running. Changes on restart. */
  readonly pid: number;
  readonly running: boolean;
  /** Client URL, e.g. nats://127.0.0.1:4222. Stable across restarts. */
  readonly url: string;
  /** Monitoring endpoint base URL (http://127.0.0.1:8222). */
  readonly monitorUrl: string;
  readonly logFile: string;
  /**
   * Send a signal (default SIGKILL, i.e. kill -9). Resolves once the process has exited,
   * except for SIGSTOP/SIGCONT/SIGTSTP, which resolve at once.
   */
  kill(signal?: NodeJS.Signals): Promise<void>;
  /**
   * Start the server again with the same ports, config and store (stopping it first with
   * SIGTERM if it still runs). Resolves once it answers its monitoring port and, in a JetStream
   * cluster, sees a meta leader.
   */
  restart(): Promise<void>;
}

export interface NatsCluster {
  /** Client URLs of every server, in order. */
  urls: string[];
  servers: NatsServerHandle[];
  /** Temp dir holding configs, logs and stores. Removed by stop(). */
  dir: string;
  /** Kill every server (SIGTERM, then SIGKILL after 3 s) and remove the dir. Idempotent. */
  stop(): Promise<void>;
  [Symbol.asyncDispose](): Promise<void>;
}

interface ServerPorts {
  client: number;
  cluster: number;
  monitor: number;
}

interface ServerSpec {
  name: string;
  ports: ServerPorts;
  configPath: string;
  logFile: string;
  pidFile: string;
}

/**
 * Kills the listed servers once the test process is gone. It checks /proc/<pid>/cmdline before
 * killing, so a recycled pid never takes an unrelated process with it.
 */
const watchdogScript = `
parent="$1"; dir="$2"
while kill -0 "$parent" 2>/dev/null; do sleep 1; done
for file in "$dir"/*.pid; do
  [ -f "$file" ] || continue
  pid=$(cat "$file")
  if grep -q nats-server "/proc/$pid/cmdline" 2>/dev/null; then kill -9 "$pid"; fi
done
rm -rf "$dir"
`;

function quote(text: string): string {
  return JSON.stringify(text);
}

function renderConfig(
  spec: ServerSpec,
  all: ServerSpec[],
  dir: string,
  options: Required<Pick<NatsClusterOptions, 'jetstream' | 'clusterName'>>,
): string {
  const lines = [
    `server_name: ${quote(spec.name)}`,
    `listen: "127.0.0.1:${spec.ports.client}"`,
    `http: "127.0.0.1:${spec.ports.monitor}"`,
    `log_file: ${quote(spec.logFile)}`,
  ];
  if (options.jetstream) {
    lines.push(
      'jetstream {',
      `  store_dir: ${quote(join(dir, spec.name))}`,
      `  max_memory_store: ${256 * 1024 * 1024}`,
      `  max_file_store: ${4 * 1024 * 1024 * 1024}`,
      '}',
    );
  }
  if (all.length > 1) {
    const routes = all.map((other) => quote(`nats-route://127.0.0.1:${other.ports.cluster}`)).join(', ');
    lines.push(
      'cluster {',
      `  name: ${quote(options.clusterName)}`,
      `  listen: "127.0.0.1:${spec.ports.cluster}"`,
      `  routes: [${routes}]`,
      '}',
    );
  }
  return `${lines.join('\n')}\n`;
}

async function getJson(url: string): Promise<Record<string, unknown> | null> {
  try {
    const response = await fetch(url, { signal: AbortSignal.timeout(2000) });
    if (!response.ok) return null;
    return (await response.json()) as Record<string, unknown>;
  } catch {
    return null;
  }
}

async function logTail(logFile: string): Promise<string> {
  try {
    const text = await readFile(logFile, 'utf8');
    return text.split('\n').slice(-15).join('\n');
  } catch {
    return '(no log)';
  }
}

class ServerProcess implements NatsServerHandle {
  readonly #spec: ServerSpec;
  readonly #binary: string;
  readonly #isReady: () => Promise<boolean>;
  readonly #readyTimeoutMs: number;
  #child: ChildProcess | null = null;
  #exited: Promise<void> = Promise.resolve();

  constructor(spec: ServerSpec, binary: string, isReady: () => Promise<boolean>, readyTimeoutMs: number) {
    this.#spec = spec;
    this.#binary = binary;
    this.#isReady = isReady;
    this.#readyTimeoutMs = readyTimeoutMs;
  }

  get name(): string {
    return this.#spec.name;
  }
  get pid(): number {
    return this.#child?.pid ?? -1;
  }
  get running(): boolean {
    return this.#child !== null;
  }
  get url(): string {
    return `nats://127.0.0.1:${this.#spec.ports.client}`;
  }
  get monitorUrl(): string {
    return `http://127.0.0.1:${this.#spec.ports.monitor}`;
  }
  get logFile(): string {
    return this.#spec.logFile;
  }

  /** Spawn without waiting for readiness. */
  spawn(): void {
    if (this.#child !== null) return;
    const child = spawn(this.#binary, ['-c', this.#spec.configPath], { stdio: 'ignore' });
    // Let the test process exit even if a test forgot stop(); the exit hook kills the server.
    child.unref();
    this.#child = child;
    if (child.pid !== undefined) writeFileSync(this.#spec.pidFile, String(child.pid));
    this.#exited = new Promise((resolve) => {
      const done = (): void => {
        if (this.#child === child) this.#child = null;
        try {
          unlinkSync(this.#spec.pidFile);
        } catch {
          // Already gone.
        }
        resolve();
      };
      child.once('exit', done);
      child.once('error', done);
    });
  }

  /** Spawn and wait until ready; rejects (with the log tail) if the process dies first. */
  async start(): Promise<void> {
    this.spawn();
    const child = this.#child;
    try {
      await waitFor(
        async () => {
          if (this.#child !== child) throw new Error(`nats-server ${this.name} exited during start-up`);
          return this.#isReady();
        },
        { timeoutMs: this.#readyTimeoutMs, intervalMs: 50, message: `nats-server ${this.name} to be ready` },
      );
    } catch (error) {
      throw new Error(
        `nats-server ${this.name} did not become ready; log tail:\n${await logTail(this.logFile)}`,
        {
          cause: error,
        },
      );
    }
  }

  async kill(signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    const child = this.#child;
    if (child === null) return;
    child.kill(signal);
    if (signal === 'SIGSTOP' || signal === 'SIGCONT' || signal === 'SIGTSTP') return;
    await this.#exited;
  }

  /** SIGTERM, then SIGKILL if it has not exited within `graceMs`. */
  async stop(graceMs = 3000): Promise<void> {
    const child = this.#child;
    if (child === null) return;
    child.kill('SIGCONT'); // A paused server cannot handle SIGTERM.
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
    await this.#exited;
    clearTimeout(timer);
  }

  /** Synchronous last resort for exit hooks. */
  killNow(): void {
    try {
      this.#child?.kill('SIGKILL');
    } catch {
      // Already gone.
    }
  }

  async restart(): Promise<void> {
    await this.stop();
    await this.start();
  }
}

function listOf(value: unknown): Record<string, unknown>[] {
  return Array.isArray(value) ? (value as Record<string, unknown>[]) : [];
}

async function startOnce(options: NatsClusterOptions, defaultNodes: number): Promise<NatsCluster> {
  const nodes = options.nodes ?? defaultNodes;
  if (!Number.isInteger(nodes) || nodes < 1)
    throw new RangeError(`nodes must be a positive integer, got ${nodes}`);
  const jetstream = options.jetstream ?? true;
  const clusterName = options.clusterName ?? 'pixelfleet';
  const binary = options.binary ?? 'nats-server';
  const readyTimeoutMs = options.readyTimeoutMs ?? 30_000;

  const dir = join(
    tmpdir(),
    `pixelfleet-nats-${process.pid}-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 8)}`,
  );
  await mkdir(dir, { recursive: true });
  const ports = await freePorts(nodes * 3);
  const specs: ServerSpec[] = Array.from({ length: nodes }, (_, index) => ({
    name: `n${index + 1}`,
    ports: { client: ports[index * 3]!, cluster: ports[index * 3 + 1]!, monitor: ports[index * 3 + 2]! },
    configPath: join(dir, `n${index + 1}.conf`),
    logFile: join(dir, `n${index + 1}.log`),
    pidFile: join(dir, `n${index + 1}.pid`),
  }));
  for (const spec of specs) {
    await writeFile(spec.configPath, renderConfig(spec, specs, dir, { jetstream, clusterName }));
  }

  const watchdog = spawn('sh', ['-c', watchdogScript, 'nats-watchdog', String(process.pid), dir], {
    detached: true,
    stdio: 'ignore',
  });
  watchdog.unref();

  const servers: ServerProcess[] = [];
  /** A server is ready when it serves monitoring, sees every route and, with JetStream, a meta leader. */
  const readiness = (spec: ServerSpec) => async (): Promise<boolean> => {
    const base = `http://127.0.0.1:${spec.ports.monitor}`;
    const health = await getJson(`${base}/healthz`);
    if (health?.status !== 'ok') return false;
    if (nodes > 1) {
      const routes = await getJson(`${base}/routez`);
      const names = new Set(listOf(routes?.routes).map((route) => route.remote_name ?? route.remote_id));
      if (names.size < nodes - 1) return false;
    }
    if (jetstream && nodes > 1) {
      const jsz = await getJson(`${base}/jsz`);
      const meta = jsz?.meta_cluster as { leader?: string } | undefined;
      if (!meta?.leader) return false;
    }
    return true;
  };
  for (const spec of specs) servers.push(new ServerProcess(spec, binary, readiness(spec), readyTimeoutMs));

  let stopped: Promise<void> | null = null;
  const unregister = onExit(() => {
    for (const server of servers) server.killNow();
    try {
      process.kill(watchdog.pid ?? -1, 'SIGKILL');
    } catch {
      // Watchdog already gone.
    }
    rmSync(dir, { recursive: true, force: true });
  });
  const stop = (): Promise<void> => {
    stopped ??= (async () => {
      await Promise.all(servers.map((server) => server.stop()));
      try {
        if (watchdog.pid !== undefined) process.kill(watchdog.pid, 'SIGKILL');
      } catch {
        // Watchdog already gone.
      }
      await rm(dir, { recursive: true, force: true, maxRetries: 3 });
      unregister();
    })();
    return stopped;
  };

  try {
    // Spawn all first: a clustered server is only ready once its routes are up.
    for (const server of servers) server.spawn();
    await Promise.all(servers.map((server) => server.start()));
    if (jetstream && nodes > 1) await waitForAgreedMetaLeader(specs, readyTimeoutMs);
  } catch (error) {
    await stop();
    throw error;
  }
  options.owner?.after(stop);
  return {
    urls: servers.map((server) => server.url),
    servers,
    dir,
    stop,
    [Symbol.asyncDispose]: stop,
  };
}

/** Every server names the same meta leader: JetStream API calls will now succeed anywhere. */
async function waitForAgreedMetaLeader(specs: ServerSpec[], timeoutMs: number): Promise<void> {
  await waitFor(
    async () => {
      const leaders = await Promise.all(
        specs.map(async (spec) => {
          const jsz = await getJson(`http://127.0.0.1:${spec.ports.monitor}/jsz`);
          return (jsz?.meta_cluster as { leader?: string } | undefined)?.leader ?? '';
        }),
      );
      return leaders[0] !== '' && leaders.every((leader) => leader === leaders[0]);
    },
    { timeoutMs, intervalMs: 100, message: 'the NATS servers to agree on a JetStream meta leader' },
  );
}

function isPortClash(error: unknown): boolean {
  return error instanceof Error && /address already in use/i.test(error.message);
}

async function startWithRetry(options: NatsClusterOptions, defaultNodes: number): Promise<NatsCluster> {
  // Free ports are only free until someone else binds them; on a clash, pick new ones.
  for (let attempt = 1; ; attempt += 1) {
    try {
      return await startOnce(options, defaultNodes);
    } catch (error) {
      if (attempt >= 3 || !isPortClash(error)) throw error;
      await sleep(100 * attempt);
    }
  }
}

/** A cluster of `nodes` (default 3) routed nats-servers with JetStream (default on). */
export function startNatsCluster(options: NatsClusterOptions = {}): Promise<NatsCluster> {
  return startWithRetry(options, 3);
}

/** One nats-server (JetStream on unless `jetstream: false`). */
export async function startNatsServer(
  options: Omit<NatsClusterOptions, 'nodes'> = {},
): Promise<NatsCluster & { url: string; server: NatsServerHandle }> {
  const cluster = await startWithRetry({ ...options, nodes: 1 }, 1);
  return { ...cluster, url: cluster.urls[0]!, server: cluster.servers[0]! };
}
