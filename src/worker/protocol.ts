/**
 * The messages between the worker pool (parent) and a conversion child over the fork IPC
 * channel. The channel uses `serialization: 'advanced'` (structured clone), so image bytes travel
 * as binary Uint8Arrays, not base64 JSON, and the limits' Set survives the trip.
 */
import type { SerialisedError } from './conversion_errors.ts';
import type { ConversionLimits, ConvertedImage, ResizeOptions } from './types.ts';

export interface ConvertRequest {
  type: 'convert';
  jobId: number;
  /** The input, either in the message or in a spool file the child reads and unlinks. */
  input?: Uint8Array;
  inputPath?: string;
  options: ResizeOptions;
  limits: ConversionLimits;
  traceparent?: string;
}

/** Heartbeat: the child answers at once, even mid-conversion (libvips runs off its event loop). */
export interface PingRequest {
  type: 'ping';
  id: number;
}

export type ParentMessage = ConvertRequest | PingRequest;

/** Cost of one conversion, measured inside the child around the conversion only. */
export interface ConversionCost {
  cpuUserMicros: number;
  cpuSystemMicros: number;
  wallMs: number;
  /** Resident set size of the child after the conversion, in bytes. */
  rss: number;
}

export interface ReadyMessage {
  type: 'ready';
  pid: number;
  rss: number;
}

export interface PongMessage {
  type: 'pong';
  id: number;
  rss: number;
}

export interface ConvertedMessage extends ConversionCost {
  type: 'converted';
  jobId: number;
  /** `output` arrives as a Uint8Array (structured clone does not keep the Buffer subclass). */
  image: Omit<ConvertedImage, 'output'> & { output: Uint8Array };
}

export interface FailedMessage extends ConversionCost {
  type: 'failed';
  jobId: number;
  error: SerialisedError;
}

export type ChildMessage = ReadyMessage | PongMessage | ConvertedMessage | FailedMessage;
