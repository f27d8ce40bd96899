/**
 * `RedisLimiterStore`: the cluster-wide `LimiterStore`. Each step runs as one Lua script on the
 * Redis server that holds the key, so it is atomic per key across every api server, and reads
 * Redis `TIME`, so every api server agrees on "now" whatever its own clock says.
 *
 * Guarantees:
 * - The scripts are ports of the pure steps in the parent folder and decide exactly as they do
 *   (the shared store contract and a property test compare them step by step).
 * - State lives at `<prefix>:<policy>:<key>` and carries the step's expiresAt as its PEXPIREAT,
 *   so idle keys leave Redis exactly when their quota has recovered.
 * - Supported: token bucket, leaky bucket, fixed window, sliding window log (a sorted set) and
 *   sliding window counter. Any other algorithm is refused with PF_ERR_CONFIG naming it — a
 *   configuration mistake, never silently decided in memory.
 * - A Redis failure rejects with PF_ERR_REDIS_UNAVAILABLE; `FallbackLimiterStore` turns that into
 *   a local decision.
 */
import { PixelfleetError } from '../../../errors/index.ts';
import type { Clock, Decision, LimiterAlgorithm, LimiterStore } from '../types.ts';
import { fixedWindowScript } from './fixed-window-script.ts';
import { leakyBucketScript } from './leaky-bucket-script.ts';
import { type RedisCommander, redisUnavailable } from './redis-connection.ts';
import { RedisScript } from './redis-script.ts';
import { slidingWindowCounterScript } from './sliding-window-counter-script.ts';
import { slidingWindowLogScript } from './sliding-window-log-script.ts';
import { tokenBucketScript } from './token-bucket-script.ts';

export interface RedisLimiterStoreOptions {
  /** A node-redis client or pool (see `openRedisConnection`). The store never closes it. */
  redis: RedisCommander;
  /** First part of every key (default `pixelfleet:ratelimit`). */
  prefix?: string;
  /**
   * Tests only: take "now" from this clock instead of Redis `TIME`. Its time need not match the
   * server's, so keys then expire `clockSlackMs` after their logical expiry, counted on the server.
   */
  clock?: Clock;
  /** With `clock`: extra key lifetime (ms) covering real time that passes between steps. Default 60 s. */
  clockSlackMs?: number;
}

interface AlgorithmScript {
  script: RedisScript;
  /** Parameter names, in the order the script reads them from ARGV[4…]. */
  parameters: readonly string[];
  /** The Decision's windowMs, computed exactly as the pure step does. */
  windowMs(parameters: Readonly<Record<string, number>>): number;
  /** The parameter that is the Decision's limit. */
  limit: string;
  /** The script also returns delayMs (leaky bucket). */
  delay: boolean;
}

const bucketWindow = (capacity: string, rate: string) => (parameters: Readonly<Record<string, number>>) =>
  (parameters[capacity]! * 1000) / parameters[rate]!;
const windowOption = (parameters: Readonly<Record<string, number>>) => parameters.windowMs!;

/** Scripts by `LimiterAlgorithm.name`. */
const algorithmScripts: ReadonlyMap<string, AlgorithmScript> = new Map([
  [
    'token-bucket',
    {
      script: new RedisScript(tokenBucketScript),
      parameters: ['capacity', 'refillPerSecond'],
      windowMs: bucketWindow('capacity', 'refillPerSecond'),
      limit: 'capacity',
      delay: false,
    },
  ],
  [
    'leaky-bucket',
    {
      script: new RedisScript(leakyBucketScript),
      parameters: ['capacity', 'drainPerSecond'],
      windowMs: bucketWindow('capacity', 'drainPerSecond'),
      limit: 'capacity',
      delay: true,
    },
  ],
  [
    'fixed-window',
    {
      script: new RedisScript(fixedWindowScript),
      parameters: ['limit', 'windowMs'],
      windowMs: windowOption,
      limit: 'limit',
      delay: false,
    },
  ],
  [
    'sliding-window-log',
    {
      script: new RedisScript(slidingWindowLogScript),
      parameters: ['limit', 'windowMs'],
      windowMs: windowOption,
      limit: 'limit',
      delay: false,
    },
  ],
  [
    'sliding-window-counter',
    {
      script: new RedisScript(slidingWindowCounterScript),
      parameters: ['limit', 'windowMs'],
      windowMs: windowOption,
      limit: 'limit',
      delay: false,
    },
  ],
]);

/** Algorithm names the Redis store can run. */
export const redisLimiterAlgorithms: readonly string[] = [...algorithmScripts.keys()];

/** The algorithm's parameters, checked once per algorithm object (they are frozen). */
const checkedParameters = new WeakMap<object, string[]>();

export class RedisLimiterStore implements LimiterStore {
  readonly prefix: string;
  readonly #redis: RedisCommander;
  readonly #clock: Clock | undefined;
  readonly #slack: string;

  constructor(options: RedisLimiterStoreOptions) {
    if (options.redis === undefined || typeof options.redis.sendCommand !== 'function') {
      throw new RangeError('redis must be a node-redis client or pool');
    }
    const prefix = options.prefix ?? 'pixelfleet:ratelimit';
    if (typeof prefix !== 'string' || prefix === '')
      throw new RangeError('prefix must be a non-empty string');
    const slack = options.clockSlackMs ?? 60_000;
    if (!Number.isSafeInteger(slack) || slack < 0) {
      throw new RangeError(`clockSlackMs must be a non-negative integer, got ${String(slack)}`);
    }
    this.prefix = prefix;
    this.#redis = options.redis;
    this.#clock = options.clock;
    this.#slack = options.clock === undefined ? '0' : String(slack);
  }

  /** Whether `algorithm` can run here (see `redisLimiterAlgorithms`). */
  supports(algorithm: LimiterAlgorithm<unknown>): boolean {
    return algorithmScripts.has(algorithm.name);
  }

  /** The Redis key holding `key`'s state under `policy`. */
  keyOf(policy: string, key: string): string {
    return `${this.prefix}:${policy}:${key}`;
  }

  async apply<State>(key: string, algorithm: LimiterAlgorithm<State>, cost: number): Promise<Decision> {
    const entry = algorithmScripts.get(algorithm.name);
    if (entry === undefined) {
      throw new PixelfleetError(
        'PF_ERR_CONFIG',
        `the Redis limiter store cannot run the ${algorithm.name} algorithm (policy ${algorithm.policy}); ` +
          `it runs ${redisLimiterAlgorithms.join(', ')}`,
      );
    }
    const parameters = parameterArguments(algorithm, entry);
    const now = this.#clock === undefined ? '' : String(this.#clock.now());
    let reply: string[];
    try {
      reply = await entry.script.run<string[]>(
        this.#redis,
        [this.keyOf(algorithm.policy, key)],
        [now, this.#slack, String(cost), ...parameters],
      );
    } catch (error) {
      throw redisUnavailable(`rate limit step (${algorithm.policy})`, error);
    }
    const decision: Decision = {
      allowed: reply[0] === '1',
      limit: algorithm.parameters[entry.limit]!,
      remaining: Number(reply[1]),
      resetMs: Number(reply[2]),
      retryAfterMs: Number(reply[3]),
      policy: algorithm.policy,
      windowMs: entry.windowMs(algorithm.parameters),
    };
    if (entry.delay) decision.delayMs = Number(reply[4]);
    return decision;
  }

  async reset(policy: string, key: string): Promise<void> {
    try {
      await this.#redis.sendCommand(['DEL', this.keyOf(policy, key)]);
    } catch (error) {
      throw redisUnavailable(`rate limit reset (${policy})`, error);
    }
  }
}

function parameterArguments(algorithm: LimiterAlgorithm<unknown>, entry: AlgorithmScript): string[] {
  let checked = checkedParameters.get(algorithm);
  if (checked === undefined) {
    checked = entry.parameters.map((name) => {
      const value = algorithm.parameters[name];
      if (typeof value !== 'number' || !Number.isFinite(value)) {
        throw new RangeError(`${algorithm.name} parameter ${name} must be a finite number`);
      }
      // String() is the shortest decimal that parses back to the same double, in Lua too.
      return String(value);
    });
    checkedParameters.set(algorithm, checked);
  }
  return checked;
}
