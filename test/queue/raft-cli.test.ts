/**
 * `pixelfleet queue` argument handling (the running node is exercised by the process tests).
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { runQueueCommand } from '../../src/cli/queue.ts';

async function quietly(run: () => Promise<number>): Promise<{ code: number; output: string }> {
  const lines: string[] = [];
  const { log, error } = console;
  console.log = (...args: unknown[]) => lines.push(args.join(' '));
  console.error = (...args: unknown[]) => lines.push(args.join(' '));
  try {
    return { code: await run(), output: lines.join('\n') };
  } finally {
    console.log = log;
    console.error = error;
  }
}

const base = ['--id', 'n1', '--peers', 'n1=127.0.0.1:7001,n2=127.0.0.1:7002', '--data-dir', '/tmp/unused'];

test('queue cli - --help prints the usage and exits 0', async () => {
  const { code, output } = await quietly(() => runQueueCommand(['--help'], {}));
  assert.equal(code, 0);
  assert.match(output, /Usage: pixelfleet queue/);
});

test('queue cli - rejects bad arguments with exit code 2 and says which', async () => {
  const cases: Array<[string[], NodeJS.ProcessEnv, RegExp]> = [
    [['--peers', 'n1=127.0.0.1:7001', '--data-dir', '/tmp/x'], {}, /--id is required/],
    [
      ['--id', 'n3', ...base.slice(2)],
      { PIXELFLEET_CLUSTER_SECRET: 'x'.repeat(20) },
      /must include this node \(n3\)/,
    ],
    [base, {}, /--cluster-secret \(or PIXELFLEET_CLUSTER_SECRET\) is required/],
    [['--id', 'n1', '--peers', 'n1=nowhere', '--data-dir', '/tmp/x'], {}, /host:port/],
    [[...base, '--client-port', 'many'], { PIXELFLEET_CLUSTER_SECRET: 'x'.repeat(20) }, /--client-port/],
    [[...base, '--bogus'], {}, /bogus/],
  ];
  for (const [argv, env, message] of cases) {
    const { code, output } = await quietly(() => runQueueCommand(argv, env));
    assert.equal(code, 2, argv.join(' '));
    assert.match(output, message);
  }
});
