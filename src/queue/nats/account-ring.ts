/**
 * The round robin over accounts that a claim walks: pure bookkeeping, no I/O.
 *
 * The ring holds the account tokens that may have jobs (learnt from the jobs stream's
 * per-subject counts and from enqueue notifications). A claim asks each account in turn, starting
 * after the one served last, so within one claiming process every active account gets one job per
 * turn of the ring and a busy tenant cannot starve the others. Refreshing the ring keeps the
 * position of accounts it already had, so a refresh in the middle of a turn does not restart it.
 */
export class AccountRing {
  #tokens: string[] = [];
  #cursor = 0;

  get size(): number {
    return this.#tokens.length;
  }

  /** The accounts to ask on this turn, starting at the cursor (each once). */
  turn(): string[] {
    const count = this.#tokens.length;
    const result: string[] = [];
    for (let index = 0; index < count; index++) result.push(this.#tokens[(this.#cursor + index) % count]!);
    return result;
  }

  /** `token` was just asked: the next turn starts after it. */
  passed(token: string): void {
    const index = this.#tokens.indexOf(token);
    if (index >= 0) this.#cursor = (index + 1) % this.#tokens.length;
  }

  /** An account that may have jobs (an enqueue notification). New ones join at the end of the turn. */
  add(token: string): void {
    if (this.#tokens.includes(token)) return;
    // Insert just before the cursor: the account is asked last in the current turn.
    this.#tokens.splice(this.#cursor, 0, token);
    this.#cursor = (this.#cursor + 1) % this.#tokens.length;
  }

  /** Replaces the membership with `active`, keeping the order and turn position of survivors. */
  replace(active: Iterable<string>): void {
    const wanted = new Set(active);
    const current = this.#tokens[this.#cursor];
    const kept = this.#tokens.filter((token) => wanted.has(token));
    for (const token of kept) wanted.delete(token);
    this.#tokens = kept;
    const index = current === undefined ? -1 : kept.indexOf(current);
    this.#cursor = Math.max(index, 0);
    for (const token of wanted) this.add(token);
    if (this.#tokens.length === 0) this.#cursor = 0;
  }
}
