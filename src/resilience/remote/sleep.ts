/**
 * A timer that a signal can cut short, rejecting with the signal's own reason (not the
 * AbortError of `node:timers/promises`), so a caller that aborts with a PixelfleetError (the
 * queue closed, the caller gave up) sees that error come out of the wait.
 */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    if (signal?.aborted) {
      reject(signal.reason);
      return;
    }
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal?.reason);
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}
