/**
 * Structured JSON logs (pino) on stdout: one event per unit of work (an HTTP request, a job
 * attempt) rather than chatty step-by-step lines.
 */
import { type Logger, pino } from 'pino';

export type { Logger } from 'pino';

export function createLogger(options: { level: string; name?: string }): Logger {
  return pino({
    level: options.level,
    base: { service: options.name ?? 'pixelfleet', pid: process.pid },
    timestamp: pino.stdTimeFunctions.isoTime,
    formatters: { level: (label) => ({ level: label }) },
  });
}
