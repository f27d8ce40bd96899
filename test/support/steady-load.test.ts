import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { test } from 'node:test';
import { faultReport, type LoadSample, runSteadyLoad } from './steady-load.ts';

function sample(index: number, startedAt: number, ok: boolean, latencyMs = 10): LoadSample {
  return { index, startedAt, latencyMs, status: ok ? 200 : 503, ok, headers: {} };
}

test('support - fault report: yield, recovery and p99 around the fault', () => {
  const samples = [
    ...Array.from({ length: 10 }, (_, index) => sample(index, index * 100, true)),
    sample(10, 1000, false),
    sample(11, 1100, true, 400),
    sample(12, 1200, false),
    ...Array.from({ length: 10 }, (_, index) => sample(13 + index, 1300 + index * 100, true)),
  ];
  const report = faultReport(samples, 1000);
  assert.equal(report.requests, 23);
  assert.equal(report.yield, 21 / 23);
  assert.equal(report.timeToRecoverMs, 300);
  assert.equal(report.p99DuringFaultMs, 400);
  assert.equal(report.p99BeforeFaultMs, 10);
  assert.deepEqual(report.failures, { '503': 2 });
  assert.equal(
    faultReport(
      samples.filter((each) => each.ok),
      1000,
    ).timeToRecoverMs,
    0,
  );
});

test('support - steady load keeps its pace and records failures of a real server', async () => {
  let failing = false;
  const server = createServer((request, response) => {
    request.resume();
    response.statusCode = failing ? 503 : 200;
    response.end('x');
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as import('node:net').AddressInfo;
  try {
    const samples = await runSteadyLoad({
      baseUrl: `http://127.0.0.1:${port}`,
      ratePerSecond: 100,
      durationMs: 1000,
      build: () => ({ method: 'POST', path: '/', body: Buffer.from('hello') }),
      onTick: (elapsed) => {
        failing = elapsed >= 400 && elapsed < 600;
      },
    });
    assert.equal(samples.length, 100);
    const failed = samples.filter((each) => !each.ok).length;
    assert.ok(failed >= 10 && failed <= 30, `failed ${failed}`);
    assert.ok(samples.at(-1)!.startedAt >= 900, 'requests are spread over the duration');
    const report = faultReport(samples, 400);
    assert.ok(report.timeToRecoverMs >= 150 && report.timeToRecoverMs <= 400, `${report.timeToRecoverMs}`);
  } finally {
    server.close();
  }
});
