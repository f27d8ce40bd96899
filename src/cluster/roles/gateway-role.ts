/**
 * The gateway role: the L7 (or L4) load balancer from src/gateway in front of the api servers,
 * hosting the membership registry on its control listener (the internal host).
 */
import { type StrategyName, startGateway } from '../../gateway/index.ts';
import type { NodeContext, RoleHandle } from './types.ts';

export interface GatewayRoleHandle extends RoleHandle {
  url: string;
  controlUrl: string;
}

export async function startGatewayRole(context: NodeContext): Promise<GatewayRoleHandle> {
  const { config, logger } = context;
  const gateway = await startGateway({
    host: config.gatewayHost,
    port: config.gatewayPort,
    controlHost: config.internalHost,
    controlPort: config.gatewayControlPort,
    mode: config.gatewayMode as 'http' | 'tcp',
    strategy: config.gatewayStrategy as StrategyName,
    clusterSecret: context.clusterSecret,
    logger: logger.child({ role: 'gateway' }),
    // The node's registry (its internal /metrics) already has this process's metrics; a second
    // copy would also run a second event-loop sampler.
    defaultMetrics: false,
  });
  logger.info({ url: gateway.url, controlUrl: gateway.controlUrl }, 'gateway role started');
  return {
    name: 'gateway',
    url: gateway.url,
    controlUrl: gateway.controlUrl,
    ready: () => true,
    checks: () => ({}),
    urls: { gateway: gateway.url, control: gateway.controlUrl },
    close: () => gateway.close(),
  };
}
