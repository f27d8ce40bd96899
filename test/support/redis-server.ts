/**
 * A real `redis-server` for tests and benchmarks: `startRedisServer()` runs one on a free loopback
 * port in a temp dir, without persistence, and resolves once it answers PING. Fault injection:
 * `kill('SIGSTOP')` pauses it (connections stay open, commands hang), `kill('SIGKILL')` crashes it,
 * `restart()` brings it back on the same port (empty: nothing is persisted).
 * Nothing outlives the test: `stop()` (also registered on the owner's `after` hook) kills the
 * server and removes the dir; an exit hook does the same if the test process ends early; and a
 * tiny watchdog shell kills the server if the test process itself is killed outright.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { mkdir, readFile, rm } from 'node:fs/promises';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type CleanupOwner, onExit } from './cleanup.ts';
import { freePort } from './free-port.ts';
import { sleep, waitFor } from './wait-for.ts';

export interface RedisServerOptions {
  /** A test context (or suite): `stop()` is registered on its `after` hook. */
  owner?: CleanupOwner;
  /** How long to wait for the server to answer PING. Default 15 s. */
  readyTimeoutMs?: number;
  /** redis-server binary. Default `redis-server` from PATH. */
  binary?: string;
}

export interface RedisServer {
  /** redis://127.0.0.1:<port>; stable across restarts. */
  readonly url: string;
  readonly port: number;
  /** Current process id, or -1 while the server is not running. */
  readonly pid: number;
  readonly running: boolean;
  readonly dir: string;
  readonly logFile: string;
  /**
   * Send a signal (default SIGKILL). Resolves once the process has exited, except for
   * SIGSTOP/SIGCONT, which resolve at once.
   */
  kill(signal?: NodeJS.Signals): Promise<void>;
  /** Start it again on the same port (stopping it first if it still runs); resolves when ready. */
  restart(): Promise<void>;
  /** Kill the server (SIGTERM, then SIGKILL after 3 s) and remove the dir. Idempotent. */
  stop(): Promise<void>;
  [Symbol.asyncDispose](): Promise<void>;
}

/** Kills the server once the test process is gone, checking the pid still names redis-server. */
const watchdogScript = `
parent="$1"; dir="$2"
while kill -0 "$parent" 2>/dev/null; do sleep 1; done
if [ -f "$dir/redis.pid" ]; then
  pid=$(cat "$dir/redis.pid")
  if grep -q redis-server "/proc/$pid/cmdline" 2>/dev/null; then kill -9 "$pid"; fi
fi
rm -rf "$dir"
`;

/** One PING over a raw socket: true on +PONG. No client library, so no reconnect machinery. */
function ping(port: number, timeoutMs = 1000): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host: '127.0.0.1', port });
    const finish = (result: boolean): void => {
      socket.destroy();
      resolve(result);
    };
    socket.setTimeout(timeoutMs, () => finish(false));
    socket.once('error', () => finish(false));
    socket.once('connect', () => socket.write('PING\r\n'));
    socket.once('data', (data) => finish(data.toString('latin1').startsWith('+PONG')));
  });
}

async function logTail(logFile: string): Promise<string> {
  try {
    return (await readFile(logFile, 'utf8')).split('\n').slice(-15).join('\n');
  } catch {
    return '(no log)';
  }
}

async function startOnce(options: RedisServerOptions): Promise<RedisServer> {
  const binary = options.binary ?? 'redis-server';
  const readyTimeoutMs = options.readyTimeoutMs ?? 15_000;
  const dir = join(
    tmpdir(),
    `pixelfleet-redis-${process.pid}-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 8)}`,
  );
  await mkdir(dir, { recursive: true });
  const port = await freePort();
  const logFile = join(dir, 'redis.log');
  const pidFile = join(dir, 'redis.pid');
  const args = [
    '--port',
    String(port),
    '--bind',
    '127.0.0.1',
    '--dir',
    dir,
    '--save',
    '',
    '--appendonly',
    'no',
    '--logfile',
    logFile,
    '--daemonize',
    'no',
  ];

  let child: ChildProcess | null = null;
  let exited: Promise<void> = Promise.resolve();
  const spawnServer = (): ChildProcess => {
    const started = spawn(binary, args, { stdio: 'ignore' });
    started.unref();
    child = started;
    if (started.pid !== undefined) writeFileSync(pidFile, String(started.pid));
    exited = new Promise((resolve) => {
      const done = (): void => {
        if (child === started) child = null;
        try {
          unlinkSync(pidFile);
        } catch {
          // Already gone.
        }
        resolve();
      };
      started.once('exit', done);
      started.once('error', done);
    });
    return started;
  };
  const start = async (): Promise<void> => {
    const started = spawnServer();
    try {
      await waitFor(
        async () => {
          if (child !== started) throw new Error('redis-server exited during start-up');
          return ping(port);
        },
        { timeoutMs: readyTimeoutMs, intervalMs: 25, message: 'redis-server to answer PING' },
      );
    } catch (error) {
      throw new Error(`redis-server did not become ready; log tail:\n${await logTail(logFile)}`, {
        cause: error,
      });
    }
  };
  const kill = async (signal: NodeJS.Signals = 'SIGKILL'): Promise<void> => {
    const running = child;
    if (running === null) return;
    running.kill(signal);
    if (signal === 'SIGSTOP' || signal === 'SIGCONT') return;
    await exited;
  };
  const terminate = async (): Promise<void> => {
    const running = child as ChildProcess | null;
    if (running === null) return;
    running.kill('SIGCONT'); // A paused server cannot handle SIGTERM.
    running.kill('SIGTERM');
    const timer = setTimeout(() => running.kill('SIGKILL'), 3000);
    await exited;
    clearTimeout(timer);
  };

  const watchdog = spawn('sh', ['-c', watchdogScript, 'redis-watchdog', String(process.pid), dir], {
    detached: true,
    stdio: 'ignore',
  });
  watchdog.unref();
  const killWatchdog = (): void => {
    try {
      if (watchdog.pid !== undefined) process.kill(watchdog.pid, 'SIGKILL');
    } catch {
      // Watchdog already gone.
    }
  };
  const unregister = onExit(() => {
    try {
      (child as ChildProcess | null)?.kill('SIGKILL');
    } catch {
      // Already gone.
    }
    killWatchdog();
    rmSync(dir, { recursive: true, force: true });
  });
  let stopped: Promise<void> | null = null;
  const stop = (): Promise<void> => {
    stopped ??= (async () => {
      await terminate();
      killWatchdog();
      await rm(dir, { recursive: true, force: true, maxRetries: 3 });
      unregister();
    })();
    return stopped;
  };

  try {
    await start();
  } catch (error) {
    await stop();
    throw error;
  }
  options.owner?.after(stop);
  return {
    url: `redis://127.0.0.1:${port}`,
    port,
    get pid() {
      return (child as ChildProcess | null)?.pid ?? -1;
    },
    get running() {
      return child !== null;
    },
    dir,
    logFile,
    kill,
    restart: async () => {
      await terminate();
      await start();
    },
    stop,
    [Symbol.asyncDispose]: stop,
  };
}

/** One redis-server on a free loopback port; retried on a port clash. */
export async function startRedisServer(options: RedisServerOptions = {}): Promise<RedisServer> {
  for (let attempt = 1; ; attempt += 1) {
    try {
      return await startOnce(options);
    } catch (error) {
      // Free ports are only free until someone else binds them; on a clash, pick a new one.
      const clash = /address already in use/i.test(String((error as Error).message));
      if (attempt >= 3 || !clash) throw error;
      await sleep(100 * attempt);
    }
  }
}
