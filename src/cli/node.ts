/**
 * `pixelfleet node --roles api,worker,... [--setting value ...]`: runs a cluster node (any set of
 * roles) until SIGTERM/SIGINT. The first signal leaves the registry, drains and closes every
 * role, then exits 0; a second one exits at once. A role failing beyond repair exits 1.
 * Settings come from the one schema (flags, PIXELFLEET_* env, JSON file); the cluster secret
 * from PIXELFLEET_CLUSTER_SECRET.
 */
import { startClusterNode } from '../cluster/index.ts';
import { describeSettings, loadConfig } from '../config/index.ts';
import { flushLogger } from '../observability/index.ts';

export async function runNodeCommand(argv: string[], env: NodeJS.ProcessEnv): Promise<number> {
  if (argv.includes('--help') || argv.includes('-h')) {
    console.log(
      `Usage: pixelfleet node --roles <gateway,api,queue,worker,identity> [--setting value ...]\n\nNeeds PIXELFLEET_CLUSTER_SECRET (>= 16 bytes). Settings:\n\n${describeSettings()}`,
    );
    return 0;
  }
  const config = loadConfig({ argv, env });
  const node = await startClusterNode(config, { env });
  return new Promise<number>((resolve) => {
    let signals = 0;
    const finish = async (code: number) => {
      await flushLogger(node.logger);
      resolve(code);
    };
    const onSignal = (signal: NodeJS.Signals) => {
      signals++;
      if (signals > 1) {
        node.logger.warn({ signal }, 'second signal: exiting now');
        void finish(1);
        return;
      }
      node.logger.info({ signal }, 'signal received');
      node.close().then(
        () => finish(0),
        (error: unknown) => {
          node.logger.error({ err: error }, 'shutdown failed');
          void finish(1);
        },
      );
    };
    process.on('SIGTERM', onSignal);
    process.on('SIGINT', onSignal);
    // Under a supervisor (`pixelfleet cluster`): say we started over the IPC channel, whatever
    // the log level, and stop when the supervisor goes away so no member outlives it.
    if (process.send !== undefined) {
      process.send({ type: 'pixelfleet-node-started', pid: process.pid, urls: node.urls });
      process.channel?.unref();
      process.once('disconnect', () => onSignal('SIGTERM'));
    }
    node.failed.then(async () => {
      await node.close().catch(() => {});
      await finish(1);
    });
  });
}
