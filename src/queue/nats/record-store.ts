/**
 * The job records: a JetStream KV bucket (a stream `KV_<bucket>` on `$KV.<bucket>.>`, history 1,
 * the layout the `nats kv` tools read), keyed by job id, holding each job's `JobRecord` plus the
 * current lease. It answers `get`, deduplicates beyond the stream's duplicate window and fences
 * ack/nack/extend.
 *
 * Every change is a compare-and-set on the key's last revision (`Nats-Expected-Last-Subject-
 * Sequence`), so two processes racing on one job (an ack against a lease expiry, a claim against
 * a stale ack) cannot both win. Reads go to the stream leader (a plain `STREAM.MSG.GET`, not a
 * direct get a follower could serve), so a process reads its own writes. Each write carries a
 * random writer token: when a write's reply is lost and its retry meets a changed revision, the
 * token says whether the change was our own.
 */

import { randomUUID } from 'node:crypto';
import { JetStreamApiError } from '@nats-io/jetstream';
import { publicJobRecord } from '../state-machine.ts';
import type { JobRecord } from '../types.ts';
import { recordSubject } from './names.ts';
import { type JetStreamAccess, withRetry } from './retry.ts';

/** The lease of the current delivery: what fences ack/nack/extend. */
export interface StoredLease {
  /** `<stream sequence>.<delivery count>`: unique per delivery of a job. */
  id: string;
  /** The delivery's JetStream ack subject, so any process can settle it. */
  ackSubject: string;
  expiresAt: number;
  consumer: string;
}

export interface StoredJob extends JobRecord {
  /** Stream sequence of the job's message in the jobs stream (absent for jobs never published). */
  sequence?: number;
  lease?: StoredLease;
  /** Nacks received (for the totals). */
  nacks?: number;
  /** Token of the write that produced this revision. */
  writer?: string;
}

export interface VersionedJob {
  job: StoredJob;
  revision: number;
}

/** Compare-and-set lost: someone else changed the record first. */
export class RevisionConflict extends Error {
  constructor(id: string) {
    super(`job record ${id} changed concurrently`);
    this.name = 'RevisionConflict';
  }
}

const WRONG_LAST_SEQUENCE = 10071;

export class JobRecordStore {
  readonly #js: JetStreamAccess;

  constructor(access: JetStreamAccess) {
    this.#js = access;
  }

  async read(id: string): Promise<VersionedJob | undefined> {
    const stored = await withRetry(this.#js.retry, 'a job record read', () =>
      this.#js.manager.streams.getMessage(this.#js.names.recordsStream, {
        last_by_subj: recordSubject(this.#js.names, id),
      }),
    );
    if (stored === null || stored.data.length === 0) return undefined;
    return { job: stored.json<StoredJob>(), revision: stored.seq };
  }

  /** Writes the record if the key has no value yet; RevisionConflict otherwise. */
  create(job: StoredJob): Promise<number> {
    return this.#write(job, 0);
  }

  /** Writes the record if the key is still at `revision`; RevisionConflict otherwise. */
  update(job: StoredJob, revision: number): Promise<number> {
    return this.#write(job, revision);
  }

  async #write(job: StoredJob, revision: number): Promise<number> {
    const writer = randomUUID();
    const body = JSON.stringify({ ...job, writer });
    let uncertain = false;
    try {
      return await withRetry(
        this.#js.retry,
        'a job record write',
        async () => {
          const ack = await this.#js.client.publish(recordSubject(this.#js.names, job.id), body, {
            expect: { lastSubjectSequence: revision },
            timeout: this.#js.attemptTimeoutMs,
          });
          return ack.seq;
        },
        { onUncertain: () => (uncertain = true) },
      );
    } catch (error) {
      if (!(error instanceof JetStreamApiError && error.code === WRONG_LAST_SEQUENCE)) throw error;
      if (uncertain) {
        // A lost reply: the revision may have moved because our own first attempt landed.
        const current = await this.read(job.id);
        if (current?.job.writer === writer) return current.revision;
      }
      throw new RevisionConflict(job.id);
    }
  }
}

/** The public view of a stored job: no lease internals. */
export function toJobRecord(job: StoredJob): JobRecord {
  return publicJobRecord(job);
}

export function isFinished(job: StoredJob): boolean {
  return job.state === 'succeeded' || job.state === 'dead' || job.state === 'expired';
}
