import assert from 'node:assert/strict';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, test } from 'node:test';
import { Registry } from 'prom-client';
import { isPixelfleetError } from '../../../src/errors/index.ts';
import {
  type CallContext,
  createRemoteMetrics,
  deadlineHeader,
  errorFromResponse,
  RemotePolicy,
  type RemotePolicyOptions,
  RetryBudget,
} from '../../../src/resilience/remote/index.ts';

/**
 * A real HTTP dependency that misbehaves on command:
 *   /ok                          200
 *   /fail?key=k&times=n&code=C   first n requests of key k answer 503 problem+json with code C, then 200
 *   /status?code=500             that status
 *   /stall?ms=n                  answers after n ms
 * and counts how many requests of each key reached it.
 */
const received = new Map<string, number>();
const deadlinesSeen: string[] = [];
let server: Server;
let base: string;

function handle(request: IncomingMessage, response: ServerResponse): void {
  const url = new URL(request.url ?? '/', 'http://x');
  const key = url.searchParams.get('key') ?? url.pathname;
  received.set(key, (received.get(key) ?? 0) + 1);
  const deadline = request.headers[deadlineHeader];
  if (typeof deadline === 'string') deadlinesSeen.push(deadline);
  const problem = (status: number, code: string) => {
    response.writeHead(status, { 'content-type': 'application/problem+json' });
    response.end(JSON.stringify({ status, code, detail: `${code} on command` }));
  };
  switch (url.pathname) {
    case '/ok':
      response.end('ok');
      return;
    case '/fail': {
      const times = Number(url.searchParams.get('times') ?? Number.POSITIVE_INFINITY);
      if ((received.get(key) ?? 0) <= times)
        problem(503, url.searchParams.get('code') ?? 'PF_ERR_QUEUE_UNAVAILABLE');
      else response.end('recovered');
      return;
    }
    case '/status':
      problem(Number(url.searchParams.get('code')), 'PF_ERR_INTERNAL');
      return;
    case '/stall':
      setTimeout(() => response.end('late'), Number(url.searchParams.get('ms'))).unref();
      return;
    default:
      problem(404, 'PF_ERR_NOT_FOUND');
  }
}

before(async () => {
  server = createServer(handle);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

after(async () => {
  server.closeAllConnections();
  await new Promise<void>((resolve) => server.close(() => resolve()));
});

/** The way role code calls a dependency: fetch with the attempt's signal and deadline header. */
function get(path: string, method = 'GET') {
  return async (context: CallContext): Promise<string> => {
    const response = await fetch(`${base}${path}`, {
      method,
      signal: context.signal,
      headers: context.headers,
    });
    const text = await response.text();
    if (!response.ok) throw errorFromResponse('test-dependency', response.status, JSON.parse(text));
    return text;
  };
}

function policy(options: Partial<RemotePolicyOptions> = {}): RemotePolicy {
  return new RemotePolicy({
    dependency: 'test-dependency',
    backoff: { initialDelayMs: 5, maxDelayMs: 20 },
    timeout: { initialMs: 2000 },
    ...options,
  });
}

test('remote policy - retries an idempotent call through transient failures', async () => {
  const result = await policy().execute(get('/fail?key=idem&times=2'), { idempotent: true });
  assert.equal(result, 'recovered');
  assert.equal(received.get('idem'), 3);
});

test('remote policy - does not retry a non-idempotent call once the request reached the server', async () => {
  await assert.rejects(policy().execute(get('/fail?key=post&times=2', 'POST')), (error) =>
    isPixelfleetError(error, 'PF_ERR_QUEUE_UNAVAILABLE'),
  );
  assert.equal(received.get('post'), 1);
});

test('remote policy - retries a non-idempotent call the server refused at admission', async () => {
  const result = await policy().execute(get('/fail?key=shed&times=1&code=PF_ERR_OVERLOADED', 'POST'));
  assert.equal(result, 'recovered');
  assert.equal(received.get('shed'), 2);
});

test('remote policy - retries a non-idempotent call whose connection was refused', async () => {
  const closed = createServer();
  await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
  const port = (closed.address() as AddressInfo).port;
  await new Promise<void>((resolve) => closed.close(() => resolve()));
  const attempts: number[] = [];
  await assert.rejects(
    policy({ maxAttempts: 3 }).execute(async (context) => {
      attempts.push(context.attempt);
      await fetch(`http://127.0.0.1:${port}/`, { method: 'POST', signal: context.signal });
    }),
    (error: Error) => (error.cause as { code?: string }).code === 'ECONNREFUSED',
  );
  assert.deepEqual(attempts, [1, 2, 3]);
});

test('remote policy - does not retry permanent errors', async () => {
  await assert.rejects(policy().execute(get('/nowhere?key=missing'), { idempotent: true }), (error) =>
    isPixelfleetError(error, 'PF_ERR_NOT_FOUND'),
  );
  assert.equal(received.get('missing'), 1);
});

test('remote policy - a stalled dependency times out per attempt; only idempotent calls are retried', async () => {
  const stalled = policy({ timeout: { initialMs: 100 }, maxAttempts: 2 });
  const started = performance.now();
  await assert.rejects(stalled.execute(get('/stall?key=stall-get&ms=3000'), { idempotent: true }), (error) =>
    isPixelfleetError(error, 'PF_ERR_REMOTE_TIMEOUT'),
  );
  assert.equal(received.get('stall-get'), 2);
  assert.ok(performance.now() - started < 2500, 'did not wait for the stalled answers');
  await assert.rejects(stalled.execute(get('/stall?key=stall-post&ms=3000', 'POST')), (error) =>
    isPixelfleetError(error, 'PF_ERR_REMOTE_TIMEOUT'),
  );
  assert.equal(received.get('stall-post'), 1);
});

test('remote policy - the timeout follows observed latency', async () => {
  const adaptive = policy({ timeout: { initialMs: 5000, minMs: 50, minSamples: 5 } });
  for (let i = 0; i < 5; i++) await adaptive.execute(get('/ok'));
  const tuned = adaptive.timeout.timeoutMs();
  assert.ok(tuned >= 50 && tuned < 5000, `timeout ${tuned} ms`);
  await assert.rejects(adaptive.execute(get('/stall?key=adaptive&ms=3000'), { idempotent: false }), (error) =>
    isPixelfleetError(error, 'PF_ERR_REMOTE_TIMEOUT'),
  );
});

test('remote policy - the deadline caps attempts, is forwarded, and is reported as PF_ERR_DEADLINE_EXCEEDED', async () => {
  deadlinesSeen.length = 0;
  const started = Date.now();
  await assert.rejects(
    policy().execute(get('/stall?key=deadline&ms=3000'), { idempotent: true, deadlineAt: started + 200 }),
    (error) => isPixelfleetError(error, 'PF_ERR_DEADLINE_EXCEEDED'),
  );
  const elapsed = Date.now() - started;
  assert.ok(elapsed >= 190 && elapsed < 1500, `settled after ${elapsed} ms`);
  assert.equal(received.get('deadline'), 1);
  const forwarded = Number(deadlinesSeen[0]);
  assert.ok(forwarded > 0 && forwarded <= 200, `forwarded ${deadlinesSeen[0]}`);
  // Retries stop when the next backoff would pass the deadline.
  const spaced = policy({
    maxAttempts: 50,
    backoff: { initialDelayMs: 100, maxDelayMs: 100, jitter: 'none' },
  });
  await assert.rejects(
    spaced.execute(get('/fail?key=deadline-retries'), { idempotent: true, deadlineAt: Date.now() + 350 }),
    (error) => isPixelfleetError(error, 'PF_ERR_QUEUE_UNAVAILABLE'),
  );
  const attempts = received.get('deadline-retries') ?? 0;
  assert.ok(attempts >= 2 && attempts <= 4, `${attempts} attempts`);
  await assert.rejects(policy().execute(get('/ok'), { deadlineAt: Date.now() - 1 }), (error) =>
    isPixelfleetError(error, 'PF_ERR_DEADLINE_EXCEEDED'),
  );
});

test('remote policy - the breaker opens after errors, fails fast, and recovers through a probe', async () => {
  const registry = new Registry();
  const metrics = createRemoteMetrics(registry);
  const guarded = policy({
    dependency: 'breaker-dependency',
    maxAttempts: 1,
    breaker: { minimumRequests: 4, errorRatio: 0.5, openMs: 300 },
    metrics,
  });
  for (let i = 0; i < 4; i++) {
    await assert.rejects(guarded.execute(get('/status?code=500&key=broken')), (error) =>
      isPixelfleetError(error, 'PF_ERR_INTERNAL'),
    );
  }
  assert.equal(guarded.breaker?.state, 'open');
  await assert.rejects(guarded.execute(get('/ok?key=while-open')), (error) =>
    isPixelfleetError(error, 'PF_ERR_CIRCUIT_OPEN'),
  );
  assert.equal(received.get('while-open'), undefined, 'an open breaker does not call the dependency');
  await new Promise((resolve) => setTimeout(resolve, 320));
  assert.equal(guarded.breaker?.state, 'half-open');
  assert.equal(await guarded.execute(get('/ok')), 'ok');
  assert.equal(guarded.breaker?.state, 'closed');

  const text = await registry.metrics();
  assert.match(text, /pixelfleet_remote_calls_total\{dependency="breaker-dependency",outcome="failure"\} 4/);
  assert.match(
    text,
    /pixelfleet_remote_calls_total\{dependency="breaker-dependency",outcome="circuit_open"\} 1/,
  );
  assert.match(
    text,
    /pixelfleet_circuit_breaker_transitions_total\{dependency="breaker-dependency",to="open"\} 1/,
  );
  assert.match(
    text,
    /pixelfleet_circuit_breaker_transitions_total\{dependency="breaker-dependency",to="closed"\} 1/,
  );
  assert.match(text, /pixelfleet_circuit_breaker_state\{dependency="breaker-dependency"\} 0/);
  assert.match(text, /pixelfleet_remote_call_seconds_count\{dependency="breaker-dependency"\} 5/);
  assert.equal(createRemoteMetrics(registry).calls, metrics.calls, 'one registry, one set of metrics');
});

test('remote policy - 4xx answers do not count against the breaker', async () => {
  const guarded = policy({ maxAttempts: 1, breaker: { minimumRequests: 2 } });
  for (let i = 0; i < 5; i++) {
    await assert.rejects(guarded.execute(get('/nowhere')), (error) =>
      isPixelfleetError(error, 'PF_ERR_NOT_FOUND'),
    );
  }
  assert.equal(guarded.breaker?.state, 'closed');
});

test('remote policy - the retry budget stops a retry storm', async () => {
  const registry = new Registry();
  const budget = new RetryBudget({ ratio: 0.2, minRetriesPerSecond: 0 });
  const stormy = policy({
    dependency: 'storm',
    maxAttempts: 3,
    breaker: false,
    retryBudget: budget,
    metrics: createRemoteMetrics(registry),
  });
  for (let i = 0; i < 10; i++) {
    await assert.rejects(stormy.execute(get('/fail?key=storm'), { idempotent: true }));
  }
  // 10 calls × 3 attempts would be 30 requests; the budget allows 20 % extra, and each call
  // ends with one refused retry.
  assert.equal(received.get('storm'), 12);
  assert.deepEqual(budget.snapshot(), { requests: 10, retries: 2 });
  assert.match(await registry.metrics(), /pixelfleet_retry_budget_exhausted_total\{dependency="storm"\} 10/);
});

test('remote policy - the bulkhead rejects excess calls and the caller can cancel', async () => {
  const crowded = policy({ bulkhead: { maxConcurrent: 1 }, timeout: { initialMs: 5000 } });
  const controller = new AbortController();
  const slow = crowded.execute(get('/stall?key=bulkhead&ms=3000'), { signal: controller.signal });
  await assert.rejects(crowded.execute(get('/ok')), (error) =>
    isPixelfleetError(error, 'PF_ERR_BULKHEAD_FULL'),
  );
  controller.abort(new Error('caller cancelled'));
  await assert.rejects(slow, /caller cancelled/);
  assert.equal(crowded.bulkhead?.active, 0);
  assert.deepEqual(
    crowded.breaker?.snapshot(),
    { state: 'closed', requests: 0, failures: 0 },
    'cancel is neither',
  );
  assert.equal(await crowded.execute(get('/ok')), 'ok');
});

test('remote policy - bad options are RangeErrors', () => {
  assert.throws(() => new RemotePolicy({ dependency: '' }), RangeError);
  assert.throws(() => new RemotePolicy({ dependency: 'x', maxAttempts: 0 }), RangeError);
  assert.throws(() => new RemotePolicy({ dependency: 'x', breaker: { errorRatio: 2 } }), RangeError);
});
