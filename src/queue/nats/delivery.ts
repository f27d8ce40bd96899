/**
 * One delivery from a pull consumer, and how it is settled, on the raw JetStream protocol:
 * - pull: a `CONSUMER.MSG.NEXT` request for one message with `no_wait`, on its own reply
 *   subscription (a pulled message arrives under its stream subject, which a shared request inbox
 *   would drop). The answer is a message, or a 404/408 status meaning "none now".
 * - settle: `+ACK`, `-NAK {"delay"}`, `+WPI` (in progress) and `+TERM` sent as requests to the
 *   delivery's ack subject. The server answers each once it has processed it (the double ack), so
 *   a settlement lost on the way is noticed and retried instead of silently becoming a redelivery.
 * The ack subject names the delivery: `$JS.ACK.<stream>.<consumer>.<delivery count>.<stream
 * sequence>.<consumer sequence>.<timestamp>.<pending>` (nats-server 2.9; newer servers prepend a
 * domain and an account hash, read from the end).
 */
import type { NatsConnection } from '@nats-io/transport-node';

export interface Delivery {
  subject: string;
  ackSubject: string;
  data: Uint8Array;
  /** 1-based: how many times the server has delivered this message. */
  deliveryCount: number;
  streamSequence: number;
}

export type Settlement = '+ACK' | '+WPI' | '+TERM' | `-NAK${string}`;

export function parseAckSubject(ackSubject: string): { deliveryCount: number; streamSequence: number } {
  const tokens = ackSubject.split('.');
  if (tokens.length < 9 || tokens[0] !== '$JS' || tokens[1] !== 'ACK') {
    throw new TypeError(`not a JetStream ack subject: ${ackSubject}`);
  }
  // From the end: ..., delivered, stream seq, consumer seq, timestamp, pending.
  const deliveryCount = Number(tokens[tokens.length - 5]);
  const streamSequence = Number(tokens[tokens.length - 4]);
  if (!Number.isSafeInteger(deliveryCount) || !Number.isSafeInteger(streamSequence)) {
    throw new TypeError(`malformed JetStream ack subject: ${ackSubject}`);
  }
  return { deliveryCount, streamSequence };
}

/**
 * Pulls at most one message. Resolves undefined when the consumer has none to give now. A
 * timeout also means none: nats-server 2.9 leaves a `no_wait` pull unanswered when the message it
 * would have delivered just exceeded MaxDeliver. (A message the server sent after we gave up is
 * redelivered once its ack wait passes.)
 */
export async function pullOne(
  connection: NatsConnection,
  stream: string,
  consumer: string,
  timeoutMs: number,
): Promise<Delivery | undefined> {
  let reply: Awaited<ReturnType<NatsConnection['request']>>;
  try {
    reply = await connection.request(
      `$JS.API.CONSUMER.MSG.NEXT.${stream}.${consumer}`,
      JSON.stringify({ batch: 1, no_wait: true }),
      { timeout: timeoutMs, noMux: true },
    );
  } catch (error) {
    if (error instanceof Error && error.name === 'TimeoutError') return undefined;
    throw error;
  }
  const code = reply.headers?.code ?? 0;
  if (code === 404 || code === 408 || code === 409) return undefined;
  if (code !== 0 || reply.reply === undefined || !reply.reply.startsWith('$JS.ACK.')) {
    throw new Error(
      `unexpected pull reply from ${stream}/${consumer}: ${code} ${reply.headers?.description}`,
    );
  }
  return {
    subject: reply.subject,
    ackSubject: reply.reply,
    data: reply.data,
    ...parseAckSubject(reply.reply),
  };
}

/** Sends a settlement and waits for the server to confirm it. */
export async function settle(
  connection: NatsConnection,
  ackSubject: string,
  settlement: Settlement,
  timeoutMs: number,
): Promise<void> {
  await connection.request(ackSubject, settlement, { timeout: timeoutMs });
}

/** `-NAK` with a redelivery delay. */
export function nakWithDelay(delayMs: number): Settlement {
  return delayMs > 0 ? `-NAK ${JSON.stringify({ delay: Math.round(delayMs * 1_000_000) })}` : '-NAK';
}
