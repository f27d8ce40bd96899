/**
 * The parent side of the conversion engine: a fixed set of child processes (a bulkhead: one bad
 * input can only take down its own child), each converting one image at a time, fed FIFO.
 *
 * Guarantees:
 * - every `convert` call settles exactly once: with the result, with the child's conversion
 *   error, or with a pool error;
 * - watchdog: a conversion running past its timeout gets its child SIGKILLed and rejects with
 *   PF_ERR_PROCESSING_TIMEOUT; a child that dies mid-job rejects that job with
 *   PF_ERR_WORKER_CRASHED. Both are retryable (`isRetryableConversionError`) and the slot is
 *   restarted, with exponential backoff only while a child keeps dying right after starting;
 * - failure detection by heartbeat: a child that misses two pings in a row is killed and
 *   restarted even when idle;
 * - calls wait in one FIFO queue while every child is busy; its length is bounded by the caller
 *   (the dispatcher runs `capacity` claim loops), and a call's AbortSignal removes it;
 * - prefetch: with `prefetch: n` a busy child is also sent up to n next calls, which it converts
 *   in order, so it starts the next conversion the moment one ends instead of idling through a
 *   round trip to the parent. The watchdog and the queue wait of a sent-ahead call start when
 *   the child starts it (the parent knows when: the child converts in order), and when a child
 *   dies or is killed only the call it was converting fails: the sent-ahead ones go back to the
 *   front of the queue.
 */
import { type ChildProcess, fork } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { PixelfleetError } from '../errors/index.ts';
import { deserialiseError } from './conversion_errors.ts';
import { InputSpool } from './input-spool.ts';
import type { ChildMessage, ConvertRequest } from './protocol.ts';
import type { ConversionLimits, ConversionResult, ResizeOptions } from './types.ts';

export type WorkerRestartReason = 'crash' | 'timeout' | 'unresponsive';

export type WorkerPoolEvent =
  | { type: 'timeout'; workerId: number; pid: number | undefined; timeoutMs: number }
  | {
      type: 'crash';
      workerId: number;
      pid: number | undefined;
      exitCode: number | null;
      signal: NodeJS.Signals | null;
      /** True when the child died while converting (that call rejected with PF_ERR_WORKER_CRASHED). */
      duringJob: boolean;
    }
  | { type: 'unresponsive'; workerId: number; pid: number | undefined; missedHeartbeats: number }
  | { type: 'restart'; workerId: number; reason: WorkerRestartReason; backoffMs: number };

export interface WorkerPoolOptions {
  /** Child processes; each converts one image at a time. */
  size: number;
  /** Default watchdog limit of one conversion, in ms (per-call `timeoutMs` overrides). */
  jobTimeoutMs: number;
  limits: ConversionLimits;
  /** Extra environment for the children (merged over the parent's). */
  env?: Record<string, string | undefined>;
  /** Metrics and logs hook; exceptions thrown by it are ignored. */
  onEvent?: (event: WorkerPoolEvent) => void;
  /** Ping period in ms; two missed pings kill the child. 0 disables. Default 5000. */
  heartbeatIntervalMs?: number;
  /** How long `start()` waits for every child to report ready. Default 20 000. */
  startTimeoutMs?: number;
  /** Ceiling of the restart backoff for a child that keeps dying at once. Default 5000. */
  maxRestartBackoffMs?: number;
  /** LD_PRELOAD jemalloc into the children when the library is installed. Default false. */
  preloadJemalloc?: boolean;
  /** Calls sent ahead to a busy child, beyond the one it converts. Default 0. */
  prefetch?: number;
  /**
   * Where inputs are handed to the children: a private spool directory is made under this tmpfs
   * directory (see input-spool.ts). Default `/dev/shm`; `false`, or a directory that is not
   * there, sends the bytes in the IPC message.
   */
  inputSpool?: string | false;
}

export interface ConvertCallOptions {
  /** Watchdog limit for this call in ms; default the pool's `jobTimeoutMs`. */
  timeoutMs?: number;
  /** Aborting rejects the call with the signal's reason; a running conversion is left to finish. */
  signal?: AbortSignal;
  /** W3C trace context, passed to the child with the job. */
  traceparent?: string;
}

export interface WorkerPoolStats {
  size: number;
  /** Children started and answering. */
  alive: number;
  /** Children converting right now. */
  busy: number;
  /** Calls not started: waiting for a child, or sent ahead to a busy one. */
  queued: number;
  /** Children replaced after a crash, timeout or missed heartbeats. */
  restarts: number;
  /** Conversions that succeeded. */
  conversions: number;
  /** Conversions that failed (any error, including timeouts and crashes). */
  failures: number;
  workers: Array<{
    workerId: number;
    pid: number | undefined;
    state: 'starting' | 'idle' | 'busy' | 'stopped';
    rss: number;
  }>;
}

const childModulePath = fileURLToPath(new URL('./child.ts', import.meta.url));
const jemallocPath = '/usr/lib/x86_64-linux-gnu/libjemalloc.so.2';
/** A child dying sooner than this after its spawn counts as "keeps dying at once". */
const quickDeathMs = 1000;
const closeGraceMs = 2000;

interface PendingCall {
  input: Uint8Array;
  options: ResizeOptions;
  timeoutMs: number;
  traceparent: string | undefined;
  enqueuedAt: number;
  queueWaitMs: number;
  settled: boolean;
  resolve(result: ConversionResult): void;
  reject(error: unknown): void;
  detach(): void;
}

interface RunningJob {
  jobId: number;
  call: PendingCall;
  /** The watchdog; set once the child starts this job (it is first in the slot's list). */
  timer: NodeJS.Timeout | undefined;
  /** The input's spool file, when it went through the spool. */
  inputPath: string | undefined;
}

interface WorkerSlot {
  readonly id: number;
  child: ChildProcess | undefined;
  pid: number | undefined;
  ready: boolean;
  /** Jobs sent to the child, in the order it converts them: the first is running. */
  jobs: RunningJob[];
  spawnedAt: number;
  quickDeaths: number;
  /** Set when the pool killed the child on purpose, so its exit is not reported as a crash. */
  killReason: WorkerRestartReason | undefined;
  awaitingPong: boolean;
  missedHeartbeats: number;
  rss: number;
  restartTimer: NodeJS.Timeout | undefined;
  onExit: Array<() => void>;
}

export class WorkerPool {
  readonly #size: number;
  readonly #jobTimeoutMs: number;
  readonly #limits: ConversionLimits;
  readonly #env: NodeJS.ProcessEnv;
  readonly #onEvent: ((event: WorkerPoolEvent) => void) | undefined;
  readonly #heartbeatIntervalMs: number;
  readonly #startTimeoutMs: number;
  readonly #maxRestartBackoffMs: number;
  readonly #prefetch: number;
  readonly #spoolRoot: string | false;
  #spool: InputSpool | undefined;
  readonly #slots: WorkerSlot[] = [];
  readonly #queue: PendingCall[] = [];
  #started = false;
  #closing = false;
  #closed: Promise<void> | undefined;
  #heartbeatTimer: NodeJS.Timeout | undefined;
  #nextJobId = 0;
  #nextPingId = 0;
  #restarts = 0;
  #conversions = 0;
  #failures = 0;
  #stateChanged: Array<() => void> = [];

  constructor(options: WorkerPoolOptions) {
    if (!Number.isInteger(options.size) || options.size < 1) {
      throw new RangeError(`size must be a positive integer, got ${options.size}`);
    }
    if (!(options.jobTimeoutMs > 0))
      throw new RangeError(`jobTimeoutMs must be > 0, got ${options.jobTimeoutMs}`);
    const heartbeat = options.heartbeatIntervalMs ?? 5000;
    if (!(heartbeat >= 0)) throw new RangeError(`heartbeatIntervalMs must be >= 0, got ${heartbeat}`);
    const prefetch = options.prefetch ?? 0;
    if (!(Number.isInteger(prefetch) && prefetch >= 0)) {
      throw new RangeError(`prefetch must be an integer >= 0, got ${prefetch}`);
    }
    const { limits } = options;
    for (const key of ['maxInputPixels', 'maxOutputDimension', 'maxFrames'] as const) {
      if (!(limits[key] >= 1)) throw new RangeError(`limits.${key} must be >= 1, got ${limits[key]}`);
    }
    this.#size = options.size;
    this.#jobTimeoutMs = options.jobTimeoutMs;
    this.#limits = limits;
    this.#onEvent = options.onEvent;
    this.#heartbeatIntervalMs = heartbeat;
    this.#startTimeoutMs = options.startTimeoutMs ?? 20_000;
    this.#maxRestartBackoffMs = options.maxRestartBackoffMs ?? 5000;
    this.#prefetch = prefetch;
    this.#spoolRoot = options.inputSpool ?? '/dev/shm';
    this.#env = {
      ...process.env,
      // sharp's docs warn that glibc's allocator fragments badly in long-running multi-threaded
      // processes doing many small allocations (libvips); fewer malloc arenas bound that growth.
      MALLOC_ARENA_MAX: '2',
      ...(options.preloadJemalloc && existsSync(jemallocPath) ? { LD_PRELOAD: jemallocPath } : {}),
      ...options.env,
    };
    for (let id = 0; id < this.#size; id++) {
      this.#slots.push({
        id,
        child: undefined,
        pid: undefined,
        ready: false,
        jobs: [],
        spawnedAt: 0,
        quickDeaths: 0,
        killReason: undefined,
        awaitingPong: false,
        missedHeartbeats: 0,
        rss: 0,
        restartTimer: undefined,
        onExit: [],
      });
    }
  }

  /** Spawns every child; resolves once all have reported ready. */
  async start(): Promise<void> {
    if (this.#started) throw new Error('WorkerPool.start() was already called');
    this.#started = true;
    if (this.#spoolRoot !== false) this.#spool = InputSpool.open(this.#spoolRoot);
    for (const slot of this.#slots) this.#spawn(slot);
    if (this.#heartbeatIntervalMs > 0) {
      this.#heartbeatTimer = setInterval(() => this.#heartbeat(), this.#heartbeatIntervalMs);
      this.#heartbeatTimer.unref();
    }
    const deadline = Date.now() + this.#startTimeoutMs;
    while (!this.#slots.every((slot) => slot.ready)) {
      if (this.#closing)
        throw new PixelfleetError('PF_ERR_SHUTTING_DOWN', 'the worker pool was closed while starting');
      const remaining = deadline - Date.now();
      if (remaining <= 0) {
        await this.close();
        throw new PixelfleetError(
          'PF_ERR_INTERNAL',
          `conversion workers did not start within ${this.#startTimeoutMs} ms`,
        );
      }
      await this.#nextStateChange(remaining);
    }
  }

  convert(
    input: Uint8Array,
    options: ResizeOptions,
    callOptions: ConvertCallOptions = {},
  ): Promise<ConversionResult> {
    if (this.#closing) {
      return Promise.reject(new PixelfleetError('PF_ERR_SHUTTING_DOWN', 'the worker pool is shutting down'));
    }
    if (!this.#started)
      return Promise.reject(new Error('WorkerPool.start() must be called before convert()'));
    const { signal } = callOptions;
    if (signal?.aborted) return Promise.reject(signal.reason);
    return new Promise<ConversionResult>((resolve, reject) => {
      const onAbort = () => {
        const index = this.#queue.indexOf(call);
        if (index >= 0) this.#queue.splice(index, 1);
        this.#settle(call, { error: signal!.reason });
      };
      const call: PendingCall = {
        input,
        options,
        timeoutMs: callOptions.timeoutMs ?? this.#jobTimeoutMs,
        traceparent: callOptions.traceparent,
        enqueuedAt: performance.now(),
        queueWaitMs: 0,
        settled: false,
        resolve,
        reject,
        detach: () => signal?.removeEventListener('abort', onAbort),
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      this.#queue.push(call);
      this.#dispatch();
    });
  }

  /** Calls the children can hold at once (converting or sent ahead): `size × (1 + prefetch)`. */
  get capacity(): number {
    return this.#size * (1 + this.#prefetch);
  }

  stats(): WorkerPoolStats {
    const sentAhead = this.#slots.reduce((sum, slot) => sum + Math.max(0, slot.jobs.length - 1), 0);
    return {
      size: this.#size,
      alive: this.#slots.filter((slot) => slot.ready).length,
      busy: this.#slots.filter((slot) => slot.jobs.length > 0).length,
      queued: this.#queue.length + sentAhead,
      restarts: this.#restarts,
      conversions: this.#conversions,
      failures: this.#failures,
      workers: this.#slots.map((slot) => ({
        workerId: slot.id,
        pid: slot.pid,
        state:
          slot.jobs.length > 0
            ? 'busy'
            : slot.ready
              ? 'idle'
              : this.#closing && slot.child === undefined
                ? 'stopped'
                : 'starting',
        rss: slot.rss,
      })),
    };
  }

  /**
   * Stops the pool: queued calls reject with PF_ERR_SHUTTING_DOWN, running conversions finish
   * (each bounded by its watchdog), then every child is disconnected (SIGKILL after a grace).
   */
  close(): Promise<void> {
    this.#closed ??= this.#shutdown();
    return this.#closed;
  }

  async #shutdown(): Promise<void> {
    this.#closing = true;
    clearInterval(this.#heartbeatTimer);
    for (const call of this.#queue.splice(0)) {
      this.#settle(call, {
        error: new PixelfleetError('PF_ERR_SHUTTING_DOWN', 'the worker pool is shutting down'),
      });
    }
    for (const slot of this.#slots) clearTimeout(slot.restartTimer);
    while (this.#slots.some((slot) => slot.jobs.length > 0)) await this.#nextStateChange(1000);
    await Promise.all(this.#slots.map((slot) => this.#stopChild(slot)));
    this.#spool?.close();
    this.#notifyStateChange();
  }

  #stopChild(slot: WorkerSlot): Promise<void> {
    const child = slot.child;
    if (child === undefined) return Promise.resolve();
    return new Promise<void>((resolve) => {
      const graceTimer = setTimeout(() => child.kill('SIGKILL'), closeGraceMs);
      slot.onExit.push(() => {
        clearTimeout(graceTimer);
        resolve();
      });
      // The child exits on 'disconnect'; a child that ignores it is killed after the grace.
      if (child.connected) child.disconnect();
      else child.kill('SIGKILL');
    });
  }

  #spawn(slot: WorkerSlot): void {
    const child = fork(childModulePath, [], {
      execPath: process.execPath,
      // Not the parent's flags: under `node --test` those would make the child a test runner.
      execArgv: ['--disable-warning=ExperimentalWarning'],
      serialization: 'advanced',
      env: this.#env,
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    });
    slot.child = child;
    slot.pid = child.pid;
    slot.ready = false;
    slot.jobs = [];
    slot.spawnedAt = performance.now();
    slot.awaitingPong = false;
    slot.missedHeartbeats = 0;
    child.on('message', (message: ChildMessage) => this.#onMessage(slot, child, message));
    child.once('exit', (code, signal) => this.#onExit(slot, child, code, signal));
    child.on('error', () => {
      // A failed spawn may never emit 'exit'; a failed send is followed by one. Either way, end it.
      if (child.pid === undefined) this.#onExit(slot, child, null, null);
      else child.kill('SIGKILL');
    });
  }

  #onMessage(slot: WorkerSlot, child: ChildProcess, message: ChildMessage): void {
    if (slot.child !== child) return;
    switch (message.type) {
      case 'ready':
        slot.ready = true;
        slot.rss = message.rss;
        this.#notifyStateChange();
        this.#dispatch();
        return;
      case 'pong':
        slot.awaitingPong = false;
        slot.missedHeartbeats = 0;
        slot.rss = message.rss;
        return;
      case 'converted':
      case 'failed': {
        const job = slot.jobs[0];
        if (job === undefined || job.jobId !== message.jobId) return;
        clearTimeout(job.timer);
        slot.jobs.shift();
        this.#startHead(slot);
        slot.rss = message.rss;
        slot.quickDeaths = 0;
        if (message.type === 'converted') {
          this.#conversions++;
          const { image } = message;
          const output = Buffer.from(image.output.buffer, image.output.byteOffset, image.output.byteLength);
          this.#settle(job.call, {
            result: {
              ...image,
              output,
              cpuUserMicros: message.cpuUserMicros,
              cpuSystemMicros: message.cpuSystemMicros,
              bytesIn: job.call.input.byteLength,
              bytesOut: output.byteLength,
              wallMs: message.wallMs,
              queueWaitMs: job.call.queueWaitMs,
              workerId: slot.id,
              workerRss: message.rss,
            },
          });
        } else {
          this.#failures++;
          this.#settle(job.call, { error: deserialiseError(message.error) });
        }
        this.#notifyStateChange();
        this.#dispatch();
        return;
      }
    }
  }

  #onExit(
    slot: WorkerSlot,
    child: ChildProcess,
    exitCode: number | null,
    signal: NodeJS.Signals | null,
  ): void {
    if (slot.child !== child) return;
    const pid = slot.pid;
    const lived = performance.now() - slot.spawnedAt;
    const wasReady = slot.ready;
    slot.child = undefined;
    slot.ready = false;
    const job = this.#clearSlot(slot);
    const killReason = slot.killReason;
    slot.killReason = undefined;
    for (const notify of slot.onExit.splice(0)) notify();

    if (job !== undefined) {
      clearTimeout(job.timer);
      this.#failures++;
      this.#settle(job.call, {
        error: new PixelfleetError(
          'PF_ERR_WORKER_CRASHED',
          `the conversion process died mid-conversion (${signal ?? `exit code ${exitCode}`}); the job may be retried`,
          { extensions: { exitCode, signal } },
        ),
      });
    }
    if (this.#closing) {
      this.#notifyStateChange();
      return;
    }
    this.#dispatch();
    if (killReason === undefined) {
      this.#emit({ type: 'crash', workerId: slot.id, pid, exitCode, signal, duringJob: job !== undefined });
    }
    const reason = killReason ?? 'crash';
    // Back off only when a child dies on its own right after starting (a broken install, a
    // poisoned environment), so a crash loop does not burn the CPU that conversions need.
    const quickDeath = reason === 'crash' && (!wasReady || lived < quickDeathMs);
    slot.quickDeaths = quickDeath ? slot.quickDeaths + 1 : 0;
    const backoffMs =
      slot.quickDeaths === 0 ? 0 : Math.min(100 * 2 ** (slot.quickDeaths - 1), this.#maxRestartBackoffMs);
    this.#restarts++;
    this.#emit({ type: 'restart', workerId: slot.id, reason, backoffMs });
    slot.restartTimer = setTimeout(() => {
      slot.restartTimer = undefined;
      if (!this.#closing) this.#spawn(slot);
    }, backoffMs);
    this.#notifyStateChange();
  }

  #dispatch(): void {
    while (this.#queue.length > 0) {
      // An idle child first; else the ready child with the fewest calls in hand, within prefetch.
      let slot: WorkerSlot | undefined;
      for (const candidate of this.#slots) {
        if (!candidate.ready || candidate.jobs.length > this.#prefetch) continue;
        if (slot === undefined || candidate.jobs.length < slot.jobs.length) slot = candidate;
      }
      if (slot === undefined) return;
      const call = this.#queue.shift()!;
      if (!call.settled) this.#run(slot, call);
    }
  }

  /**
   * The child will finish none of its jobs (it died or is being killed): their spool files are
   * discarded (it unlinks only the ones it reads), the sent-ahead calls go back to the queue, and
   * the one it was converting is returned for the caller to settle.
   */
  #clearSlot(slot: WorkerSlot): RunningJob | undefined {
    const [running, ...sentAhead] = slot.jobs;
    slot.jobs = [];
    for (const job of [running, ...sentAhead]) {
      if (job?.inputPath !== undefined) this.#spool?.discard(job.inputPath);
    }
    this.#requeue(sentAhead);
    return running;
  }

  /** Calls a child had been sent but never started go back to the front of the queue, in order. */
  #requeue(jobs: RunningJob[]): void {
    const calls = jobs.map((job) => job.call).filter((call) => !call.settled);
    if (!this.#closing) {
      this.#queue.unshift(...calls);
      return;
    }
    for (const call of calls) {
      this.#settle(call, {
        error: new PixelfleetError('PF_ERR_SHUTTING_DOWN', 'the worker pool is shutting down'),
      });
    }
  }

  /** The child starts the first job in its list: its watchdog and queue wait start now. */
  #startHead(slot: WorkerSlot): void {
    const head = slot.jobs[0];
    if (head === undefined || head.timer !== undefined) return;
    head.call.queueWaitMs = performance.now() - head.call.enqueuedAt;
    const jobId = head.jobId;
    head.timer = setTimeout(() => this.#onTimeout(slot, jobId), head.call.timeoutMs);
  }

  #run(slot: WorkerSlot, call: PendingCall): void {
    const child = slot.child!;
    const jobId = ++this.#nextJobId;
    const inputPath = this.#spool?.write(String(jobId), call.input);
    slot.jobs.push({ jobId, call, timer: undefined, inputPath });
    this.#startHead(slot);
    const request: ConvertRequest = {
      type: 'convert',
      jobId,
      ...(inputPath === undefined ? { input: call.input } : { inputPath }),
      options: call.options,
      limits: this.#limits,
      ...(call.traceparent === undefined ? {} : { traceparent: call.traceparent }),
    };
    child.send(request, (error) => {
      // The channel broke: the child is dying; its exit rejects the job as crashed.
      if (error) child.kill('SIGKILL');
    });
  }

  #onTimeout(slot: WorkerSlot, jobId: number): void {
    const job = slot.jobs[0];
    if (job === undefined || job.jobId !== jobId) return;
    this.#clearSlot(slot);
    this.#failures++;
    this.#emit({ type: 'timeout', workerId: slot.id, pid: slot.pid, timeoutMs: job.call.timeoutMs });
    this.#settle(job.call, {
      error: new PixelfleetError(
        'PF_ERR_PROCESSING_TIMEOUT',
        `the conversion took longer than ${job.call.timeoutMs} ms and was stopped`,
        { extensions: { timeoutMs: job.call.timeoutMs } },
      ),
    });
    this.#kill(slot, 'timeout');
    this.#notifyStateChange();
    this.#dispatch();
  }

  #heartbeat(): void {
    for (const slot of this.#slots) {
      const child = slot.child;
      if (child === undefined || !slot.ready || slot.killReason !== undefined) continue;
      if (slot.awaitingPong) {
        slot.missedHeartbeats++;
        if (slot.missedHeartbeats >= 2) {
          this.#emit({
            type: 'unresponsive',
            workerId: slot.id,
            pid: slot.pid,
            missedHeartbeats: slot.missedHeartbeats,
          });
          this.#kill(slot, 'unresponsive');
          continue;
        }
      }
      slot.awaitingPong = true;
      child.send({ type: 'ping', id: ++this.#nextPingId }, () => {});
    }
  }

  #kill(slot: WorkerSlot, reason: WorkerRestartReason): void {
    slot.killReason = reason;
    slot.ready = false;
    slot.child?.kill('SIGKILL');
  }

  #settle(call: PendingCall, outcome: { result: ConversionResult } | { error: unknown }): void {
    if (call.settled) return;
    call.settled = true;
    call.detach();
    if ('result' in outcome) call.resolve(outcome.result);
    else call.reject(outcome.error);
  }

  #emit(event: WorkerPoolEvent): void {
    try {
      this.#onEvent?.(event);
    } catch {
      // A metrics hook must never break the pool.
    }
  }

  #nextStateChange(timeoutMs: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(done, timeoutMs);
      function done() {
        clearTimeout(timer);
        resolve();
      }
      this.#stateChanged.push(done);
    });
  }

  #notifyStateChange(): void {
    for (const notify of this.#stateChanged.splice(0)) notify();
  }
}
