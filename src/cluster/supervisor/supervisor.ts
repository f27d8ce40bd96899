/**
 * A small process manager for the local cluster: starts each member as a child process, waits
 * until it reports it started, appends its output to its log file, restarts it with backoff
 * when it dies unexpectedly (logged), and stops everything in order: SIGTERM, wait, then
 * SIGKILL after a deadline.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { createWriteStream, mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import type { Logger } from '../../observability/index.ts';
import { RestartPolicy } from './restart-policy.ts';

export interface ProcessSpec {
  /** Unique name, e.g. `api-2`. */
  name: string;
  role: string;
  /** Arguments after the node binary. */
  args: string[];
  env: NodeJS.ProcessEnv;
  logFile: string;
  /** Stop group: lower groups stop first (front doors before the state they depend on). */
  stopGroup: number;
}

export interface StartedProcess {
  pid: number;
  /** The `urls` of the node's start line. */
  urls: Record<string, string>;
}

interface Member {
  spec: ProcessSpec;
  child: ChildProcess | undefined;
  startedAt: number;
  restarts: number;
  policy: RestartPolicy;
  exited: Promise<void>;
  restartTimer?: NodeJS.Timeout;
}

export interface SupervisorOptions {
  nodeBinary: string;
  logger: Logger;
  /** How long a member may take to report it started (default 60 s). */
  startTimeoutMs?: number;
  /** After SIGTERM, how long before SIGKILL (default 20 s). */
  stopTimeoutMs?: number;
}

export class Supervisor {
  readonly #options: SupervisorOptions;
  readonly #members = new Map<string, Member>();
  #stopping = false;

  constructor(options: SupervisorOptions) {
    this.#options = options;
  }

  /** Starts a member and resolves once it says it started (a message on its IPC channel). */
  async start(spec: ProcessSpec): Promise<StartedProcess> {
    if (this.#members.has(spec.name)) throw new RangeError(`a process named ${spec.name} already runs`);
    const member: Member = {
      spec,
      child: undefined,
      startedAt: 0,
      restarts: 0,
      policy: new RestartPolicy(),
      exited: Promise.resolve(),
    };
    this.#members.set(spec.name, member);
    return this.#spawn(member);
  }

  pids(): Record<string, number | undefined> {
    return Object.fromEntries([...this.#members].map(([name, member]) => [name, member.child?.pid]));
  }

  restarts(): Record<string, number> {
    return Object.fromEntries([...this.#members].map(([name, member]) => [name, member.restarts]));
  }

  /** Sends a signal to one member (chaos tests); the supervisor restarts it if it dies. */
  kill(name: string, signal: NodeJS.Signals = 'SIGKILL'): number | undefined {
    const child = this.#members.get(name)?.child;
    if (child?.pid !== undefined && child.exitCode === null && child.signalCode === null) child.kill(signal);
    return child?.pid;
  }

  /** Stops every member: group by group, SIGTERM, then SIGKILL after the deadline. */
  async stop(): Promise<void> {
    this.#stopping = true;
    const stopTimeoutMs = this.#options.stopTimeoutMs ?? 20_000;
    const deadline = Date.now() + stopTimeoutMs;
    const groups = [...new Set([...this.#members.values()].map((member) => member.spec.stopGroup))].sort(
      (a, b) => a - b,
    );
    for (const group of groups) {
      const members = [...this.#members.values()].filter((member) => member.spec.stopGroup === group);
      for (const member of members) {
        clearTimeout(member.restartTimer);
        if (member.child !== undefined && member.child.exitCode === null && member.child.signalCode === null)
          member.child.kill('SIGTERM');
      }
      const remaining = Math.max(0, deadline - Date.now());
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([
        Promise.all(members.map((member) => member.exited)),
        new Promise<void>((resolve) => {
          timer = setTimeout(resolve, remaining);
        }),
      ]);
      clearTimeout(timer);
      for (const member of members) {
        if (
          member.child !== undefined &&
          member.child.exitCode === null &&
          member.child.signalCode === null
        ) {
          this.#options.logger.warn(
            { process: member.spec.name, pid: member.child.pid },
            'stop deadline passed: SIGKILL',
          );
          member.child.kill('SIGKILL');
        }
      }
      await Promise.all(members.map((member) => member.exited));
    }
  }

  #spawn(member: Member): Promise<StartedProcess> {
    const { spec } = member;
    const { logger } = this.#options;
    mkdirSync(dirname(spec.logFile), { recursive: true });
    const log = createWriteStream(spec.logFile, { flags: 'a' });
    const child = spawn(this.#options.nodeBinary, spec.args, {
      env: spec.env,
      // The IPC channel carries the member's "started" message (see src/cli/node.ts).
      stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
      // Its own process group: Ctrl-C in a terminal signals the whole foreground group, and the
      // members must hear only the supervisor, which stops them in order (gateway first, queue
      // last). If the supervisor dies, a member stops when its IPC channel closes.
      detached: true,
    });
    member.child = child;
    member.startedAt = Date.now();
    child.stdout!.pipe(log, { end: false });
    child.stderr!.pipe(log, { end: false });
    member.exited = new Promise<void>((resolve) => {
      child.once('exit', (code, signal) => {
        log.end();
        resolve();
        this.#exited(member, child, code, signal);
      });
    });
    return new Promise<StartedProcess>((resolve, reject) => {
      const timer = setTimeout(() => {
        reject(
          new Error(
            `${spec.name} did not start within ${this.#options.startTimeoutMs ?? 60_000} ms; see ${spec.logFile}`,
          ),
        );
      }, this.#options.startTimeoutMs ?? 60_000);
      child.on('message', (message: { type?: string; urls?: Record<string, string> }) => {
        if (message?.type !== 'pixelfleet-node-started') return;
        clearTimeout(timer);
        logger.info({ process: spec.name, pid: child.pid }, 'process started');
        resolve({ pid: child.pid!, urls: message.urls ?? {} });
      });
      member.exited.then(() => {
        clearTimeout(timer);
        reject(new Error(`${spec.name} exited before it started; see ${spec.logFile}`));
      });
    });
  }

  #exited(member: Member, child: ChildProcess, code: number | null, signal: NodeJS.Signals | null): void {
    if (member.child !== child) return;
    const uptimeMs = Date.now() - member.startedAt;
    if (this.#stopping) {
      this.#options.logger.info(
        { process: member.spec.name, pid: child.pid, code, signal },
        'process stopped',
      );
      return;
    }
    const delayMs = member.policy.crashed(uptimeMs);
    member.restarts++;
    this.#options.logger.warn(
      {
        process: member.spec.name,
        pid: child.pid,
        code,
        signal,
        uptimeMs,
        restartInMs: delayMs,
        restarts: member.restarts,
      },
      'process exited unexpectedly: restarting',
    );
    member.restartTimer = setTimeout(() => {
      if (this.#stopping) return;
      this.#spawn(member).catch((error: unknown) => {
        this.#options.logger.error({ process: member.spec.name, err: error }, 'restart failed');
      });
    }, delayMs);
  }
}
