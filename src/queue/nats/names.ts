/**
 * Where a NATS-backed queue keeps things: the names of its streams, consumers and subjects,
 * derived from two options (`stream`, `subjectPrefix`), so every process that opens the same
 * queue finds the same resources. Account names and job ids are free text; NATS subject tokens
 * and consumer names are not, so both are encoded reversibly (base64url) or hashed.
 */
import { createHash } from 'node:crypto';

export interface QueueResourceNames {
  /** Work-queue stream holding the jobs, one subject per account. */
  jobsStream: string;
  /** `<prefix>.jobs.>`. */
  jobsSubjects: string;
  /** Stream behind the job-record KV bucket (`KV_<bucket>`). */
  recordsStream: string;
  /** KV bucket name of the job records. */
  recordsBucket: string;
  /** Limits stream holding one message per dead-lettered job. */
  deadLetterStream: string;
  /** `<prefix>.dead.>`. */
  deadLetterSubjects: string;
  /** Limits stream whose per-subject message counts are the queue's totals. */
  eventsStream: string;
  /** Core NATS subject on which enqueues and nacks wake waiting claims (not persisted). */
  notifySubject: string;
  /** MAX_DELIVERIES advisories of every account consumer of the jobs stream. */
  maxDeliveriesAdvisory: string;
  subjectPrefix: string;
}

const STREAM_NAME = /^[A-Za-z0-9_-]{1,64}$/;
const SUBJECT_PREFIX = /^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$/;

export function resourceNames(stream: string, subjectPrefix: string): QueueResourceNames {
  if (!STREAM_NAME.test(stream)) {
    throw new RangeError(`stream must be 1-64 characters of A-Z a-z 0-9 _ -: got ${JSON.stringify(stream)}`);
  }
  if (!SUBJECT_PREFIX.test(subjectPrefix)) {
    throw new RangeError(
      `subjectPrefix must be dot-separated tokens of A-Z a-z 0-9 _ -: got ${JSON.stringify(subjectPrefix)}`,
    );
  }
  const recordsBucket = `${stream}_RECORDS`;
  return {
    jobsStream: stream,
    jobsSubjects: `${subjectPrefix}.jobs.>`,
    recordsStream: `KV_${recordsBucket}`,
    recordsBucket,
    deadLetterStream: `${stream}_DEAD`,
    deadLetterSubjects: `${subjectPrefix}.dead.>`,
    eventsStream: `${stream}_EVENTS`,
    notifySubject: `${subjectPrefix}.notify`,
    maxDeliveriesAdvisory: `$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.${stream}.*`,
    subjectPrefix,
  };
}

/** A subject token for free text: base64url never contains `.`, `*`, `>` or whitespace. */
export function encodeToken(text: string): string {
  return Buffer.from(text, 'utf8').toString('base64url');
}

export function decodeToken(token: string): string {
  return Buffer.from(token, 'base64url').toString('utf8');
}

export function jobSubject(names: QueueResourceNames, account: string): string {
  return `${names.subjectPrefix}.jobs.${encodeToken(account)}`;
}

/** The account token of a job subject, or undefined for a subject outside the jobs stream. */
export function accountTokenOf(names: QueueResourceNames, subject: string): string | undefined {
  const prefix = `${names.subjectPrefix}.jobs.`;
  if (!subject.startsWith(prefix)) return undefined;
  const token = subject.slice(prefix.length);
  return token === '' || token.includes('.') ? undefined : token;
}

/** Durable pull consumer of one account: a hash, because names are short and restricted. */
export function accountConsumerName(accountToken: string): string {
  return `account_${createHash('sha256').update(accountToken).digest('hex').slice(0, 24)}`;
}

export function recordSubject(names: QueueResourceNames, id: string): string {
  return `$KV.${names.recordsBucket}.${encodeToken(id)}`;
}

export function deadLetterSubject(names: QueueResourceNames, account: string, id: string): string {
  return `${names.subjectPrefix}.dead.${encodeToken(account)}.${encodeToken(id)}`;
}

export type QueueEvent = 'enqueued' | 'acked' | 'nacked' | 'redelivered' | 'expired';

export function eventSubject(names: QueueResourceNames, event: QueueEvent): string {
  return `${names.subjectPrefix}.events.${event}`;
}
