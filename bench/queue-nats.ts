/**
 * The NATS JetStream side of the queue benchmark: the existing-engine alternative to the
 * Raft queue, measured on this machine with the same questions.
 *
 * Against a real 3-node cluster (`startNatsCluster`), an R3 work-queue stream on file storage:
 * 1. acknowledged publishes/s with 1 and 256 in flight, each with `Nats-Msg-Id` = job id;
 * 2. claim + ack/s with a durable pull consumer (explicit ack);
 * 3. failover: under continuous publishing, kill -9 the stream leader and time how long until
 *    publishes succeed again (repeated; the node is restarted and the stream healthy between
 *    runs). Failed publishes are retried with the same msg id, backoff and jitter;
 * 4. integrity: every acknowledged publish must be consumed exactly once.
 *
 * Run: `node bench/queue-nats.ts [--json]` (needs `nats-server` on PATH). Bounded to < 4 min.
 */
import { fileURLToPath } from 'node:url';
import {
  AckPolicy,
  type JetStreamClient,
  type JetStreamManager,
  jetstream,
  jetstreamManager,
  type PubAck,
  RetentionPolicy,
  StorageType,
} from '@nats-io/jetstream';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { openNatsQueue } from '../src/queue/nats/index.ts';
import { createLedger, drainAndCheck, runEnqueueLoad } from '../test/queue/fixtures/raft-load.ts';
import { type NatsCluster, startNatsCluster } from '../test/support/nats-cluster.ts';
import { median, percentile } from '../test/support/stats.ts';
import { sleep, waitFor } from '../test/support/wait-for.ts';

export interface NatsQueueBenchOptions {
  /** Use this cluster instead of starting (and stopping) one. */
  cluster?: NatsCluster;
  /** In-flight levels for the publish measurement. Default [1, 256]. */
  inFlight?: number[];
  /** Seconds of publishing per in-flight level. Default 4. */
  publishSeconds?: number;
  /** Upper bound on the claim measurement, in seconds. Default 15. */
  claimSeconds?: number;
  /** Leader kills. Default 5. */
  failoverRuns?: number;
  /** Publishers in flight while the leader is killed. Default 16. */
  failoverInFlight?: number;
  /** Per-attempt publish timeout; a timed-out attempt is retried with the same msg id. Default 1000. */
  publishTimeoutMs?: number;
  /** Job descriptor size. Default 200 bytes. */
  payloadBytes?: number;
  /** Progress lines. Default: none. */
  log?: (line: string) => void;
}

export interface PublishFigure {
  inFlight: number;
  acked: number;
  seconds: number;
  perSecond: number;
  latencyP50Ms: number;
  latencyP99Ms: number;
}

export interface FailoverRun {
  killedLeader: string;
  newLeader: string;
  /** Server the publishing client was connected to when the leader died. */
  clientServer: string;
  /** From the kill until the first publish attempt started after it was acknowledged. */
  resumeMs: number | null;
  failedAttempts: number;
}

export interface NatsQueueBenchResult {
  serverVersion: string;
  nodes: number;
  payloadBytes: number;
  publish: PublishFigure[];
  claim: { claimed: number; seconds: number; perSecond: number };
  failover: { runs: FailoverRun[]; medianMs: number | null; minMs: number | null; maxMs: number | null };
  integrity: {
    acknowledged: number;
    consumed: number;
    lost: number;
    /** Job ids stored twice (two stream sequences): dedup failed. */
    duplicates: number;
    /** Deliveries of an already delivered stream message (ack lost or late). */
    redeliveries: number;
    /** Publishes given up on at the bench deadline, never acknowledged. */
    unacknowledged: number;
  };
  totalSeconds: number;
}

const streamName = 'PIXELFLEET_JOBS';
const subject = 'pixelfleet.jobs.resize';
const consumerName = 'workers';
/** Whole-bench budget; retries stop at this point so the bench always ends. */
const benchBudgetMs = 230_000;

/** A job descriptor of about `bytes` bytes: what the API would enqueue (never image bytes). */
function jobDescriptor(id: string, bytes: number): Uint8Array {
  const base = {
    id,
    account: `acct-${id.length % 7}`,
    input: `http://api-1:8080/blobs/${id}`,
    w: 320,
    h: 240,
  };
  const text = JSON.stringify(base);
  const padding = Math.max(0, bytes - text.length - 10);
  return Buffer.from(JSON.stringify({ ...base, pad: 'x'.repeat(padding) }));
}

interface Ledger {
  /** Acknowledged job id → stream sequence. */
  acknowledged: Map<string, number>;
  unacknowledged: number;
  /** Job id → stream sequences it was delivered with. */
  deliveries: Map<string, number[]>;
}

interface AttemptObserver {
  onAttempt?(startedAt: number, succeeded: boolean): void;
}

class Publisher {
  readonly #client: JetStreamClient;
  readonly #ledger: Ledger;
  readonly #timeoutMs: number;
  readonly #payloadBytes: number;
  readonly #deadline: number;
  #nextId = 0;

  constructor(
    client: JetStreamClient,
    ledger: Ledger,
    timeoutMs: number,
    payloadBytes: number,
    deadline: number,
  ) {
    this.#client = client;
    this.#ledger = ledger;
    this.#timeoutMs = timeoutMs;
    this.#payloadBytes = payloadBytes;
    this.#deadline = deadline;
  }

  /** Publish one new job, retrying with the same msg id until acknowledged (or the deadline). */
  async publishJob(observer: AttemptObserver = {}): Promise<PubAck | null> {
    this.#nextId += 1;
    const id = `job-${this.#nextId.toString(36)}-${process.pid}`;
    const data = jobDescriptor(id, this.#payloadBytes);
    for (let attempt = 0; ; attempt += 1) {
      const startedAt = performance.now();
      try {
        const ack = await this.#client.publish(subject, data, { msgID: id, timeout: this.#timeoutMs });
        observer.onAttempt?.(startedAt, true);
        this.#ledger.acknowledged.set(id, ack.seq);
        return ack;
      } catch {
        observer.onAttempt?.(startedAt, false);
        if (performance.now() > this.#deadline) {
          this.#ledger.unacknowledged += 1;
          return null;
        }
        // Exponential backoff with equal jitter, capped: retry soon, but not in lockstep.
        const ceiling = Math.min(500, 25 * 2 ** attempt);
        await sleep(ceiling / 2 + Math.random() * (ceiling / 2));
      }
    }
  }

  /** `inFlight` concurrent publish loops until `shouldStop()`; returns per-publish latencies. */
  async run(inFlight: number, shouldStop: () => boolean, observer: AttemptObserver = {}): Promise<number[]> {
    const latencies: number[] = [];
    const loop = async (): Promise<void> => {
      while (!shouldStop()) {
        const startedAt = performance.now();
        if ((await this.publishJob(observer)) !== null) latencies.push(performance.now() - startedAt);
      }
    };
    await Promise.all(Array.from({ length: inFlight }, loop));
    return latencies;
  }
}

function recordDelivery(ledger: Ledger, id: string, sequence: number): void {
  const sequences = ledger.deliveries.get(id);
  if (sequences === undefined) ledger.deliveries.set(id, [sequence]);
  else sequences.push(sequence);
}

async function createStream(manager: JetStreamManager): Promise<void> {
  await manager.streams.add({
    name: streamName,
    subjects: [subject],
    retention: RetentionPolicy.Workqueue,
    storage: StorageType.File,
    num_replicas: 3,
    duplicate_window: 300 * 1_000_000_000, // ns: longer than the bench, so every retry is deduplicated
  });
  await manager.consumers.add(streamName, {
    durable_name: consumerName,
    ack_policy: AckPolicy.Explicit,
    ack_wait: 30 * 1_000_000_000,
    max_ack_pending: 20_000,
  });
}

/** Claim and ack until `target` messages were claimed or `limitMs` passed. */
async function claimAndAck(
  client: JetStreamClient,
  ledger: Ledger,
  target: number,
  limitMs: number,
): Promise<{ claimed: number; seconds: number }> {
  const consumer = await client.consumers.get(streamName, consumerName);
  const startedAt = performance.now();
  let claimed = 0;
  const messages = await consumer.consume({ max_messages: 1024, expires: 1000 });
  const timer = setTimeout(() => messages.stop(), limitMs);
  for await (const message of messages) {
    recordDelivery(ledger, message.headers?.get('Nats-Msg-Id') ?? `?${message.seq}`, message.seq);
    message.ack();
    claimed += 1;
    if (claimed >= target) break;
  }
  clearTimeout(timer);
  const seconds = (performance.now() - startedAt) / 1000;
  messages.stop();
  return { claimed, seconds };
}

/** Consume everything left, acking each (with confirmation), until the stream is empty. */
async function drain(
  client: JetStreamClient,
  manager: JetStreamManager,
  ledger: Ledger,
  deadline: number,
): Promise<void> {
  const consumer = await client.consumers.get(streamName, consumerName);
  for (let idleRounds = 0; idleRounds < 3; ) {
    let received = 0;
    try {
      const batch = await consumer.fetch({ max_messages: 2000, expires: 1000 });
      for await (const message of batch) {
        received += 1;
        recordDelivery(ledger, message.headers?.get('Nats-Msg-Id') ?? `?${message.seq}`, message.seq);
        await message.ackAck();
      }
    } catch (error) {
      if (performance.now() > deadline)
        throw new Error('could not drain the stream in time', { cause: error });
      // The consumer's own leader may still be moving after the kills ("heartbeats missed"):
      // what was delivered is recorded; fetch again.
      await sleep(200);
      continue;
    }
    if (received > 0) {
      idleRounds = 0;
      continue;
    }
    const info = await manager.streams.info(streamName);
    idleRounds = info.state.messages === 0 ? idleRounds + 1 : 0;
  }
}

async function streamLeader(manager: JetStreamManager): Promise<string> {
  return waitFor(
    async () => {
      const info = await manager.streams.info(streamName);
      return info.cluster?.leader ?? '';
    },
    { timeoutMs: 30_000, intervalMs: 100, message: 'the stream to have a leader' },
  );
}

/** A leader, and both followers current (caught up) and online. */
async function waitForHealthyStream(
  manager: JetStreamManager,
  timeoutMs: number,
  stream = streamName,
): Promise<void> {
  await waitFor(
    async () => {
      const info = await manager.streams.info(stream);
      const cluster = info.cluster;
      const replicas = cluster?.replicas ?? [];
      return (
        Boolean(cluster?.leader) &&
        replicas.length === 2 &&
        replicas.every((peer) => peer.current && !peer.offline)
      );
    },
    { timeoutMs, intervalMs: 200, message: 'the stream to be healthy again (leader + 2 current replicas)' },
  );
}

async function failoverRun(
  cluster: NatsCluster,
  connection: NatsConnection,
  manager: JetStreamManager,
  publisher: Publisher,
  inFlight: number,
  log: (line: string) => void,
): Promise<FailoverRun> {
  const leader = await streamLeader(manager);
  const server = cluster.servers.find((candidate) => candidate.name === leader);
  if (server === undefined) throw new Error(`stream leader ${leader} is not one of this cluster's servers`);
  let stop = false;
  let killedAt = Number.POSITIVE_INFINITY;
  let resumedAt: number | null = null;
  let failedAttempts = 0;
  const publishing = publisher.run(inFlight, () => stop, {
    onAttempt(startedAt, succeeded) {
      if (startedAt < killedAt) return;
      if (!succeeded) failedAttempts += 1;
      else if (resumedAt === null) resumedAt = performance.now();
    },
  });
  await sleep(1000); // steady state first
  const clientServer = connection.info?.server_name ?? '?';
  killedAt = performance.now();
  await server.kill('SIGKILL');
  const deadline = killedAt + 45_000;
  while (resumedAt === null && performance.now() < deadline) await sleep(20);
  await sleep(500); // keep publishing across the new leader for a moment
  stop = true;
  await publishing;
  const newLeader = await streamLeader(manager).catch(() => '?');
  const resumeMs = resumedAt === null ? null : (resumedAt as number) - killedAt;
  log(
    `  failover: killed ${leader} (client on ${clientServer}), new leader ${newLeader}, resumed after ${resumeMs === null ? 'never' : `${(resumeMs / 1000).toFixed(2)} s`}`,
  );
  await server.restart();
  await waitForHealthyStream(manager, 60_000);
  return { killedLeader: leader, newLeader, clientServer, resumeMs, failedAttempts };
}

export async function benchNatsQueue(options: NatsQueueBenchOptions = {}): Promise<NatsQueueBenchResult> {
  const benchStartedAt = performance.now();
  const deadline = benchStartedAt + benchBudgetMs;
  const log = options.log ?? (() => {});
  const inFlightLevels = options.inFlight ?? [1, 256];
  const publishSeconds = options.publishSeconds ?? 4;
  const payloadBytes = options.payloadBytes ?? 200;
  const publishTimeoutMs = options.publishTimeoutMs ?? 1000;
  const failoverRuns = options.failoverRuns ?? 5;
  const ownCluster = options.cluster === undefined;
  const cluster = options.cluster ?? (await startNatsCluster({ nodes: 3, jetstream: true }));
  log(`cluster: ${cluster.servers.length} nats-servers at ${cluster.urls.join(', ')}`);
  const connection = await connect({
    servers: cluster.urls,
    name: 'pixelfleet-queue-bench',
    maxReconnectAttempts: -1,
    reconnectTimeWait: 250,
    reconnectJitter: 100,
    pingInterval: 2000,
  });
  try {
    const manager = await jetstreamManager(connection, { timeout: 2000 });
    const client = jetstream(connection, { timeout: publishTimeoutMs });
    await createStream(manager);
    await waitForHealthyStream(manager, 30_000);
    const ledger: Ledger = { acknowledged: new Map(), unacknowledged: 0, deliveries: new Map() };
    const publisher = new Publisher(client, ledger, publishTimeoutMs, payloadBytes, deadline);

    const publish: PublishFigure[] = [];
    for (const inFlight of inFlightLevels) {
      const warmUntil = performance.now() + 500; // warm up: JIT, connection buffers
      await publisher.run(inFlight, () => performance.now() > warmUntil);
      const startedAt = performance.now();
      const latencies = await publisher.run(
        inFlight,
        () => performance.now() - startedAt > publishSeconds * 1000,
      );
      const seconds = (performance.now() - startedAt) / 1000;
      latencies.sort((a, b) => a - b);
      const figure = {
        inFlight,
        acked: latencies.length,
        seconds,
        perSecond: Math.round(latencies.length / seconds),
        latencyP50Ms: percentile(latencies, 0.5),
        latencyP99Ms: percentile(latencies, 0.99),
      };
      publish.push(figure);
      log(`  publish, ${inFlight} in flight: ${figure.perSecond} acked/s`);
    }

    const backlog = (await manager.streams.info(streamName)).state.messages;
    const claimResult = await claimAndAck(client, ledger, backlog, (options.claimSeconds ?? 15) * 1000);
    const claim = { ...claimResult, perSecond: Math.round(claimResult.claimed / claimResult.seconds) };
    log(`  claim+ack: ${claim.perSecond}/s (${claim.claimed} of a backlog of ${backlog})`);

    const runs: FailoverRun[] = [];
    for (let run = 0; run < failoverRuns; run += 1) {
      if (performance.now() > deadline - 40_000) {
        log('  failover: time budget reached, stopping early');
        break;
      }
      runs.push(
        await failoverRun(cluster, connection, manager, publisher, options.failoverInFlight ?? 16, log),
      );
    }
    const resumes = runs.flatMap((run) => (run.resumeMs === null ? [] : [run.resumeMs]));

    await drain(client, manager, ledger, deadline + 60_000);
    let lost = 0;
    for (const id of ledger.acknowledged.keys()) if (!ledger.deliveries.has(id)) lost += 1;
    let duplicates = 0;
    let redeliveries = 0;
    let consumed = 0;
    for (const sequences of ledger.deliveries.values()) {
      consumed += 1;
      const distinct = new Set(sequences).size;
      duplicates += distinct - 1;
      redeliveries += sequences.length - distinct;
    }
    return {
      serverVersion: connection.info?.version ?? '?',
      nodes: cluster.servers.length,
      payloadBytes,
      publish,
      claim,
      failover: {
        runs,
        medianMs: median(resumes),
        minMs: resumes.length === 0 ? null : Math.min(...resumes),
        maxMs: resumes.length === 0 ? null : Math.max(...resumes),
      },
      integrity: {
        acknowledged: ledger.acknowledged.size,
        consumed,
        lost,
        duplicates,
        redeliveries,
        unacknowledged: ledger.unacknowledged,
      },
      totalSeconds: (performance.now() - benchStartedAt) / 1000,
    };
  } finally {
    await connection.close().catch(() => {});
    if (ownCluster) await cluster.stop();
  }
}

export interface NatsAdapterFailoverResult {
  runs: Array<{ killedLeader: string; resumeMs: number | null }>;
  medianMs: number | null;
  maxMs: number | null;
  integrity: {
    acknowledged: number;
    consumed: number;
    lost: number;
    deliveredTwice: number;
    unacknowledged: number;
  };
}

/**
 * The failover gap as a Pixelfleet client sees it: enqueues through `NatsJobQueue` (16 in flight,
 * each a record read, a publish with the job id as msg id, a record write and a totals event),
 * kill -9 of the jobs stream's leader, time until an enqueue started after the kill is
 * acknowledged. Then every acknowledged job is claimed and acked through the adapter.
 */
export async function benchNatsAdapterFailover(
  cluster: NatsCluster,
  options: { runs?: number; log?: (line: string) => void } = {},
): Promise<NatsAdapterFailoverResult> {
  const log = options.log ?? (() => {});
  const queue = await openNatsQueue({
    servers: cluster.urls,
    stream: 'PIXELFLEET_ADAPTER_BENCH',
    subjectPrefix: 'pixelfleet-bench-adapter',
    attemptTimeoutMs: 1_000,
    ackWaitMs: 5_000,
  });
  const connection = await connect({ servers: cluster.urls, maxReconnectAttempts: -1 });
  try {
    const manager = await jetstreamManager(connection, { timeout: 2000 });
    const stream = queue.resources.jobsStream;
    const ledger = createLedger();
    const runs: NatsAdapterFailoverResult['runs'] = [];
    for (let run = 0; run < (options.runs ?? 5); run += 1) {
      const leader = await waitFor(async () => (await manager.streams.info(stream)).cluster?.leader ?? '', {
        timeoutMs: 30_000,
        intervalMs: 100,
      });
      const server = cluster.servers.find((candidate) => candidate.name === leader);
      if (server === undefined)
        throw new Error(`stream leader ${leader} is not one of this cluster's servers`);
      let stop = false;
      let killedAt = Number.POSITIVE_INFINITY;
      let resumedAt: number | null = null;
      const load = runEnqueueLoad(queue, ledger, {
        inFlight: 16,
        prefix: `adapter${run}`,
        shouldStop: () => stop,
        observe(startedAt, finishedAt, ok) {
          if (ok && startedAt >= killedAt && resumedAt === null) resumedAt = finishedAt;
        },
      });
      await sleep(1000);
      killedAt = performance.now();
      await server.kill('SIGKILL');
      const deadline = killedAt + 45_000;
      while (resumedAt === null && performance.now() < deadline) await sleep(20);
      await sleep(500);
      stop = true;
      await load;
      const resumeMs = resumedAt === null ? null : (resumedAt as number) - killedAt;
      log(
        `  adapter failover: killed ${leader}, resumed after ${resumeMs === null ? 'never' : `${(resumeMs / 1000).toFixed(2)} s`}`,
      );
      runs.push({ killedLeader: leader, resumeMs });
      await server.restart().catch((error: Error) => {
        // nats-server 2.9's /healthz stays "not current" for idle per-account consumers after a
        // restart; the process runs, and what the next run needs is the jobs stream healthy.
        if (!server.running) throw error;
        log(`  note: ${server.name} restarted but /healthz is not ok yet (idle consumers catching up)`);
      });
      await waitForHealthyStream(manager, 60_000, stream);
    }
    const drained = await drainAndCheck(queue, ledger, { timeoutMs: 120_000 });
    const resumes = runs.flatMap((run) => (run.resumeMs === null ? [] : [run.resumeMs]));
    return {
      runs,
      medianMs: median(resumes),
      maxMs: resumes.length === 0 ? null : Math.max(...resumes),
      integrity: {
        acknowledged: ledger.acknowledged.size,
        consumed: drained.consumed,
        lost: drained.lost,
        deliveredTwice: drained.duplicated,
        unacknowledged: ledger.unacknowledged.size,
      },
    };
  } finally {
    await queue.destroy().catch(() => queue.close());
    await connection.close().catch(() => {});
  }
}

/** The result as a plain-text table. */
export function formatNatsQueueReport(result: NatsQueueBenchResult): string {
  const seconds = (ms: number | null): string => (ms === null ? 'n/a' : `${(ms / 1000).toFixed(2)} s`);
  const rows: Array<[string, string]> = [];
  for (const figure of result.publish) {
    rows.push([
      `acked publishes/s, ${figure.inFlight} in flight`,
      `${figure.perSecond} (p50 ${figure.latencyP50Ms.toFixed(1)} ms, p99 ${figure.latencyP99Ms.toFixed(1)} ms)`,
    ]);
  }
  rows.push([
    'claim+ack/s (pull, explicit ack)',
    `${result.claim.perSecond} (${result.claim.claimed} claimed)`,
  ]);
  rows.push([
    `failover resume after leader kill -9 (${result.failover.runs.length} runs)`,
    `median ${seconds(result.failover.medianMs)}, min ${seconds(result.failover.minMs)}, max ${seconds(result.failover.maxMs)}`,
  ]);
  rows.push([
    '  runs',
    result.failover.runs
      .map((run) => `${run.killedLeader}→${run.newLeader} ${seconds(run.resumeMs)}`)
      .join(', '),
  ]);
  const integrity = result.integrity;
  rows.push(['acknowledged publishes', String(integrity.acknowledged)]);
  rows.push([
    'lost / duplicated / redelivered',
    `${integrity.lost} / ${integrity.duplicates} / ${integrity.redeliveries}`,
  ]);
  rows.push(['unacknowledged at deadline', String(integrity.unacknowledged)]);
  rows.push(['total bench time', `${result.totalSeconds.toFixed(1)} s`]);
  const width = Math.max(...rows.map(([label]) => label.length));
  const header = `NATS JetStream ${result.serverVersion}, ${result.nodes} nodes, R3 work-queue stream, file storage, ${result.payloadBytes}-byte jobs`;
  return [
    header,
    '-'.repeat(header.length),
    ...rows.map(([label, value]) => `${label.padEnd(width)}  ${value}`),
  ].join('\n');
}

if (process.argv[1] !== undefined && fileURLToPath(import.meta.url) === process.argv[1]) {
  const json = process.argv.includes('--json');
  const result = await benchNatsQueue({ log: (line) => console.error(line) });
  console.log(json ? JSON.stringify(result, null, 2) : formatNatsQueueReport(result));
}
