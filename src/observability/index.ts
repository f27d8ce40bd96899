export { createLogger, flushLogger, type Logger } from './logger.ts';
export { createServiceMetrics, type ServiceMetrics } from './metrics.ts';
export { continueTrace, formatTraceparent, type TraceContext } from './trace.ts';
