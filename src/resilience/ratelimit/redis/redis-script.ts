/**
 * A Lua script run by digest: EVALSHA, and on NOSCRIPT (first use, or Redis restarted or was
 * flushed and forgot it) SCRIPT LOAD once, then EVALSHA again. Concurrent callers that all hit
 * NOSCRIPT share one load. The digest is computed locally, so the common path sends only the
 * 40-character SHA, never the script body.
 */
import { createHash } from 'node:crypto';
import type { RedisArgument, RedisCommander } from './redis-connection.ts';

export class RedisScript {
  readonly source: string;
  readonly sha: string;
  #loading: Promise<unknown> | undefined;

  constructor(source: string) {
    this.source = source;
    this.sha = createHash('sha1').update(source).digest('hex');
  }

  async run<Reply>(
    redis: RedisCommander,
    keys: readonly RedisArgument[],
    args: readonly RedisArgument[],
    options?: { typeMapping?: Record<number, unknown> },
  ): Promise<Reply> {
    const command: RedisArgument[] = ['EVALSHA', this.sha, String(keys.length), ...keys, ...args];
    try {
      return (await redis.sendCommand(command, options)) as Reply;
    } catch (error) {
      if (!isNoScript(error)) throw error;
    }
    await this.load(redis);
    return (await redis.sendCommand(command, options)) as Reply;
  }

  /** SCRIPT LOAD, shared by concurrent callers. */
  load(redis: RedisCommander): Promise<unknown> {
    this.#loading ??= redis.sendCommand(['SCRIPT', 'LOAD', this.source]).finally(() => {
      this.#loading = undefined;
    });
    return this.#loading;
  }
}

function isNoScript(error: unknown): boolean {
  return error instanceof Error && error.message.startsWith('NOSCRIPT');
}
