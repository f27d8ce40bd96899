/**
 * Durability of usage records against real crashes: a child process records usage and is killed
 * with SIGKILL mid-stream (twice, the second time while resubmitting the first run's ids); every
 * id it printed after `record` resolved must be counted exactly once, and the segments must hold
 * every counted record once.
 */
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { after, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { listSegments, openUsageMeter, readSegment, type UsageRecord } from '../../src/usage/index.ts';
import { tempDir } from '../support/index.ts';

const repository = fileURLToPath(new URL('../../', import.meta.url));
const node = join(repository, 'node_modules/.bin/node');
const recorder = fileURLToPath(new URL('./fixtures/usage-recorder.ts', import.meta.url));

const children = new Set<ChildProcess>();
after(() => {
  for (const child of children) child.kill('SIGKILL');
});

/**
 * Runs the recorder until `enough(lines)` holds, then kills it with SIGKILL; returns every line it
 * printed before it died (including those still in the pipe when the kill was sent).
 */
async function recordUntilKilled(
  args: string[],
  enough: (counts: VerdictCounts) => boolean,
): Promise<string[]> {
  const child = spawn(node, [recorder, ...args], { stdio: ['ignore', 'pipe', 'inherit'] });
  children.add(child);
  const exited = new Promise<NodeJS.Signals | null>((resolve) =>
    child.once('exit', (_code, signal) => resolve(signal)),
  );
  const lines: string[] = [];
  const counts: VerdictCounts = new Map();
  const output = createInterface({ input: child.stdout! });
  const drained = new Promise<void>((resolve) => output.once('close', resolve));
  const timer = setTimeout(() => child.kill('SIGKILL'), 45_000);
  output.on('line', (line) => {
    lines.push(line);
    const verdict = line.slice(0, line.indexOf(' '));
    counts.set(verdict, (counts.get(verdict) ?? 0) + 1);
    if (!child.killed && enough(counts)) child.kill('SIGKILL');
  });
  const signal = await exited;
  await drained;
  clearTimeout(timer);
  children.delete(child);
  assert.ok(enough(counts), `the recorder ended (${signal}) after only ${lines.length} lines`);
  assert.equal(signal, 'SIGKILL');
  return lines;
}

/** Lines printed per verdict ("recorded", "duplicate", ...). */
type VerdictCounts = Map<string, number>;

function idsWith(lines: string[], verdict: string): string[] {
  return lines.filter((line) => line.startsWith(`${verdict} `)).map((line) => line.slice(verdict.length + 1));
}

test('usage - every record acknowledged before kill -9 is counted exactly once', {
  timeout: 60_000,
}, async (t) => {
  const directory = await tempDir(t);
  const dataDir = join(directory.path, 'data');

  // First run: small segments and frequent flushes put rotations, seals and store commits in
  // the kill window.
  const firstRun = await recordUntilKilled(
    [dataDir, 'first', '25', '32768'],
    (counts) => (counts.get('recorded') ?? 0) >= 2_500,
  );
  const firstIds = idsWith(firstRun, 'recorded');
  assert.ok(firstIds.length >= 2_500);
  const resubmitFile = join(directory.path, 'resubmit.txt');
  await writeFile(resubmitFile, `${firstIds.join('\n')}\n`);

  // The second run recovers the first one's segments, then resubmits every acknowledged id while
  // recording new ones, and is killed partway through. It never flushes on its own (one large
  // segment, hourly flushes), so its records reach the store only by replay on the next open.
  const secondRun = await recordUntilKilled(
    [dataDir, 'second', '3600000', String(64 * 1024 * 1024), resubmitFile],
    (counts) => (counts.get('duplicate') ?? 0) >= 1_000 && (counts.get('recorded') ?? 0) >= 1_000,
  );
  assert.deepEqual(idsWith([...firstRun, ...secondRun], 'counted-again'), [], 'an id was counted twice');
  const acknowledged = [...firstIds, ...idsWith(secondRun, 'recorded')];

  const meter = await openUsageMeter({ dataDir });
  const reports = [];
  try {
    const { recovery } = meter.stats;
    t.diagnostic(`recovery after the second kill: ${JSON.stringify(recovery)}`);
    assert.equal(recovery.unsealedSegments, 1);
    assert.ok(recovery.recoveredRecords >= idsWith(secondRun, 'recorded').length, JSON.stringify(recovery));
    for (const id of acknowledged) {
      assert.deepEqual(
        await meter.record({ ...sampleRecord, recordId: id }),
        { duplicate: true },
        `${id} was lost`,
      );
    }
    for (let account = 0; account < 4; account++) {
      reports.push(
        await meter.usageFor(`acct-${account}`, {
          fromMs: 0,
          toMs: Date.now() + 86_400_000,
          granularity: 'month',
        }),
      );
    }
  } finally {
    await meter.close();
  }

  // Every segment is sealed after a clean close, and together they hold each counted id once.
  const written: UsageRecord[] = [];
  for (const segment of await listSegments(join(dataDir, 'usage', 'segments'))) {
    assert.ok(segment.sealed, `${segment.name} sealed`);
    for await (const record of readSegment(segment.path)) written.push(record);
  }
  const writtenIds = new Set(written.map((record) => record.recordId));
  assert.equal(writtenIds.size, written.length, 'a record id appears twice in the segments');
  for (const id of acknowledged) assert.ok(writtenIds.has(id), `${id} missing from the segments`);
  // Records may be durable without their line having reached the parent (the child's stdout
  // queue dies with it); those are counted once too, which the comparison below checks.
  // The aggregates equal the segments, record for record: nothing counted twice or dropped.
  for (let account = 0; account < 4; account++) {
    const mine = written.filter((record) => record.accountId === `acct-${account}`);
    assert.equal(reports[account]!.totals.conversions, mine.length);
    assert.equal(
      reports[account]!.totals.cpuMicros,
      mine.reduce((sum, record) => sum + record.cpuMicros, 0),
    );
    assert.ok(
      mine.every((record) => record.cpuMicros !== 999_999),
      'a resubmission replaced the first submission',
    );
  }
  t.diagnostic(`${acknowledged.length} acknowledged, ${written.length} in segments`);
});

const sampleRecord: UsageRecord = {
  recordId: 'placeholder',
  accountId: 'acct-0',
  keyId: 'key-0',
  tier: 'pro',
  bytesIn: 1,
  bytesOut: 1,
  pixelsIn: 1,
  pixelsOut: 1,
  cpuMicros: 999_999,
  inputFormat: 'jpeg',
  outputFormat: 'webp',
  startedAt: 0,
  finishedAt: 0,
};
