/**
 * The worker role's main loop: claim a job from the queue (load levelling: workers pull at the
 * pace they can convert), fetch its input from the api role that holds it, convert it in a
 * worker process, hand the result back, then ack. One loop per call the pool can hold (a worker
 * process's running job and the one sent ahead to it), so the pool never queues internally and
 * queue depth is the one measure of backlog.
 *
 * Delivery semantics: the result is delivered (and, for async jobs, made durable) BEFORE the
 * ack, so a crash in between causes a redelivery, never a lost result. Retryable failures
 * (crashed or stalled worker) are nacked for redelivery until `maxAttempts`; after that, and for
 * permanent failures (corrupt input...), the job is dead-lettered with its reason. A host that
 * cannot be reached (the api server holding the input is restarting) is a retryable failure
 * too, nacked with a growing backoff.
 */
import { isPixelfleetError, PixelfleetError } from '../errors/index.ts';
import type { ClaimedJob, JobOutcome, JobQueue } from '../queue/types.ts';
import type { ConversionResult, ResizeOptions } from './index.ts';
import { isRetryableConversionError } from './index.ts';

/** The job descriptor the api role enqueues: a reference to the bytes, never the bytes. */
export interface ResizeJobPayload {
  kind: 'resize';
  mode: 'sync' | 'async';
  input: { location: 'memory' | 'disk'; bytes: number; format: string; width: number; height: number };
  options: ResizeOptions;
  requestId: string;
  traceparent: string;
  /** Who pays: the metering record is written for this account and key. */
  tenant: { accountId: string; keyId: string; tier: string };
  /** Cluster mode: the api server holding the input, which the worker asks for it. */
  origin?: JobOrigin;
}

/** Which api server took the request: its id and cluster-internal base URL. */
export interface JobOrigin {
  id: string;
  internalUrl: string;
}

export interface JobResult {
  output: Buffer;
  contentType: string;
  outcome: ResizeOutcome;
}

/** What the queue records about a finished job (and what usage metering will read). */
export interface ResizeOutcome extends JobOutcome {
  contentType: string;
  format: string;
  width: number;
  height: number;
  bytesIn: number;
  bytesOut: number;
  pixelsIn: number;
  pixelsOut: number;
  cpuMicros: number;
  conversionMs: number;
  queueWaitMs: number;
  attempt: number;
}

/** The api role as seen from a worker: where inputs come from and results go to. */
export interface JobHost {
  fetchInput(job: ClaimedJob, payload: ResizeJobPayload): Promise<Buffer | undefined>;
  /** Called before the ack; async results must be durable when it resolves. */
  deliverResult(job: ClaimedJob, payload: ResizeJobPayload, result: JobResult): Promise<void>;
  /** Called after the ack or final nack. */
  settled(
    job: ClaimedJob,
    payload: ResizeJobPayload,
    outcome: { result?: JobResult; error?: PixelfleetError },
  ): void;
}

export interface Converter {
  convert(
    input: Uint8Array,
    options: ResizeOptions,
    context: { timeoutMs?: number; traceparent?: string },
  ): Promise<ConversionResult>;
}

export interface DispatcherEvents {
  claimed?(job: ClaimedJob, queueWaitMs: number, payload: ResizeJobPayload): void;
  converted?(job: ClaimedJob, result: ConversionResult): void;
  failed?(job: ClaimedJob, error: PixelfleetError, willRetry: boolean): void;
  /** Leases of an earlier incarnation handed back before the first claim (`releaseEarlierLeases`). */
  released?(count: number): void;
}

export interface DispatcherOptions {
  queue: JobQueue;
  converter: Converter;
  host: JobHost;
  /** Parallel claim loops (= the calls the worker pool holds at once: `WorkerPool.capacity`). */
  concurrency: number;
  jobTimeoutMs: number;
  /**
   * How long a claim lasts unrenewed; the dispatcher renews it every third of this from the
   * claim until the job is settled, so only a dispatcher that stops running loses its jobs.
   * Default: twice the watchdog time plus 5 s.
   */
  leaseMs?: number;
  consumerName: string;
  events?: DispatcherEvents;
  /** Backoff before a retryable failure is redelivered. */
  retryDelayMs?: number;
  /**
   * Backoff before a job whose host could not be reached (fetching the input or delivering the
   * result failed) is redelivered; doubles with each attempt. Default 500.
   */
  hostRetryDelayMs?: number;
  /**
   * Before the first claim, hand back every lease held under `consumerName`
   * (`JobQueue.releaseConsumer`): for a worker restarted under a stable name, whose dead
   * incarnation's jobs are then redelivered at once instead of when their leases run out. Only
   * when no other live process uses the same name. Default false.
   */
  releaseEarlierLeases?: boolean;
  onError?(error: unknown): void;
}

/** How long a starting dispatcher keeps trying to release its earlier leases before claiming anyway. */
const releaseGiveUpMs = 10_000;

function settle(settling: Promise<void>): { settling: Promise<void> } {
  return { settling };
}

/** The encoded reason a dead-lettered job carries: `CODE: detail`. */
export function encodeFailure(error: PixelfleetError): string {
  return `${error.code}: ${error.message}`;
}

export function decodeFailure(reason: string | undefined): PixelfleetError {
  const match = reason === undefined ? null : /^(PF_ERR_[A-Z_]+): ([\s\S]*)$/.exec(reason);
  if (match) {
    try {
      return new PixelfleetError(match[1] as never, match[2]!);
    } catch {
      // Unknown code from a newer version: fall through.
    }
  }
  return new PixelfleetError('PF_ERR_CONVERSION_FAILED', reason ?? 'the job failed');
}

export class Dispatcher {
  readonly #options: DispatcherOptions;
  readonly #abort = new AbortController();
  #loops: Promise<void>[] = [];
  #active = 0;
  readonly #settling = new Set<Promise<void>>();

  constructor(options: DispatcherOptions) {
    if (!Number.isInteger(options.concurrency) || options.concurrency < 1) {
      throw new RangeError(`concurrency must be a positive integer, got ${options.concurrency}`);
    }
    this.#options = options;
  }

  start(): void {
    const released = this.#options.releaseEarlierLeases ? this.#releaseEarlierLeases() : undefined;
    for (let slot = 0; slot < this.#options.concurrency; slot++) this.#loops.push(this.#loop(slot, released));
  }

  /**
   * Retried while the queue is unreachable (a leader election, say), because a claim must not come
   * first: the release would take back this incarnation's own new leases too. After
   * `releaseGiveUpMs` the loops claim anyway and the old leases simply run out.
   */
  async #releaseEarlierLeases(): Promise<void> {
    const { queue, consumerName } = this.#options;
    const signal = this.#abort.signal;
    const giveUpAt = Date.now() + releaseGiveUpMs;
    for (let delayMs = 100; !signal.aborted; delayMs = Math.min(delayMs * 2, 2000)) {
      try {
        const count = await queue.releaseConsumer(consumerName);
        this.#options.events?.released?.(count);
        return;
      } catch (error) {
        this.#options.onError?.(error);
        if (Date.now() + delayMs > giveUpAt) return;
        await new Promise((resolve) => setTimeout(resolve, delayMs));
      }
    }
  }

  /** Jobs being converted right now. */
  get active(): number {
    return this.#active;
  }

  /** Stops claiming; resolves when the jobs in hand have been settled. */
  async stop(): Promise<void> {
    this.#abort.abort();
    await Promise.all(this.#loops);
    while (this.#settling.size > 0) await Promise.all(this.#settling);
  }

  async #loop(slot: number, released: Promise<void> | undefined): Promise<void> {
    const { queue } = this.#options;
    const signal = this.#abort.signal;
    await released;
    const leaseMs = this.#options.leaseMs ?? this.#options.jobTimeoutMs * 2 + 5000;
    while (!signal.aborted) {
      let job: ClaimedJob | undefined;
      try {
        job = await queue.claim({
          consumer: `${this.#options.consumerName}/${slot}`,
          leaseMs,
          waitMs: 1000,
          signal,
        });
      } catch (error) {
        if (signal.aborted) return;
        this.#options.onError?.(error);
        await new Promise((resolve) => setTimeout(resolve, 200));
        continue;
      }
      if (!job) continue;
      this.#active++;
      const stopRenewing = this.#renew(job, leaseMs);
      let settling: Promise<void> | undefined;
      try {
        settling = (await this.#process(job)).settling;
      } catch (error) {
        this.#options.onError?.(error);
      } finally {
        this.#active--;
      }
      if (settling) {
        await this.#track(settling.finally(stopRenewing));
      } else {
        stopRenewing();
      }
    }
  }

  /**
   * Keeps the job's lease alive while this dispatcher holds it (queued for a converter,
   * converting, delivering, acking): an extend every third of the lease, one at a time. A lease
   * already lost stops the renewals (the ack will say so too); any other failure, a leader
   * election say, is tried again at the next beat. Returns the stop function.
   */
  #renew(job: ClaimedJob, leaseMs: number): () => void {
    const { queue } = this.#options;
    let stopped = false;
    let inFlight = false;
    const timer = setInterval(() => {
      if (inFlight || stopped) return;
      inFlight = true;
      queue.extend(job.id, job.leaseId, leaseMs).then(
        () => {
          inFlight = false;
        },
        (error: unknown) => {
          inFlight = false;
          if (isPixelfleetError(error, 'PF_ERR_LEASE_LOST')) stop();
          else if (!stopped) this.#options.onError?.(error);
        },
      );
    }, leaseMs / 3);
    timer.unref();
    const stop = () => {
      stopped = true;
      clearInterval(timer);
    };
    return stop;
  }

  /**
   * Settling a job (delivering its result, metering, acking: each waits for an fsync) runs
   * in the background so the worker process starts its next conversion at once. Settlements
   * in flight are bounded; past the bound the loop waits before claiming more.
   */
  async #track(settling: Promise<void>): Promise<void> {
    const tracked = settling
      .catch((error) => this.#options.onError?.(error))
      .finally(() => this.#settling.delete(tracked));
    this.#settling.add(tracked);
    while (this.#settling.size >= this.#options.concurrency * 4) await Promise.race(this.#settling);
  }

  /**
   * Converts the job, holding a worker process for exactly that long. Resolves with the
   * settlement still in progress, boxed so that `await` does not wait for it.
   */
  async #process(job: ClaimedJob): Promise<{ settling: Promise<void> }> {
    const { queue, converter, host, events } = this.#options;
    const payload = job.payload as unknown as ResizeJobPayload;
    const queueWaitMs = Math.max(0, Date.now() - job.enqueuedAt);
    events?.claimed?.(job, queueWaitMs, payload);

    const fail = async (error: PixelfleetError, retry: boolean): Promise<void> => {
      events?.failed?.(job, error, retry);
      await queue.nack(job.id, job.leaseId, {
        reason: encodeFailure(error),
        retry,
        ...(retry ? { delayMs: this.#options.retryDelayMs ?? 100 } : {}),
      });
      if (!retry) host.settled(job, payload, { error });
    };

    if (job.deadline !== undefined && Date.now() > job.deadline) {
      return settle(
        fail(
          new PixelfleetError(
            'PF_ERR_DEADLINE_EXCEEDED',
            'the request deadline passed before a worker was free',
          ),
          false,
        ),
      );
    }
    // The host (the api server holding the input) may be restarting: give the job back with a
    // backoff rather than letting its lease run out, so it is redelivered in seconds.
    const hostFailed = (caught: unknown, step: string): Promise<void> => {
      const cause = isPixelfleetError(caught)
        ? caught
        : new PixelfleetError('PF_ERR_REMOTE_FAILED', `${step} failed`, { cause: caught });
      const retry = job.attempt < job.maxAttempts;
      const error = new PixelfleetError(
        cause.code,
        `${step} failed on attempt ${job.attempt}: ${cause.message}`,
        { cause },
      );
      events?.failed?.(job, error, retry);
      return queue
        .nack(job.id, job.leaseId, {
          reason: encodeFailure(error),
          retry,
          ...(retry ? { delayMs: (this.#options.hostRetryDelayMs ?? 500) * 2 ** (job.attempt - 1) } : {}),
        })
        .then(() => {
          if (!retry) host.settled(job, payload, { error });
        });
    };
    let input: Buffer | undefined;
    try {
      input = await host.fetchInput(job, payload);
    } catch (caught) {
      return settle(hostFailed(caught, 'fetching the input'));
    }
    if (input === undefined) {
      return settle(
        fail(
          new PixelfleetError(
            'PF_ERR_DEADLINE_EXCEEDED',
            'the input is no longer held: the synchronous request ended',
          ),
          false,
        ),
      );
    }

    let converted: ConversionResult;
    try {
      converted = await converter.convert(input, payload.options, {
        timeoutMs: this.#options.jobTimeoutMs,
        traceparent: payload.traceparent,
      });
    } catch (caught) {
      const error = isPixelfleetError(caught)
        ? caught
        : new PixelfleetError('PF_ERR_INTERNAL', 'the conversion failed unexpectedly', { cause: caught });
      if (!isRetryableConversionError(error)) return settle(fail(error, false));
      if (job.attempt < job.maxAttempts) return settle(fail(error, true));
      return settle(
        fail(
          new PixelfleetError(
            'PF_ERR_POISON_INPUT',
            `the input crashed or stalled the converter ${job.attempt} times (last: ${error.code}); it was dead-lettered`,
            { cause: error },
          ),
          false,
        ),
      );
    }
    events?.converted?.(job, converted);

    const outcome: ResizeOutcome = {
      contentType: converted.contentType,
      format: converted.format,
      width: converted.width,
      height: converted.height,
      bytesIn: converted.bytesIn,
      bytesOut: converted.bytesOut,
      pixelsIn: converted.pixelsIn,
      pixelsOut: converted.pixelsOut,
      cpuMicros: converted.cpuUserMicros + converted.cpuSystemMicros,
      conversionMs: converted.wallMs,
      queueWaitMs,
      attempt: job.attempt,
    };
    const result: JobResult = { output: converted.output, contentType: converted.contentType, outcome };
    return settle(
      (async () => {
        try {
          await host.deliverResult(job, payload, result);
        } catch (caught) {
          return hostFailed(caught, 'delivering the result');
        }
        // A waiting client is answered before the ack's fsync: if we crash in between, the job
        // is redelivered, finds its input gone and is dropped; metering already deduplicates it.
        const answerFirst = payload.mode === 'sync';
        if (answerFirst) host.settled(job, payload, { result });
        try {
          await queue.ack(job.id, job.leaseId, outcome);
        } catch (error) {
          // Our lease expired and the job went to someone else: their outcome stands, not ours.
          if (isPixelfleetError(error, 'PF_ERR_LEASE_LOST')) return;
          throw error;
        }
        if (!answerFirst) host.settled(job, payload, { result });
      })(),
    );
  }
}
