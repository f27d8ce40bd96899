/**
 * The gateway: L7 load balancer (and L4 TCP mode) in front of the api servers. Balancing
 * strategies are pure cores; `startGateway` wires them to health checks, outlier ejection,
 * per-upstream circuit breakers, a retry budget, pooled connections and the control listener.
 */
export { type AttemptOutcome, Balancer } from './balancer.ts';
export type { GatewayStatus, UpstreamStatus } from './control-server.ts';
export { type Gateway, type GatewayOptions, startGateway } from './gateway.ts';
export type { HealthCheckOptions } from './health-checker.ts';
export { HealthState, type HealthThresholds } from './health-state.ts';
export { OutlierDetector, type OutlierDetectorOptions, type OutlierSnapshot } from './outlier-detector.ts';
export { apiKeyDigest, isReplayable } from './request-facts.ts';
export * from './strategies/index.ts';
