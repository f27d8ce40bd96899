/**
 * The queue state machine as a replicated application: what every node applies from the Raft
 * log. An entry holds a batch of queue commands stamped with ONE time, the leader's clock when it
 * proposed them (`{"at": ms, "commands": [...]}`, UTF-8 JSON). Applying uses
 * `max(at, latest at applied so far)`, so replicated time never runs backwards even when a new
 * leader's clock is behind the old one's; every replica computes the same time from the log.
 *
 * Applying never throws for a bad command: a command the state machine refuses yields an error
 * result on every replica alike (deterministic), and the proposer reports it to its caller.
 */
import { PixelfleetError } from '../../errors/index.ts';
import type { CommandResult, QueueCommand } from '../commands.ts';
import { type QueueSnapshot, type QueueStateConfig, QueueStateMachine } from '../state-machine.ts';
import { bytesText, textBytes } from './binary.ts';
import type { ReplicatedApplication } from './node.ts';

/** A command as proposed: the time is the batch's. */
export type UnstampedCommand = WithoutTime<QueueCommand>;
type WithoutTime<C> = C extends QueueCommand ? Omit<C, 'at'> : never;

export interface CommandFailure {
  failure: { code: string; message: string; name: string };
}

export type AppliedResult = CommandResult<QueueCommand> | CommandFailure;

/** Jobs serialized per event-loop turn when snapshotting (a few ms of work each). */
const SNAPSHOT_CHUNK_JOBS = 2000;

interface ApplicationSnapshot {
  format: 'pixelfleet.raft-queue.v1';
  lastAt: number;
  queue: QueueSnapshot;
}

export class QueueApplication implements ReplicatedApplication {
  #machine: QueueStateMachine;
  #lastAt = 0;

  constructor(config: Partial<QueueStateConfig> = {}) {
    this.#machine = new QueueStateMachine(config);
  }

  /** The state as of the last applied entry (read it only after a linearizable read point). */
  get machine(): QueueStateMachine {
    return this.#machine;
  }

  /** Replicated time: the latest command time applied. */
  get lastAt(): number {
    return this.#lastAt;
  }

  apply(data: Uint8Array): AppliedResult[] {
    const batch = JSON.parse(bytesText(data)) as { at: number; commands: QueueCommand[] };
    this.#lastAt = Math.max(this.#lastAt, batch.at);
    const results: AppliedResult[] = new Array(batch.commands.length);
    for (let position = 0; position < batch.commands.length; position++) {
      const command = batch.commands[position]!;
      command.at = this.#lastAt;
      try {
        results[position] = this.#machine.apply(command);
      } catch (error) {
        const failure = error as { code?: unknown; message?: unknown; name?: unknown };
        results[position] = {
          failure: {
            code: typeof failure.code === 'string' ? failure.code : 'PF_ERR_INTERNAL',
            message: String(failure.message ?? error),
            name: typeof failure.name === 'string' ? failure.name : 'Error',
          },
        };
      }
    }
    return results;
  }

  /**
   * Copies the state now (jobs are shallow-copied; their payloads are never mutated), then
   * serializes the copy a few thousand jobs per event-loop turn: a state of 150 000 jobs is
   * ~50 MB of JSON, and one synchronous stringify of it would stall heartbeats for ~0.5 s.
   */
  captureSnapshot(): () => Promise<Uint8Array> {
    const queue = this.#machine.snapshot();
    const lastAt = this.#lastAt;
    return async () => {
      const { jobs, ...rest } = queue;
      const head: ApplicationSnapshot = {
        format: 'pixelfleet.raft-queue.v1',
        lastAt,
        queue: { ...rest, jobs: [] },
      };
      const text = JSON.stringify(head);
      const marker = text.lastIndexOf('"jobs":[]');
      const parts: Buffer[] = [Buffer.from(text.slice(0, marker + '"jobs":['.length))];
      for (let start = 0; start < jobs.length; start += SNAPSHOT_CHUNK_JOBS) {
        if (start > 0) {
          parts.push(Buffer.from(','));
          await new Promise((resolve) => setImmediate(resolve));
        }
        const chunk = JSON.stringify(jobs.slice(start, start + SNAPSHOT_CHUNK_JOBS));
        parts.push(Buffer.from(chunk.slice(1, -1)));
      }
      parts.push(Buffer.from(text.slice(marker + '"jobs":['.length)));
      return Buffer.concat(parts);
    };
  }

  restore(data: Uint8Array): void {
    const snapshot = JSON.parse(bytesText(data)) as ApplicationSnapshot;
    if (snapshot?.format !== 'pixelfleet.raft-queue.v1') {
      throw new PixelfleetError('PF_ERR_STORAGE_CORRUPT', 'not a replicated queue snapshot (unknown format)');
    }
    this.#machine = QueueStateMachine.restore(snapshot.queue);
    this.#lastAt = snapshot.lastAt;
  }
}

/** Encodes the commands of one entry (each already JSON-encoded by the caller). */
export function encodeCommandBatch(at: number, encodedCommands: readonly string[]): Uint8Array {
  return textBytes(`{"at":${at},"commands":[${encodedCommands.join(',')}]}`);
}

export function isCommandFailure(result: AppliedResult | undefined): result is CommandFailure {
  return result !== undefined && 'failure' in result;
}
