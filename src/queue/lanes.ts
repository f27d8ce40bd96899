/**
 * Queues with two lanes — durable jobs in the replicated or logged state machine, synchronous
 * (`durable: false`) jobs in a volatile one that is never logged — report them as one queue.
 */
import type { QueueStats } from './types.ts';

/** One view of both lanes, as if they were one queue: counts and per-account figures summed. */
export function mergeStats(durable: QueueStats, volatile: QueueStats): QueueStats {
  const perAccount: QueueStats['perAccount'] = { ...durable.perAccount };
  for (const [account, counts] of Object.entries(volatile.perAccount)) {
    const known = perAccount[account];
    perAccount[account] = known
      ? { queued: known.queued + counts.queued, inflight: known.inflight + counts.inflight }
      : counts;
  }
  return {
    depth: durable.depth + volatile.depth,
    inflight: durable.inflight + volatile.inflight,
    deadLetters: durable.deadLetters + volatile.deadLetters,
    enqueuedTotal: durable.enqueuedTotal + volatile.enqueuedTotal,
    ackedTotal: durable.ackedTotal + volatile.ackedTotal,
    nackedTotal: durable.nackedTotal + volatile.nackedTotal,
    redeliveredTotal: durable.redeliveredTotal + volatile.redeliveredTotal,
    expiredTotal: durable.expiredTotal + volatile.expiredTotal,
    deadLetteredTotal: durable.deadLetteredTotal + volatile.deadLetteredTotal,
    perAccount,
  };
}
