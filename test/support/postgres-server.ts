/**
 * A real, throwaway PostgreSQL server for tests: `startPostgres()` runs `initdb` into a temp dir
 * and starts `postgres` on a free loopback port, with a database and a password-protected role
 * for the test, and resolves once that role can connect over TCP.
 *
 * PostgreSQL refuses to run as root, so when the test runs as root the cluster is owned by and
 * run as the `postgres` user. Local (Unix socket) connections are trusted, for the bootstrap only;
 * TCP connections need the role's password (SCRAM), as a production server would ask.
 *
 * Nothing outlives the test: `stop()` (also registered on the owner's `after`) kills the
 * postmaster and every process it forked, and removes the dir; an exit hook does the same if the test process ends
 * early, and a tiny watchdog shell does it if the test process is killed outright.
 */
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { chownSync, closeSync, openSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir, userInfo } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import pg from 'pg';
import { type CleanupOwner, onExit } from './cleanup.ts';
import { freePort } from './free-port.ts';
import { sleep, waitFor } from './wait-for.ts';

const run = promisify(execFile);

/** The newest PostgreSQL server Debian installed (`/usr/lib/postgresql/<major>/bin`). */
export const postgresBinDir = process.env.PIXELFLEET_POSTGRES_BIN ?? newestDebianPostgres();

function newestDebianPostgres(): string {
  const root = '/usr/lib/postgresql';
  let majors: string[] = [];
  try {
    majors = readdirSync(root).filter((name) => /^\d+$/.test(name));
  } catch {
    // Not installed: the first start fails and names the directory it looked in.
  }
  const newest = majors.sort((a, b) => Number(b) - Number(a))[0] ?? '15';
  return join(root, newest, 'bin');
}

export interface PostgresServerOptions {
  /** A test context (or suite): `stop()` is registered on its `after` hook. */
  owner?: CleanupOwner;
  /** How long to wait for the server to accept connections. Default 30 s. */
  readyTimeoutMs?: number;
  /** Extra `-c name=value` server settings. */
  settings?: Record<string, string | number>;
}

export interface PostgresServer {
  /** `postgres://pixelfleet:<password>@127.0.0.1:<port>/pixelfleet`; stable across restarts. */
  readonly url: string;
  /** A superuser URL over the Unix socket (for tests that inspect or sabotage the server). */
  readonly adminUrl: string;
  readonly port: number;
  /** Data and socket directory; removed by `stop()`. */
  readonly dir: string;
  /** The postmaster's pid, or -1 while it is not running. */
  readonly pid: number;
  /** Stops the server (immediate shutdown of the postmaster and its children) and removes the dir. */
  stop(): Promise<void>;
  /**
   * Sends a signal to the postmaster and every backend and helper it forked (each runs in its own
   * session, so a process-group signal would miss them). SIGSTOP/SIGCONT resolve
   * at once; other signals resolve once the postmaster has exited.
   */
  kill(signal?: NodeJS.Signals): Promise<void>;
  /** Freezes every server process (SIGSTOP): connections stay open and nothing answers. */
  pause(): Promise<void>;
  resume(): Promise<void>;
  /** `pg_ctl stop -m immediate`: no checkpoint, every connection dropped at once. */
  crash(): Promise<void>;
  /** Starts the server again on the same port and data dir (after `crash` or `kill`). */
  restart(): Promise<void>;
  [Symbol.asyncDispose](): Promise<void>;
}

const user = 'pixelfleet';
const database = 'pixelfleet';

/**
 * Stops the server once the test process is gone, then removes the dir. The postmaster's pid is
 * read from postmaster.pid (it changes on restart); woken up and sent SIGQUIT (immediate
 * shutdown), it takes its children down itself.
 */
const watchdogScript = `
parent="$1"; dir="$2"
while kill -0 "$parent" 2>/dev/null; do sleep 1; done
pid=$(head -n 1 "$dir/data/postmaster.pid" 2>/dev/null)
if [ -n "$pid" ] && grep -q postgres "/proc/$pid/cmdline" 2>/dev/null; then
  pkill -CONT -P "$pid"; kill -CONT "$pid"; kill -QUIT "$pid"; sleep 3
  pkill -KILL -P "$pid"; kill -KILL "$pid"
fi
rm -rf "$dir"
`;

/** The pids of the processes `parent` forked (from /proc), for signals the postmaster cannot relay. */
function childrenOf(parent: number): number[] {
  const children: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      // Fields after the parenthesised command name: state, ppid, …
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (ppid === parent) children.push(Number(entry));
    } catch {
      // The process ended while we looked.
    }
  }
  return children;
}

function signalQuietly(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(pid, signal);
  } catch {
    // Already gone.
  }
}

interface Owner {
  uid: number;
  gid: number;
}

async function serverOwner(): Promise<Owner | undefined> {
  if (process.getuid?.() !== 0) return undefined;
  const [uid, gid] = await Promise.all([run('id', ['-u', 'postgres']), run('id', ['-g', 'postgres'])]);
  return { uid: Number(uid.stdout.trim()), gid: Number(gid.stdout.trim()) };
}

function logTail(logFile: string): string {
  try {
    return readFileSync(logFile, 'utf8').split('\n').slice(-15).join('\n');
  } catch {
    return '(no log)';
  }
}

export async function startPostgres(options: PostgresServerOptions = {}): Promise<PostgresServer> {
  const readyTimeoutMs = options.readyTimeoutMs ?? 30_000;
  const owner = await serverOwner();
  const dir = await mkdtemp(join(tmpdir(), 'pixelfleet-postgres-'));
  const dataDir = join(dir, 'data');
  const logFile = join(dir, 'server.log');
  const password = `pw-${Math.random().toString(36).slice(2)}`;
  if (owner !== undefined) chownSync(dir, owner.uid, owner.gid);
  const asOwner = owner === undefined ? {} : { uid: owner.uid, gid: owner.gid };
  const superuser = owner === undefined ? userInfo().username : 'postgres';

  let child: ChildProcess | null = null;
  let exited: Promise<void> = Promise.resolve();
  let watchdog: ChildProcess | undefined;
  /** Signals the postmaster and its children; stops the postmaster first so it forks no more. */
  const signalServerNow = (signal: NodeJS.Signals): void => {
    const postmaster = child?.pid;
    if (postmaster === undefined) return;
    if (signal === 'SIGCONT') {
      for (const pid of childrenOf(postmaster)) signalQuietly(pid, signal);
      signalQuietly(postmaster, signal);
    } else {
      signalQuietly(postmaster, signal);
      for (const pid of childrenOf(postmaster)) signalQuietly(pid, signal);
    }
  };
  const unregister = onExit(() => {
    signalServerNow('SIGCONT');
    signalServerNow('SIGKILL');
    try {
      if (watchdog?.pid !== undefined) process.kill(watchdog.pid, 'SIGKILL');
    } catch {
      // Watchdog already gone.
    }
    rmSync(dir, { recursive: true, force: true });
  });

  // Minimal and fast: no fsync while building the template cluster, C locale, no extra auth setup.
  await run(
    join(postgresBinDir, 'initdb'),
    [
      '-D',
      dataDir,
      '--no-sync',
      '--no-instructions',
      '-U',
      superuser,
      '--auth-local=trust',
      '--auth-host=scram-sha-256',
      '-E',
      'UTF8',
      '--locale=C',
    ],
    { ...asOwner, cwd: dir, timeout: 60_000 },
  );

  let port = await freePort();
  const settings: Record<string, string | number> = {
    listen_addresses: '127.0.0.1',
    unix_socket_directories: dir,
    fsync: 'on',
    shared_buffers: '16MB',
    max_connections: 40,
    ...options.settings,
  };

  const spawnServer = (): void => {
    const args = ['-D', dataDir, '-p', String(port)];
    for (const [name, value] of Object.entries(settings)) args.push('-c', `${name}=${value}`);
    const log = openSync(logFile, 'a');
    if (owner !== undefined) chownSync(logFile, owner.uid, owner.gid);
    // Detached: a Ctrl-C aimed at the test runner's group is the test's to handle, not the server's.
    const spawned = spawn(join(postgresBinDir, 'postgres'), args, {
      ...asOwner,
      cwd: dir,
      detached: true,
      stdio: ['ignore', log, log],
    });
    closeSync(log);
    spawned.unref();
    child = spawned;
    exited = new Promise((resolve) => {
      const done = (): void => {
        if (child === spawned) child = null;
        resolve();
      };
      spawned.once('exit', done);
      spawned.once('error', done);
    });
  };

  const adminConfig = (): pg.ClientConfig => ({
    host: dir,
    port,
    user: superuser,
    database: 'postgres',
    connectionTimeoutMillis: 2_000,
  });

  const waitUntilReady = async (): Promise<void> => {
    const started = child;
    try {
      await waitFor(
        async () => {
          if (child !== started || child === null) throw new Error('postgres exited during start-up');
          const client = new pg.Client(adminConfig());
          client.on('error', () => {});
          try {
            await client.connect();
            await client.query('SELECT 1');
            return true;
          } finally {
            await client.end().catch(() => {});
          }
        },
        { timeoutMs: readyTimeoutMs, intervalMs: 50, message: 'postgres to accept connections' },
      );
    } catch (error) {
      throw new Error(`postgres did not become ready; log tail:\n${logTail(logFile)}`, { cause: error });
    }
  };

  const kill = async (signal: NodeJS.Signals = 'SIGKILL'): Promise<void> => {
    if (child === null) return;
    if (signal !== 'SIGSTOP' && signal !== 'SIGCONT') signalServerNow('SIGCONT');
    signalServerNow(signal);
    if (signal === 'SIGSTOP' || signal === 'SIGCONT' || signal === 'SIGTSTP') return;
    await exited;
  };

  const crash = async (): Promise<void> => {
    const postmaster = child;
    if (postmaster?.pid === undefined) return;
    const children = childrenOf(postmaster.pid);
    signalServerNow('SIGCONT');
    // SIGQUIT to the postmaster is what `pg_ctl stop -m immediate` sends.
    postmaster.kill('SIGQUIT');
    const timer = setTimeout(() => signalServerNow('SIGKILL'), 5_000);
    await exited;
    clearTimeout(timer);
    // The postmaster takes its children down; make sure none lingers (orphans leave /proc's
    // parent link behind, so use the list taken before).
    for (const pid of children) {
      try {
        if (readFileSync(`/proc/${pid}/cmdline`, 'utf8').startsWith('postgres'))
          signalQuietly(pid, 'SIGKILL');
      } catch {
        // Already gone.
      }
    }
  };

  const restart = async (): Promise<void> => {
    await crash();
    // A killed postmaster may leave its pid file; postgres removes a stale one itself.
    for (let attempt = 1; ; attempt++) {
      spawnServer();
      try {
        await waitUntilReady();
        return;
      } catch (error) {
        // The port may have been taken meanwhile only in theory; give a second chance.
        if (attempt >= 2) throw error;
        await kill('SIGKILL');
        await sleep(200);
      }
    }
  };

  let stopped: Promise<void> | null = null;
  const stop = (): Promise<void> => {
    stopped ??= (async () => {
      await crash();
      try {
        if (watchdog?.pid !== undefined) process.kill(watchdog.pid, 'SIGKILL');
      } catch {
        // Watchdog already gone.
      }
      await rm(dir, { recursive: true, force: true, maxRetries: 3 });
      unregister();
    })();
    return stopped;
  };

  try {
    for (let attempt = 1; ; attempt++) {
      spawnServer();
      try {
        await waitUntilReady();
        break;
      } catch (error) {
        // Someone took the free port before postgres bound it: pick another.
        if (attempt >= 3 || !/could not bind|Address already in use/i.test(logTail(logFile))) throw error;
        await kill('SIGKILL');
        port = await freePort();
      }
    }
    watchdog = spawn('sh', ['-c', watchdogScript, 'postgres-watchdog', String(process.pid), dir], {
      detached: true,
      stdio: 'ignore',
    });
    watchdog.unref();

    const admin = new pg.Client(adminConfig());
    await admin.connect();
    try {
      await admin.query(`CREATE ROLE ${user} LOGIN PASSWORD '${password}'`);
      await admin.query(`CREATE DATABASE ${database} OWNER ${user}`);
    } finally {
      await admin.end();
    }
  } catch (error) {
    await stop();
    throw error;
  }
  const server: PostgresServer = {
    get url() {
      return `postgres://${user}:${password}@127.0.0.1:${port}/${database}`;
    },
    get adminUrl() {
      return `postgres://${superuser}@localhost:${port}/${database}?host=${encodeURIComponent(dir)}`;
    },
    get port() {
      return port;
    },
    dir,
    get pid() {
      return child?.pid ?? -1;
    },
    stop,
    kill,
    pause: () => kill('SIGSTOP'),
    resume: () => kill('SIGCONT'),
    crash,
    restart,
    [Symbol.asyncDispose]: stop,
  };
  options.owner?.after(stop);
  return server;
}
