/**
 * The commands of the queue state machine and what applying each one returns. Commands are plain
 * JSON values that carry their own time (`at`, epoch ms), so every replica applying the same log
 * reaches the same state: the state machine never reads a clock or a random source.
 */
import type { ErrorCode } from '../errors/index.ts';
import type { ClaimedJob, EnqueueRequest, JobOutcome, JobPayload, JobState } from './types.ts';

/** Sets the defaults later commands use; logged, so a config change replays deterministically. */
export interface ConfigureCommand {
  type: 'configure';
  at: number;
  maxAttempts: number;
  retentionMs: number;
}

export interface EnqueueCommand {
  type: 'enqueue';
  at: number;
  id: string;
  account: string;
  payload: JobPayload;
  maxAttempts?: number;
  deadline?: number;
  retentionMs?: number;
}

/** The enqueue command for a request, at time `at`: the optional fields only when set. */
export function enqueueCommand(request: EnqueueRequest, at: number): EnqueueCommand {
  return { ...unstampedEnqueue(request), at };
}

/** `enqueueCommand` without its time, for the Raft leader to stamp when it batches commands. */
export function unstampedEnqueue(request: EnqueueRequest): Omit<EnqueueCommand, 'at'> {
  return {
    type: 'enqueue',
    id: request.id,
    account: request.account,
    payload: request.payload,
    ...(request.maxAttempts === undefined ? {} : { maxAttempts: request.maxAttempts }),
    ...(request.deadline === undefined ? {} : { deadline: request.deadline }),
    ...(request.retentionMs === undefined ? {} : { retentionMs: request.retentionMs }),
  };
}

export interface ClaimCommand {
  type: 'claim';
  at: number;
  consumer: string;
  leaseMs: number;
}

export interface AckCommand {
  type: 'ack';
  at: number;
  id: string;
  leaseId: string;
  outcome?: JobOutcome;
}

export interface NackCommand {
  type: 'nack';
  at: number;
  id: string;
  leaseId: string;
  reason: string;
  retry: boolean;
  delayMs?: number;
}

export interface ExtendCommand {
  type: 'extend';
  at: number;
  id: string;
  leaseId: string;
  leaseMs: number;
}

/**
 * Time passes: expired leases go back to the queue (or to dead letter), queued jobs past their
 * deadline are dropped as expired, delayed jobs whose backoff ended become claimable, and
 * finished jobs older than the retention window are forgotten.
 */
export interface TickCommand {
  type: 'tick';
  at: number;
}

/**
 * Current leases are lost at once, as if each had expired (the attempt counts). The embedded
 * queue logs this on open after a crash, for every lease: its consumers lived in the process that
 * died. With `consumer`, only the leases of that consumer and of its slots (`<consumer>/...`): a
 * worker that restarted under its stable name hands back what its dead incarnation held.
 */
export interface ReleaseLeasesCommand {
  type: 'release-leases';
  at: number;
  consumer?: string;
}

export type QueueCommand =
  | ConfigureCommand
  | EnqueueCommand
  | ClaimCommand
  | AckCommand
  | NackCommand
  | ExtendCommand
  | TickCommand
  | ReleaseLeasesCommand;

/** Why a fenced command was refused; the driver turns it into a `PixelfleetError`. */
export interface CommandRejection {
  code: Extract<ErrorCode, 'PF_ERR_LEASE_LOST' | 'PF_ERR_JOB_NOT_FOUND'>;
  message: string;
}

interface Applied {
  /** True when the state changed: the command must be logged (or it was a no-op and need not be). */
  changed: boolean;
}

export interface EnqueueApplied extends Applied {
  id: string;
  duplicate: boolean;
  state: JobState;
}

export interface ClaimApplied extends Applied {
  job: ClaimedJob | undefined;
}

export interface SettleApplied extends Applied {
  rejection?: CommandRejection;
}

export interface ExtendApplied extends Applied {
  leaseExpiresAt?: number;
  rejection?: CommandRejection;
}

export interface TickApplied extends Applied {
  /** Jobs whose lease expired and that went back to the queue. */
  redelivered: string[];
  /** Jobs whose lease expired on their last attempt. */
  deadLettered: string[];
  /** Queued jobs dropped because their deadline passed. */
  expired: string[];
  /** Delayed jobs that became claimable. */
  promoted: number;
  /** Finished jobs forgotten after the retention window. */
  forgotten: number;
}

/** How many leases a `release-leases` command took back (redelivered or dead-lettered jobs). */
export function releasedCount(result: TickApplied): number {
  return result.redelivered.length + result.deadLettered.length;
}

export interface CommandResults {
  configure: Applied;
  enqueue: EnqueueApplied;
  claim: ClaimApplied;
  ack: SettleApplied;
  nack: SettleApplied;
  extend: ExtendApplied;
  tick: TickApplied;
  'release-leases': TickApplied;
}

export type CommandResult<C extends QueueCommand> = CommandResults[C['type']];
