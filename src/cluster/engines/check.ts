/**
 * Start-up checks of the existing-engine settings, so a typo fails the node at once with the
 * flag named, rather than as a connection error in some role later.
 */
import type { Config } from '../../config/index.ts';
import { PixelfleetError } from '../../errors/index.ts';
import type { RoleName } from '../roles/types.ts';
import { queueEngineOf } from './queue.ts';

function invalid(key: string, detail: string): PixelfleetError {
  return new PixelfleetError('PF_ERR_CONFIG', `${key}: ${detail}`, { extensions: { key } });
}

export function checkEngineSettings(
  config: Pick<Config, 'queue' | 'redis' | 'postgres'>,
  roles: readonly RoleName[],
): void {
  const queue = queueEngineOf(config.queue);
  if (roles.includes('queue') && queue.kind !== 'raft') {
    throw invalid(
      '--roles',
      'the queue role runs the Raft queue; with --queue nats://... NATS is the queue, leave the role out',
    );
  }
  if (config.redis !== '' && !/^rediss?:\/\/[^/]/.test(config.redis)) {
    throw invalid('--redis', 'expected redis://[user:password@]host:port[/db] (or rediss://)');
  }
  if (config.postgres !== '' && !/^postgres(ql)?:\/\/[^/]/.test(config.postgres)) {
    throw invalid('--postgres', 'expected postgres://user:password@host:port/database');
  }
}
