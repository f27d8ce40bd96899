import assert from 'node:assert/strict';
import { test } from 'node:test';
import { isPixelfleetError, toProblem } from '../../../src/errors/index.ts';
import {
  ConcurrencyLimiter,
  createRateLimiter,
  type Decision,
  FixedWindow,
  formatRateLimitHeaders,
  rateLimitedError,
  TokenBucket,
} from '../../../src/resilience/ratelimit/index.ts';
import { FakeClock } from './support.ts';

function decision(overrides: Partial<Decision>): Decision {
  return {
    allowed: true,
    limit: 100,
    remaining: 42,
    resetMs: 16_200,
    retryAfterMs: 0,
    policy: 'default',
    windowMs: 60_000,
    ...overrides,
  };
}

test('ratelimit headers - one policy renders as the draft examples', () => {
  assert.deepEqual(formatRateLimitHeaders(decision({})), {
    'ratelimit-policy': '"default";q=100;w=60',
    ratelimit: '"default";r=42;t=17',
  });
});

test('ratelimit headers - a refused decision adds Retry-After, rounded up and not before the effective window', () => {
  const headers = formatRateLimitHeaders(
    decision({ allowed: false, remaining: 0, resetMs: 4001, retryAfterMs: 4001 }),
  );
  assert.equal(headers.ratelimit, '"default";r=0;t=5');
  assert.equal(headers['retry-after'], '5');
  const never = formatRateLimitHeaders(decision({ allowed: false, retryAfterMs: Number.POSITIVE_INFINITY }));
  assert.equal(never['retry-after'], undefined);
});

test('ratelimit headers - several policies form one list; Retry-After is the longest wait among the refusals', () => {
  const headers = formatRateLimitHeaders([
    decision({
      policy: 'burst',
      limit: 10,
      windowMs: 1000,
      remaining: 0,
      resetMs: 300,
      allowed: false,
      retryAfterMs: 300,
    }),
    decision({ policy: 'daily', limit: 1000, windowMs: 86_400_000, remaining: 999, resetMs: 3_600_000 }),
  ]);
  assert.equal(headers['ratelimit-policy'], '"burst";q=10;w=1, "daily";q=1000;w=86400');
  assert.equal(headers.ratelimit, '"burst";r=0;t=1, "daily";r=999;t=3600');
  assert.equal(headers['retry-after'], '1');
});

test('ratelimit headers - quota unit, partition key and string escaping', () => {
  const headers = formatRateLimitHeaders(
    decision({ policy: 'say "hi" \\', quotaUnit: 'content-bytes', limit: 65_535, windowMs: 10_000 }),
    { partitionKey: new Uint8Array([1, 2, 3, 250]) },
  );
  assert.equal(
    headers['ratelimit-policy'],
    '"say \\"hi\\" \\\\";q=65535;qu="content-bytes";w=10;pk=:AQID+g==:',
  );
  assert.match(headers.ratelimit, /;pk=:AQID\+g==:$/);
  assert.throws(() => formatRateLimitHeaders(decision({ policy: 'naïve' })), RangeError);
  assert.throws(() => formatRateLimitHeaders([]), RangeError);
});

test('ratelimit headers - real limiters: a token bucket advertises the time to refill it, concurrency has no window', () => {
  const clock = new FakeClock();
  const bucket = createRateLimiter(new TokenBucket({ capacity: 10, refillPerSecond: 3, policy: 'api' }), {
    clock,
  });
  for (let index = 0; index < 10; index += 1) bucket.take('k');
  const refused = bucket.take('k');
  assert.deepEqual(formatRateLimitHeaders(refused), {
    'ratelimit-policy': '"api";q=10;w=4',
    ratelimit: '"api";r=0;t=1',
    'retry-after': '1',
  });
  const jobs = new ConcurrencyLimiter({ maxConcurrent: 1, retryAfterMs: 2500 });
  jobs.acquire('k');
  assert.deepEqual(formatRateLimitHeaders(jobs.acquire('k').decision), {
    'ratelimit-policy': '"concurrency";q=1;qu="concurrent-requests"',
    ratelimit: '"concurrency";r=0',
    'retry-after': '3',
  });
});

test('ratelimit headers - rateLimitedError is a 429 problem naming the violated policies', () => {
  const clock = new FakeClock();
  const limiter = createRateLimiter(new FixedWindow({ limit: 1, windowMs: 60_000, policy: 'minute' }), {
    clock,
  });
  limiter.take('k');
  const error = rateLimitedError([limiter.take('k'), decision({ policy: 'daily' })]);
  assert.ok(isPixelfleetError(error, 'PF_ERR_RATE_LIMITED'));
  const problem = toProblem(error);
  assert.equal(problem.status, 429);
  assert.deepEqual(problem['violated-policies'], ['minute']);
  assert.equal(problem.retryAfterSeconds, 60);
});
