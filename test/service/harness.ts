/**
 * Test harness for the embedded service: in-process (fast, for API behaviour) or as a real
 * `pixelfleet start` child process (for kill -9, SIGTERM and restarts).
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { serviceNodeFlags } from '../../src/cli/node-flags.ts';
import { loadConfig } from '../../src/config/index.ts';
import { createLogger } from '../../src/observability/index.ts';
import { type EmbeddedService, startEmbeddedService } from '../../src/service/embedded.ts';
import { tempDir } from '../support/index.ts';

export { tempDir, waitFor } from '../support/index.ts';

export const repoRoot = fileURLToPath(new URL('../../', import.meta.url));
export const corpusDir = fileURLToPath(new URL('../../../shared/corpus/', import.meta.url));
export const nodeBinary = process.execPath;

export function corpusJpegs(): string[] {
  return readdirSync(join(corpusDir, 'jpeg'))
    .filter((name) => name.endsWith('.jpg'))
    .sort()
    .map((name) => join(corpusDir, 'jpeg', name));
}

export function corpusFile(relative: string): Buffer {
  return readFileSync(join(corpusDir, relative));
}

/** What a test needs to call the API as a customer. */
export interface ApiTarget {
  url: string;
  apiKey: string;
  /** `Authorization: Bearer <apiKey>`. */
  auth: Record<string, string>;
}

export const testAdminToken = 'pixelfleet-test-admin-token-0123456789';

/** Calls the admin API with the test admin token; throws on a non-2xx answer. */
export async function adminCall(
  adminUrl: string,
  path: string,
  body?: unknown,
  method = body === undefined ? 'GET' : 'POST',
): Promise<Record<string, unknown>> {
  const response = await fetch(`${adminUrl}${path}`, {
    method,
    headers: {
      authorization: `Bearer ${testAdminToken}`,
      ...(body === undefined ? {} : { 'content-type': 'application/json' }),
    },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  const text = await response.text();
  if (!response.ok) throw new Error(`admin ${path}: ${response.status} ${text}`);
  return JSON.parse(text);
}

/** Creates (or replaces) a tier with every limit given: defaults generous, override what a test needs. */
export async function defineTier(
  adminUrl: string,
  name: string,
  limits: Record<string, unknown>,
): Promise<void> {
  await adminCall(
    adminUrl,
    `/admin/tiers/${name}`,
    {
      enabled: true,
      ratePerSecond: 1000,
      burst: 1000,
      concurrentJobs: 64,
      maxInputBytes: 1024 * 1024,
      maxInputPixels: 50_000_000,
      monthlyConversions: null,
      priceMicroUsdPerCpuSecond: 100,
      priceMicroUsdPerGigabyteIn: 10_000,
      priceMicroUsdPerGigabyteOut: 20_000,
      ...limits,
    },
    'PUT',
  );
}

/** Creates an account on `tier` and issues it a key with every customer scope. */
export async function issueTestKey(
  adminUrl: string,
  options: { tier?: string; name?: string; scopes?: string[] } = {},
): Promise<{ accountId: string; apiKey: string; keyId: string }> {
  const created = (await adminCall(adminUrl, '/admin/accounts', {
    name: options.name ?? 'test tenant',
    tier: options.tier ?? 'enterprise',
  })) as { account: { id: string } };
  const issued = (await adminCall(adminUrl, `/admin/accounts/${created.account.id}/keys`, {
    scopes: options.scopes ?? ['images:write', 'jobs:read', 'usage:read'],
  })) as { apiKey: string; key: { id: string } };
  return { accountId: created.account.id, apiKey: issued.apiKey, keyId: issued.key.id };
}

export function target(url: string, apiKey: string): ApiTarget {
  return { url, apiKey, auth: { authorization: `Bearer ${apiKey}` } };
}

export async function startInProcess(
  argv: string[] = [],
): Promise<EmbeddedService & ApiTarget & { dataDir: string; accountId: string }> {
  const dir = await tempDir();
  const config = loadConfig({
    argv: ['--http-port', '0', '--admin-port', '0', '--data-dir', dir.path, ...argv],
    env: {},
  });
  const service = await startEmbeddedService(config, {
    logger: createLogger({ level: 'silent' }),
    env: { PIXELFLEET_ADMIN_TOKEN: testAdminToken },
  });
  const { accountId, apiKey } = await issueTestKey(service.adminUrl);
  return {
    ...service,
    ...target(service.url, apiKey),
    accountId,
    dataDir: dir.path,
    close: async () => {
      await service.close();
      dir.remove();
    },
  };
}

export interface ServiceProcess extends ApiTarget {
  adminUrl: string;
  child: ChildProcess;
  /** Every JSON log line so far. */
  logs: Record<string, unknown>[];
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** Pids of the worker child processes. */
  workerPids(): number[];
  kill(signal?: NodeJS.Signals): void;
  /** Ctrl-C: SIGINT to the whole process group (needs `detached`). */
  interrupt(): void;
}

/**
 * Runs `pixelfleet start` as a child process. Issues a fresh key unless `apiKey` is given (a
 * restart on the same data directory keeps the accounts and keys of the previous run).
 */
export async function startProcess(
  argv: string[],
  options: {
    env?: NodeJS.ProcessEnv;
    timeoutMs?: number;
    apiKey?: string;
    /** Its own process group, as in a terminal, so `interrupt()` can play Ctrl-C. */
    detached?: boolean;
  } = {},
): Promise<ServiceProcess> {
  const argsWithPorts = ['start', '--http-port', '0', '--admin-port', '0', ...argv];
  const child = spawn(
    nodeBinary,
    [...serviceNodeFlags, join(repoRoot, 'src/cli/main.ts'), ...argsWithPorts],
    {
      cwd: repoRoot,
      env: {
        PATH: process.env.PATH,
        HOME: process.env.HOME,
        PIXELFLEET_ADMIN_TOKEN: testAdminToken,
        ...options.env,
      },
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: options.detached ?? false,
    },
  );
  const logs: Record<string, unknown>[] = [];
  let stderr = '';
  child.stderr!.on('data', (chunk) => {
    stderr += chunk;
  });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once('exit', (code, signal) => resolve({ code, signal })),
  );
  const listening = await new Promise<{ url: string; adminUrl: string }>((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`service did not start in time; stderr: ${stderr}`)),
      options.timeoutMs ?? 30_000,
    );
    createInterface({ input: child.stdout! }).on('line', (line) => {
      let entry: Record<string, unknown>;
      try {
        entry = JSON.parse(line);
      } catch {
        return;
      }
      logs.push(entry);
      if (entry.msg === 'pixelfleet listening') {
        clearTimeout(timer);
        resolve({ url: entry.url as string, adminUrl: entry.adminUrl as string });
      }
    });
    exited.then(({ code }) => {
      clearTimeout(timer);
      reject(new Error(`service exited with ${code} before listening; stderr: ${stderr}`));
    });
  });
  const apiKey = options.apiKey ?? (await issueTestKey(listening.adminUrl)).apiKey;
  return {
    ...target(listening.url, apiKey),
    adminUrl: listening.adminUrl,
    child,
    logs,
    exited,
    workerPids: () => childPids(child.pid!),
    kill: (signal = 'SIGKILL') => {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
    },
    interrupt: () => {
      if (child.exitCode === null && child.signalCode === null) process.kill(-child.pid!, 'SIGINT');
    },
  };
}

/** Direct children of a process, from /proc. */
export function childPids(parent: number): number[] {
  const pids: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      if (Number(fields[1]) === parent) pids.push(Number(entry));
    } catch {
      // The process went away while we looked.
    }
  }
  return pids;
}

/** A process's CPU time so far (user + system) in clock ticks, from /proc; 0 once it is gone. */
export function cpuTicks(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return Number(fields[11]) + Number(fields[12]);
  } catch {
    return 0;
  }
}

/** Whether any of these processes used CPU over two consecutive 20 ms looks (ticks are 10 ms). */
export async function anyBusy(pids: number[]): Promise<boolean> {
  const first = pids.map(cpuTicks);
  await sleep(20);
  const second = pids.map(cpuTicks);
  await sleep(20);
  return pids.some((pid, at) => second[at]! > first[at]! && cpuTicks(pid) > second[at]!);
}

export async function resize(
  to: ApiTarget,
  image: Uint8Array,
  query = '',
  headers: Record<string, string> = {},
): Promise<Response> {
  return fetch(`${to.url}/v1/resize${query ? `?${query}` : ''}`, {
    method: 'POST',
    body: image,
    headers: { 'content-type': 'application/octet-stream', ...to.auth, ...headers },
  });
}
