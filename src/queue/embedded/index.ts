/** The embedded (single-process, fsynced local log) implementation of `JobQueue`. */
export {
  EmbeddedQueue,
  type EmbeddedQueueOptions,
  openEmbeddedQueue,
  type QueueLogger,
} from './embedded-queue.ts';
