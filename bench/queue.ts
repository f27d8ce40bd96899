/**
 * `npm run bench:queue`: the Raft-replicated queue (3 node processes on loopback, each fsyncing
 * its own log) side by side with NATS JetStream (3 nodes, R3 work-queue stream, file storage),
 * in one run on this machine, asking both the same questions:
 *
 * 1. acknowledged enqueues/s with 1 and 256 in flight (an ack means: committed by the cluster);
 * 2. claim + ack/s draining the backlog;
 * 3. failover: under continuous enqueues (16 in flight), kill -9 the leader and time until an
 *    enqueue started after the kill is acknowledged; repeated (the node restarts in between);
 * 4. integrity: every acknowledged enqueue delivered exactly once (lost / duplicated = 0).
 *
 * Plus, in-process: a one-node Raft group against the embedded queue (the single-node default).
 *
 *   node bench/queue.ts [--json] [--skip-nats] [--skip-single] [--failover-runs 5] [--logs <dir>]
 */
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import type { JobQueue } from '../src/queue/index.ts';
import { openEmbeddedQueue } from '../src/queue/index.ts';
import { openRaftQueueNode, RaftQueueClient } from '../src/queue/raft/index.ts';
import {
  createLedger,
  drainAndCheck,
  type EnqueueLedger,
  runEnqueueLoad,
} from '../test/queue/fixtures/raft-load.ts';
import { type ProcessCluster, startProcessCluster } from '../test/queue/fixtures/raft-process-cluster.ts';
import { startNatsCluster } from '../test/support/nats-cluster.ts';
import { median, percentile } from '../test/support/stats.ts';
import { sleep, waitFor } from '../test/support/wait-for.ts';
import {
  benchNatsAdapterFailover,
  benchNatsQueue,
  type NatsAdapterFailoverResult,
  type NatsQueueBenchResult,
} from './queue-nats.ts';

const { values } = parseArgs({
  options: {
    json: { type: 'boolean', default: false },
    'skip-nats': { type: 'boolean', default: false },
    'skip-single': { type: 'boolean', default: false },
    'failover-runs': { type: 'string', default: '5' },
    'publish-seconds': { type: 'string', default: '4' },
    /** Keep the Raft nodes' data and logs in this directory (for post-mortems). */
    logs: { type: 'string' },
  },
});
const failoverRuns = Number(values['failover-runs']);
/** Concurrent claim→ack loops (NATS prefetches 1024 messages per pull and acks without waiting). */
const CLAIM_WORKERS = 256;
const publishSeconds = Number(values['publish-seconds']);
const log = (line: string) => console.error(line);

interface PublishFigure {
  inFlight: number;
  acked: number;
  perSecond: number;
  latencyP50Ms: number;
  latencyP99Ms: number;
}

interface FailoverRun {
  killed: string;
  successor: string;
  resumeMs: number | null;
}

interface RaftBenchResult {
  /** Leader elections not caused by a kill (term changes during the throughput phases). */
  unplannedElections: number;
  publish: PublishFigure[];
  claim: { claimed: number; seconds: number; perSecond: number };
  failover: { runs: FailoverRun[]; medianMs: number | null; minMs: number | null; maxMs: number | null };
  integrity: {
    acknowledged: number;
    consumed: number;
    lost: number;
    duplicated: number;
    unacknowledged: number;
  };
  totalSeconds: number;
}

async function measurePublish(
  queue: JobQueue,
  ledger: EnqueueLedger,
  inFlight: number,
  prefix: string,
): Promise<PublishFigure> {
  const warmUntil = performance.now() + 500;
  await runEnqueueLoad(queue, ledger, {
    inFlight,
    prefix: `${prefix}-warm`,
    shouldStop: () => performance.now() > warmUntil,
  });
  const startedAt = performance.now();
  const latencies = await runEnqueueLoad(queue, ledger, {
    inFlight,
    prefix,
    shouldStop: () => performance.now() - startedAt > publishSeconds * 1000,
  });
  const seconds = (performance.now() - startedAt) / 1000;
  latencies.sort((a, b) => a - b);
  return {
    inFlight,
    acked: latencies.length,
    perSecond: Math.round(latencies.length / seconds),
    latencyP50Ms: percentile(latencies, 0.5),
    latencyP99Ms: percentile(latencies, 0.99),
  };
}

async function claimAndAck(
  queue: JobQueue,
  deliveries: Map<string, number>,
  limitMs: number,
): Promise<{ claimed: number; seconds: number; perSecond: number }> {
  const startedAt = performance.now();
  let claimed = 0;
  let empty = false;
  await Promise.all(
    Array.from({ length: CLAIM_WORKERS }, async () => {
      while (!empty && performance.now() - startedAt < limitMs) {
        const job = await queue.claim({ consumer: 'bench', leaseMs: 60_000 });
        if (job === undefined) {
          empty = true;
          return;
        }
        deliveries.set(job.id, (deliveries.get(job.id) ?? 0) + 1);
        await queue.ack(job.id, job.leaseId, { bytesOut: 1234 });
        claimed++;
      }
    }),
  );
  const seconds = (performance.now() - startedAt) / 1000;
  return { claimed, seconds, perSecond: Math.round(claimed / seconds) };
}

async function caughtUp(cluster: ProcessCluster): Promise<void> {
  await waitFor(
    async () => {
      const statuses = await Promise.all(cluster.ids.map((id) => cluster.status(id)));
      const leader = statuses.find((status) => status.role === 'leader');
      return leader !== undefined && statuses.every((status) => status.applied >= leader.commit);
    },
    { timeoutMs: 60_000, intervalMs: 100, message: 'every node to catch up with the leader' },
  );
}

async function failoverRun(
  cluster: ProcessCluster,
  client: RaftQueueClient,
  ledger: EnqueueLedger,
  run: number,
): Promise<FailoverRun> {
  const leader = await cluster.leader();
  let stop = false;
  let killedAt = Number.POSITIVE_INFINITY;
  let resumedAt: number | null = null;
  const load = runEnqueueLoad(client, ledger, {
    inFlight: 16,
    prefix: `failover${run}`,
    shouldStop: () => stop,
    observe(startedAt, finishedAt, ok) {
      if (ok && startedAt >= killedAt && resumedAt === null) resumedAt = finishedAt;
    },
  });
  await sleep(1000); // steady state first
  killedAt = performance.now();
  await cluster.kill(leader);
  const deadline = killedAt + 30_000;
  while (resumedAt === null && performance.now() < deadline) await sleep(10);
  await sleep(500); // keep enqueueing across the new leader for a moment
  stop = true;
  await load;
  const successor = await cluster.leader({ exclude: leader }).catch(() => '?');
  const resumeMs = resumedAt === null ? null : (resumedAt as number) - killedAt;
  log(
    `  failover: killed ${leader}, new leader ${successor}, resumed after ${resumeMs === null ? 'never' : `${(resumeMs / 1000).toFixed(3)} s`}`,
  );
  await cluster.start(leader);
  await caughtUp(cluster);
  return { killed: leader, successor, resumeMs };
}

async function benchRaftQueue(): Promise<RaftBenchResult> {
  const startedAt = performance.now();
  const logs = values.logs;
  if (logs !== undefined) await mkdir(logs, { recursive: true });
  const cluster = await startProcessCluster({
    size: 3,
    ...(logs === undefined
      ? {}
      : { directory: { path: logs, remove: async () => {}, [Symbol.asyncDispose]: async () => {} } }),
  });
  log(`raft: 3 node processes, client ports ${cluster.clientAddresses.join(', ')}`);
  const client = new RaftQueueClient({ nodes: cluster.clientAddresses, attemptTimeoutMs: 1000 });
  try {
    const firstLeader = await cluster.leader();
    const termAtStart = (await cluster.status(firstLeader)).term;
    const ledger = createLedger();
    const deliveries = new Map<string, number>();
    const publish: PublishFigure[] = [];
    for (const inFlight of [1, 256]) {
      const figure = await measurePublish(client, ledger, inFlight, `publish${inFlight}`);
      publish.push(figure);
      log(`  enqueue, ${inFlight} in flight: ${figure.perSecond} acked/s`);
    }
    const claim = await claimAndAck(client, deliveries, 15_000);
    log(`  claim+ack: ${claim.perSecond}/s (${claim.claimed} claimed)`);
    const unplannedElections = (await cluster.status(await cluster.leader())).term - termAtStart;
    if (unplannedElections > 0)
      log(`  note: ${unplannedElections} leader election(s) during the load phases`);
    const runs: FailoverRun[] = [];
    for (let run = 0; run < failoverRuns; run++) runs.push(await failoverRun(cluster, client, ledger, run));
    const resumes = runs.flatMap((run) => (run.resumeMs === null ? [] : [run.resumeMs]));
    const drained = await drainAndCheck(client, ledger, { deliveries, timeoutMs: 120_000 });
    let duplicated = 0;
    for (const count of deliveries.values()) if (count > 1) duplicated++;
    return {
      unplannedElections,
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
        consumed: drained.consumed,
        lost: drained.lost,
        duplicated,
        unacknowledged: ledger.unacknowledged.size,
      },
      totalSeconds: (performance.now() - startedAt) / 1000,
    };
  } finally {
    await client.close();
    await cluster.close();
  }
}

interface SingleNodeFigures {
  engine: string;
  enqueueSerial: number;
  enqueue256: number;
  claimAck64: number;
}

/** The single-node default question: a one-node Raft group against the embedded queue, in-process. */
async function benchSingleNode(): Promise<SingleNodeFigures[]> {
  const figures: SingleNodeFigures[] = [];
  const measure = async (engine: string, queue: JobQueue) => {
    const payload = (index: number) => ({ source: `http://10.0.0.7:8080/inputs/${index}`, width: 320 });
    let started = performance.now();
    for (let index = 0; index < 1000; index++) {
      await queue.enqueue({ id: `s${index}`, account: 'a', payload: payload(index) });
    }
    const enqueueSerial = Math.round(1000 / ((performance.now() - started) / 1000));
    let next = 0;
    started = performance.now();
    await Promise.all(
      Array.from({ length: 256 }, async () => {
        while (next < 20_000) {
          const index = next++;
          await queue.enqueue({ id: `p${index}`, account: `a${index % 100}`, payload: payload(index) });
        }
      }),
    );
    const enqueue256 = Math.round(20_000 / ((performance.now() - started) / 1000));
    next = 0;
    started = performance.now();
    await Promise.all(
      Array.from({ length: 64 }, async () => {
        while (next < 15_000) {
          next++;
          const job = (await queue.claim({ consumer: 'bench', leaseMs: 60_000 }))!;
          await queue.ack(job.id, job.leaseId);
        }
      }),
    );
    const claimAck64 = Math.round(15_000 / ((performance.now() - started) / 1000));
    figures.push({ engine, enqueueSerial, enqueue256, claimAck64 });
    log(
      `  ${engine}: ${enqueueSerial} serial enqueues/s, ${enqueue256} at 256 in flight, ${claimAck64} claim+ack/s`,
    );
  };
  const directory = await mkdtemp(join(tmpdir(), 'pixelfleet-bench-single-'));
  try {
    const embedded = await openEmbeddedQueue({ dataDir: join(directory, 'embedded') });
    await measure('embedded queue', embedded);
    await embedded.close();
    const node = await openRaftQueueNode({
      id: 'n1',
      listen: { host: '127.0.0.1', port: 0 },
      peers: {},
      dataDir: join(directory, 'raft'),
      clusterSecret: 'pixelfleet-bench-single-node-secret',
    });
    await measure('one-node Raft group', node.queue);
    await node.close();
  } finally {
    await rm(directory, { recursive: true, force: true });
  }
  return figures;
}

function formatReport(
  raft: RaftBenchResult,
  nats: NatsQueueBenchResult | undefined,
  adapter: NatsAdapterFailoverResult | undefined,
  single: SingleNodeFigures[],
): string {
  const seconds = (ms: number | null | undefined) =>
    ms === null || ms === undefined ? 'n/a' : `${(ms / 1000).toFixed(2)} s`;
  const publishCell = (
    figure: { perSecond: number; latencyP50Ms: number; latencyP99Ms: number } | undefined,
  ) =>
    figure === undefined
      ? 'n/a'
      : `${figure.perSecond} (p50 ${figure.latencyP50Ms.toFixed(1)} ms, p99 ${figure.latencyP99Ms.toFixed(1)} ms)`;
  const rows: Array<[string, string, string]> = [];
  for (const figure of raft.publish) {
    rows.push([
      `acknowledged enqueues/s, ${figure.inFlight} in flight`,
      publishCell(figure),
      publishCell(nats?.publish.find((candidate) => candidate.inFlight === figure.inFlight)),
    ]);
  }
  rows.push([
    'claim+ack/s',
    `${raft.claim.perSecond} (${raft.claim.claimed} claimed, ${CLAIM_WORKERS} workers, each ack awaited)`,
    nats
      ? `${nats.claim.perSecond} (${nats.claim.claimed} claimed, pull batches of 1024, acks not awaited)`
      : 'n/a',
  ]);
  rows.push([
    `failover after kill -9 of the leader: median / max (${raft.failover.runs.length} runs)`,
    `${seconds(raft.failover.medianMs)} / ${seconds(raft.failover.maxMs)}`,
    nats ? `${seconds(nats.failover.medianMs)} / ${seconds(nats.failover.maxMs)}` : 'n/a',
  ]);
  rows.push([
    '  each run',
    raft.failover.runs.map((run) => seconds(run.resumeMs)).join(', '),
    nats ? nats.failover.runs.map((run) => seconds(run.resumeMs)).join(', ') : 'n/a',
  ]);
  rows.push([
    'failover as a Pixelfleet client sees it (RaftQueueClient / NatsJobQueue): median / max',
    `${seconds(raft.failover.medianMs)} / ${seconds(raft.failover.maxMs)}`,
    adapter
      ? `${seconds(adapter.medianMs)} / ${seconds(adapter.maxMs)} (${adapter.runs.map((run) => seconds(run.resumeMs)).join(', ')}); lost ${adapter.integrity.lost} of ${adapter.integrity.acknowledged}, delivered twice ${adapter.integrity.deliveredTwice}`
      : 'n/a',
  ]);
  rows.push([
    'acknowledged enqueues checked',
    String(raft.integrity.acknowledged),
    nats ? String(nats.integrity.acknowledged) : 'n/a',
  ]);
  rows.push([
    'lost / duplicated',
    `${raft.integrity.lost} / ${raft.integrity.duplicated}`,
    nats ? `${nats.integrity.lost} / ${nats.integrity.duplicates}` : 'n/a',
  ]);
  rows.push([
    'gave up (never acknowledged)',
    String(raft.integrity.unacknowledged),
    nats ? String(nats.integrity.unacknowledged) : 'n/a',
  ]);
  rows.push(['leader elections during the load phases (no kill)', String(raft.unplannedElections), 'n/a']);
  rows.push([
    'phase wall time',
    `${raft.totalSeconds.toFixed(1)} s`,
    nats ? `${nats.totalSeconds.toFixed(1)} s` : 'n/a',
  ]);
  const natsHeader = nats ? `NATS JetStream ${nats.serverVersion} (3 nodes, R3, file)` : 'NATS JetStream';
  const lines = [
    `| | Pixelfleet Raft queue (3 processes) | ${natsHeader} |`,
    '|---|---|---|',
    ...rows.map(([label, ours, theirs]) => `| ${label} | ${ours} | ${theirs} |`),
  ];
  if (single.length > 0) {
    lines.push(
      '',
      '| single node, in-process | enqueues/s, 1 in flight | enqueues/s, 256 in flight | claim+ack/s, 64 workers |',
      '|---|---|---|---|',
      ...single.map(
        (figure) =>
          `| ${figure.engine} | ${figure.enqueueSerial} | ${figure.enqueue256} | ${figure.claimAck64} |`,
      ),
    );
  }
  return lines.join('\n');
}

const benchStartedAt = performance.now();
log('== Raft queue, 3 processes ==');
const raft = await benchRaftQueue();
let nats: NatsQueueBenchResult | undefined;
let adapter: NatsAdapterFailoverResult | undefined;
if (!values['skip-nats']) {
  log('== NATS JetStream, 3 servers ==');
  const natsCluster = await startNatsCluster({ nodes: 3, jetstream: true });
  try {
    nats = await benchNatsQueue({ cluster: natsCluster, log, publishSeconds, failoverRuns });
    log('== NATS JetStream through the Pixelfleet adapter (NatsJobQueue) ==');
    adapter = await benchNatsAdapterFailover(natsCluster, { runs: failoverRuns, log });
  } finally {
    await natsCluster.stop();
  }
}
let single: SingleNodeFigures[] = [];
if (!values['skip-single']) {
  log('== single node: one-node Raft group vs embedded queue ==');
  single = await benchSingleNode();
}
log(`total ${((performance.now() - benchStartedAt) / 1000).toFixed(1)} s`);
console.log(
  values.json
    ? JSON.stringify({ raft, nats, adapter, single }, null, 2)
    : formatReport(raft, nats, adapter, single),
);
