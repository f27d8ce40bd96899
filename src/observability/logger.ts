/**
 * Structured JSON logs (pino) on stdout: one event per unit of work (an HTTP request, a job
 * attempt) rather than chatty step-by-step lines.
 *
 * Writes are asynchronous: a slow or stuck reader of stdout must never stall the event loop
 * (with synchronous writes a full pipe blocks every request). The buffer is bounded; beyond
 * it lines are dropped rather than memory grown. `flush` runs on graceful shutdown; a crash
 * may lose the last few milliseconds of lines, the usual price of asynchronous logging.
 */
import { type Logger, pino } from 'pino';

export type { Logger } from 'pino';

export function createLogger(options: { level: string; name?: string }): Logger {
  const destination = pino.destination({ dest: 1, sync: false, minLength: 0, maxLength: 16 * 1024 * 1024 });
  return pino(
    {
      level: options.level,
      base: { service: options.name ?? 'pixelfleet', pid: process.pid },
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
    },
    destination,
  );
}

/** Writes out buffered lines, then resolves (call before a deliberate exit). */
export function flushLogger(logger: Logger): Promise<void> {
  return new Promise((resolve) => logger.flush(() => resolve()));
}
