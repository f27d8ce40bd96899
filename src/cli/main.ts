/**
 * The `pixelfleet` command. `start` runs the embedded service; `config` prints the settings
 * reference; `admin` manages accounts, keys and tiers through the admin API.
 */
import { readFileSync } from 'node:fs';
import { describeSettings, loadConfig } from '../config/index.ts';
import { isPixelfleetError } from '../errors/index.ts';
import { flushLogger } from '../observability/index.ts';
import { startEmbeddedService } from '../service/embedded.ts';
import { runAdminCommand } from './admin.ts';
import { runClusterCommand } from './cluster.ts';
import { runNodeCommand } from './node.ts';
import { runQueueCommand } from './queue.ts';

const usage = `Usage: pixelfleet <command> [options]

Commands:
  start            Run the image service (api, queue and workers in one process)
  config           Print every setting with its flag, environment variable and default
  admin            Manage accounts, API keys, tiers; read usage and the audit log
                   (talks to the admin API of a running server; 'pixelfleet admin --help')
  queue            Run or administer a node of the Raft-replicated job queue ('pixelfleet queue --help')
  node             Run cluster roles in this process: --roles gateway,api,queue,worker,identity
                   ('pixelfleet node --help')
  cluster          Run a local region (gateway, api servers, queue nodes, workers, identity), each
                   role its own process on loopback ('pixelfleet cluster --help')
  version          Print the version

Run 'pixelfleet start --help' for the settings of start.`;

function version(): string {
  const manifest = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as {
    version: string;
  };
  return manifest.version;
}

async function start(argv: string[]): Promise<void> {
  if (argv.includes('--help') || argv.includes('-h')) {
    console.log(`Usage: pixelfleet start [--setting value ...]\n\n${describeSettings()}`);
    return;
  }
  const config = loadConfig({ argv, env: process.env });
  const service = await startEmbeddedService(config);
  let signals = 0;
  const onSignal = (signal: NodeJS.Signals) => {
    signals++;
    if (signals > 1) {
      service.logger.warn({ signal }, 'second signal: exiting now');
      process.exit(1);
    }
    service.logger.info({ signal }, 'signal received');
    service.close().then(
      async () => {
        await flushLogger(service.logger);
        process.exit(0);
      },
      async (error) => {
        service.logger.error({ err: error }, 'shutdown failed');
        await flushLogger(service.logger);
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
}

async function main(argv: string[]): Promise<void> {
  const [command, ...rest] = argv;
  switch (command) {
    case 'start':
      return start(rest);
    case 'admin':
      process.exitCode = await runAdminCommand(rest, process.env);
      return;
    case 'queue':
      process.exit(await runQueueCommand(rest, process.env));
      break;
    case 'node':
      process.exit(await runNodeCommand(rest, process.env));
      break;
    case 'cluster':
      process.exit(await runClusterCommand(rest, process.env));
      break;
    case 'config':
      console.log(describeSettings());
      return;
    case 'version':
    case '--version':
      console.log(version());
      return;
    case undefined:
    case 'help':
    case '--help':
    case '-h':
      console.log(usage);
      return;
    default:
      console.error(`pixelfleet: unknown command '${command}'\n\n${usage}`);
      process.exitCode = 2;
  }
}

main(process.argv.slice(2)).catch((error: unknown) => {
  if (isPixelfleetError(error, 'PF_ERR_CONFIG')) {
    console.error(`pixelfleet: invalid configuration: ${error.message}`);
    process.exit(2);
  }
  console.error('pixelfleet: fatal:', error);
  process.exit(1);
});
