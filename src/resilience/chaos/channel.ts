/**
 * One direction of a proxied connection: bytes from `source` to `sink`, subject to the
 * direction's current fault. Order is always preserved (one FIFO with due times), memory is
 * bounded (the source is paused, so TCP backpressure reaches the real sender), and an end of
 * stream is passed on only after every byte before it.
 */
import type { Socket } from 'node:net';
import type { DirectionFault } from './types.ts';

/** Queue more than this and the source is paused until the sink catches up. */
const highWaterBytes = 1024 * 1024;

export interface ChannelHooks {
  fault(): DirectionFault;
  forwarded(bytes: number): void;
  /** Bytes were swallowed by a blackhole: the stream is torn. */
  discarded(bytes: number): void;
}

export class Channel {
  readonly #source: Socket;
  readonly #hooks: ChannelHooks;
  #sink: Socket | null = null;
  #queue: Array<{ due: number; chunk: Buffer }> = [];
  #queuedBytes = 0;
  #timer: NodeJS.Timeout | null = null;
  #waitingForDrain = false;
  #sourceEnded = false;
  #sinkEnded = false;
  #stopped = false;

  constructor(source: Socket, hooks: ChannelHooks) {
    this.#source = source;
    this.#hooks = hooks;
    source.on('data', (chunk: Buffer) => this.#receive(chunk));
    source.on('end', () => {
      this.#sourceEnded = true;
      this.pump();
    });
  }

  /** Attach the far side (the target socket is dialled lazily); flushes anything held. */
  connect(sink: Socket): void {
    this.#sink = sink;
    this.pump();
  }

  /** Forward whatever is due, then pause or resume the source as the state requires. */
  pump(): void {
    if (this.#stopped) return;
    const sink = this.#sink;
    const fault = this.#hooks.fault();
    if (sink !== null && fault.mode === 'forward') {
      const now = performance.now();
      while (this.#queue.length > 0 && !this.#waitingForDrain) {
        const head = this.#queue[0]!;
        if (head.due > now) {
          this.#arm(head.due - now);
          break;
        }
        this.#queue.shift();
        this.#queuedBytes -= head.chunk.length;
        this.#hooks.forwarded(head.chunk.length);
        if (!sink.write(head.chunk)) {
          this.#waitingForDrain = true;
          sink.once('drain', () => {
            this.#waitingForDrain = false;
            this.pump();
          });
        }
      }
      if (this.#queue.length === 0 && this.#sourceEnded && !this.#sinkEnded) {
        this.#sinkEnded = true;
        sink.end();
      }
    }
    this.#updateFlow(fault);
  }

  stop(): void {
    this.#stopped = true;
    if (this.#timer !== null) clearTimeout(this.#timer);
    this.#timer = null;
    this.#queue = [];
    this.#queuedBytes = 0;
  }

  #receive(chunk: Buffer): void {
    if (this.#stopped) return;
    const fault = this.#hooks.fault();
    if (fault.mode === 'blackhole') {
      this.#hooks.discarded(chunk.length);
      return;
    }
    this.#queue.push({ due: performance.now() + fault.delayMs, chunk });
    this.#queuedBytes += chunk.length;
    this.pump();
  }

  #arm(delayMs: number): void {
    if (this.#timer !== null) clearTimeout(this.#timer);
    this.#timer = setTimeout(
      () => {
        this.#timer = null;
        this.pump();
      },
      Math.max(1, Math.ceil(delayMs)),
    );
  }

  /** A blackhole keeps reading (and swallowing); everything else reads only while there is room. */
  #updateFlow(fault: DirectionFault): void {
    const hold =
      fault.mode === 'stall' ||
      (fault.mode === 'forward' && (this.#sink === null || this.#waitingForDrain)) ||
      this.#queuedBytes > highWaterBytes;
    if (hold && fault.mode !== 'blackhole') this.#source.pause();
    else this.#source.resume();
  }
}
