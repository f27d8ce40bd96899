/**
 * Test harness for the local cluster: runs `pixelfleet cluster` as a child process (each role
 * its own process under its supervisor), reads where everything listens from its log, and
 * tracks each member's pid across restarts. For end-to-end and chaos tests:
 *
 *   const cluster = await startLocalCluster(t, { apiServers: 2, workers: 2 });
 *   cluster.kill('api', 1, 'SIGKILL');          // api-1; the supervisor restarts it
 *   await cluster.stop();                       // SIGINT, like Ctrl-C
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { type CleanupOwner, onExit, tempDir } from '../support/index.ts';

export const repoRoot = fileURLToPath(new URL('../../', import.meta.url));

export type ClusterRole = 'gateway' | 'api' | 'queue' | 'worker' | 'identity';

export interface LocalClusterOptions {
  apiServers?: number;
  workers?: number;
  workerConverters?: number;
  strategy?: string;
  /** Extra settings for every api server, e.g. ['--sync-timeout', '10s']. */
  apiArgs?: string[];
  /** Extra settings for every worker, e.g. ['--job-timeout', '2s']. */
  workerArgs?: string[];
  logLevel?: string;
  startTimeoutMs?: number;
  /** Extra `pixelfleet cluster` arguments, e.g. ['--queue', 'nats://127.0.0.1:4222']. */
  clusterArgs?: string[];
}

export interface LocalCluster {
  gatewayUrl: string;
  gatewayControlUrl: string;
  adminUrl: string;
  adminToken: string;
  apiUrls: string[];
  apiInternalUrls: string[];
  queueClients: string[];
  dataDir: string;
  /** The `pixelfleet cluster` process itself. */
  child: ChildProcess;
  /** Every JSON line the supervisor logged. */
  logs: Record<string, unknown>[];
  /** Current pid of each member, by role, ordered by index (1-based names: api-1 is index 1). */
  pids(): Record<ClusterRole, number[]>;
  pid(role: ClusterRole, index: number): number;
  /** Signals one member (default SIGKILL); the supervisor restarts it. Returns the pid signalled. */
  kill(role: ClusterRole, index: number, signal?: NodeJS.Signals): number;
  /** Resolves once member `role-index` runs with a pid other than `previousPid`. */
  restarted(role: ClusterRole, index: number, previousPid: number, timeoutMs?: number): Promise<number>;
  /** Calls the admin API with the cluster's admin token. */
  admin(path: string, body?: unknown, method?: string): Promise<Record<string, unknown>>;
  /** Creates an account and a key with every customer scope. */
  issueKey(tier?: string): Promise<{ accountId: string; keyId: string; apiKey: string }>;
  /** Stops the cluster like Ctrl-C (SIGINT to its process group) and resolves with how it exited. */
  stop(signal?: NodeJS.Signals): Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

export async function startLocalCluster(
  owner: CleanupOwner,
  options: LocalClusterOptions = {},
): Promise<LocalCluster> {
  const dir = await tempDir();
  const args = [
    join(repoRoot, 'src/cli/main.ts'),
    'cluster',
    '--data-dir',
    dir.path,
    '--http-port',
    '0',
    '--api-servers',
    String(options.apiServers ?? 2),
    '--workers',
    String(options.workers ?? 2),
    '--worker-converters',
    String(options.workerConverters ?? 1),
    '--strategy',
    options.strategy ?? 'round-robin',
    '--log-level',
    options.logLevel ?? 'info',
    // `--name=value`: parseArgs refuses a separate value that starts with a dash.
    ...(options.apiArgs === undefined ? [] : [`--api-args=${options.apiArgs.join(' ')}`]),
    ...(options.workerArgs === undefined ? [] : [`--worker-args=${options.workerArgs.join(' ')}`]),
    ...(options.clusterArgs ?? []),
  ];
  const child = spawn(process.execPath, args, {
    cwd: repoRoot,
    env: { PATH: process.env.PATH, HOME: process.env.HOME },
    stdio: ['ignore', 'pipe', 'pipe'],
    // Its own process group, as in a terminal: `stop('SIGINT')` signals the whole group, like
    // Ctrl-C does.
    detached: true,
  });
  const logs: Record<string, unknown>[] = [];
  const current = new Map<string, number>();
  let stderr = '';
  child.stderr!.on('data', (chunk) => {
    stderr += chunk;
  });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once('exit', (code, signal) => resolve({ code, signal })),
  );
  // Last resort: never leave a region running after the test process ends.
  const forget = onExit(() => {
    for (const pid of current.values()) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // Already gone.
      }
    }
    child.kill('SIGKILL');
    dir.remove();
  });
  const ready = await new Promise<Record<string, unknown>>((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`the local cluster did not start in time; stderr: ${stderr}`)),
      options.startTimeoutMs ?? 80_000,
    );
    createInterface({ input: child.stdout! }).on('line', (line) => {
      let entry: Record<string, unknown>;
      try {
        entry = JSON.parse(line);
      } catch {
        return;
      }
      logs.push(entry);
      if (entry.msg === 'process started') current.set(entry.process as string, entry.pid as number);
      if (entry.msg === 'local cluster ready') {
        clearTimeout(timer);
        resolve(entry);
      }
    });
    exited.then(({ code }) => {
      clearTimeout(timer);
      reject(new Error(`the local cluster exited with ${code} before it was ready; stderr: ${stderr}`));
    });
  });
  const adminToken = readFileSync(ready.adminTokenPath as string, 'utf8').trim();
  const adminUrl = ready.adminUrl as string;

  let stopping: Promise<{ code: number | null; signal: NodeJS.Signals | null }> | undefined;
  const stop = (signal: NodeJS.Signals = 'SIGINT') => {
    stopping ??= (async () => {
      if (child.exitCode === null && child.signalCode === null) {
        // Ctrl-C reaches every process of the terminal's foreground group; other signals are
        // sent to the cluster process alone, as `kill <pid>` would.
        if (signal === 'SIGINT') process.kill(-child.pid!, signal);
        else child.kill(signal);
      }
      const result = await exited;
      forget();
      dir.remove();
      return result;
    })();
    return stopping;
  };
  owner.after(async () => {
    await stop();
  });

  const pids = () => {
    const byRole: Record<ClusterRole, number[]> = {
      gateway: [],
      api: [],
      queue: [],
      worker: [],
      identity: [],
    };
    for (const [name, pid] of [...current].sort(([a], [b]) => a.localeCompare(b, 'en', { numeric: true }))) {
      const role = name.slice(0, name.lastIndexOf('-')) as ClusterRole;
      byRole[role]?.push(pid);
    }
    return byRole;
  };
  const pid = (role: ClusterRole, index: number) => {
    const found = current.get(`${role}-${index}`);
    if (found === undefined) throw new RangeError(`no member ${role}-${index}`);
    return found;
  };
  const admin = async (path: string, body?: unknown, method = body === undefined ? 'GET' : 'POST') => {
    const response = await fetch(`${adminUrl}${path}`, {
      method,
      headers: {
        authorization: `Bearer ${adminToken}`,
        ...(body === undefined ? {} : { 'content-type': 'application/json' }),
      },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
    const text = await response.text();
    if (!response.ok) throw new Error(`admin ${path}: ${response.status} ${text}`);
    return JSON.parse(text) as Record<string, unknown>;
  };
  return {
    gatewayUrl: ready.gatewayUrl as string,
    gatewayControlUrl: ready.gatewayControlUrl as string,
    adminUrl,
    adminToken,
    apiUrls: ready.apiUrls as string[],
    apiInternalUrls: ready.apiInternalUrls as string[],
    queueClients: ready.queueClients as string[],
    dataDir: dir.path,
    child,
    logs,
    pids,
    pid,
    kill(role, index, signal = 'SIGKILL') {
      const target = pid(role, index);
      process.kill(target, signal);
      return target;
    },
    async restarted(role, index, previousPid, timeoutMs = 30_000) {
      const deadline = Date.now() + timeoutMs;
      while (Date.now() < deadline) {
        const now = current.get(`${role}-${index}`);
        if (now !== undefined && now !== previousPid) return now;
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
      throw new Error(`${role}-${index} was not restarted within ${timeoutMs} ms`);
    },
    admin,
    async issueKey(tier = 'enterprise') {
      const created = (await admin('/admin/accounts', { name: 'cluster tenant', tier })) as {
        account: { id: string };
      };
      const issued = (await admin(`/admin/accounts/${created.account.id}/keys`, {
        scopes: ['images:write', 'jobs:read', 'usage:read'],
      })) as { apiKey: string; key: { id: string } };
      return { accountId: created.account.id, keyId: issued.key.id, apiKey: issued.apiKey };
    },
    stop,
  };
}

/** True while a process with this pid exists. */
export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}
