/**
 * Last-resort cleanup for test resources. Tests should stop what they start (pass the test
 * context so an `after` hook does it); this registry also runs synchronous cleanups when the
 * process exits or is told to stop by SIGINT/SIGTERM, so a failed or cancelled test never
 * leaves servers or temp dirs behind.
 */

/** The part of node:test's TestContext (or a suite) the helpers use to register cleanup. */
export interface CleanupOwner {
  after(fn: () => unknown): void;
}

const exitCleanups = new Set<() => void>();
let hooksInstalled = false;

function runExitCleanups(): void {
  for (const cleanup of [...exitCleanups]) {
    exitCleanups.delete(cleanup);
    try {
      cleanup();
    } catch {
      // Best effort: one failing cleanup must not stop the others.
    }
  }
}

function onSignal(signal: NodeJS.Signals): void {
  runExitCleanups();
  process.off('SIGINT', onSignal);
  process.off('SIGTERM', onSignal);
  // Re-raise so the process ends with the signal's usual status.
  process.kill(process.pid, signal);
}

/** Register a synchronous cleanup to run at exit; returns a function that unregisters it. */
export function onExit(cleanup: () => void): () => void {
  if (!hooksInstalled) {
    hooksInstalled = true;
    process.on('exit', runExitCleanups);
    process.on('SIGINT', onSignal);
    process.on('SIGTERM', onSignal);
  }
  exitCleanups.add(cleanup);
  return () => {
    exitCleanups.delete(cleanup);
  };
}
