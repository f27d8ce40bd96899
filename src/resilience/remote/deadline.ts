/**
 * Deadline propagation: a caller's deadline travels with the request as the milliseconds that
 * remain (`Pixelfleet-Deadline: 740`), not as a timestamp, so the two machines' clocks need not
 * agree; each hop converts it back to an absolute time on its own clock when the request
 * arrives. Transit time is not subtracted, so the receiver's view is slightly generous — a
 * hop's own timeout still bounds it.
 */

export const deadlineHeader = 'pixelfleet-deadline';

/** Largest remaining time accepted (one day): anything above is a bug or an attack, not a deadline. */
const maximumRemainingMs = 86_400_000;

/**
 * The absolute deadline (ms on the local clock) carried by incoming `headers`, or undefined
 * when the header is absent or not a non-negative integer. Header names must be lower case
 * (as Node delivers them).
 */
export function readDeadline(
  headers: Record<string, string | string[] | undefined>,
  now: number,
): number | undefined {
  const raw = headers[deadlineHeader];
  const value = Array.isArray(raw) ? raw[0] : raw;
  if (value === undefined) return undefined;
  const text = value.trim();
  if (!/^\d{1,9}$/.test(text)) return undefined;
  const remaining = Number(text);
  if (remaining > maximumRemainingMs) return undefined;
  return now + remaining;
}

/** Headers that forward `deadlineAt` to the next hop (0 when it already passed). */
export function deadlineHeaders(deadlineAt: number, now: number): Record<string, string> {
  const remaining = Number.isFinite(deadlineAt)
    ? Math.max(0, Math.floor(deadlineAt - now))
    : maximumRemainingMs;
  return { [deadlineHeader]: String(Math.min(remaining, maximumRemainingMs)) };
}
