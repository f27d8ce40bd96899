/**
 * The simulator's agenda: a binary min-heap of events ordered by simulated time, ties broken by
 * insertion order, so a run is a pure function of its seed.
 */
export interface Scheduled<T> {
  time: number;
  sequence: number;
  event: T;
}

export class EventQueue<T> {
  private readonly heap: Scheduled<T>[] = [];
  private sequence = 0;

  get size(): number {
    return this.heap.length;
  }

  push(time: number, event: T): void {
    const item = { time, sequence: this.sequence++, event };
    const heap = this.heap;
    heap.push(item);
    let position = heap.length - 1;
    while (position > 0) {
      const parent = (position - 1) >> 1;
      if (!before(item, heap[parent]!)) break;
      heap[position] = heap[parent]!;
      position = parent;
    }
    heap[position] = item;
  }

  pop(): Scheduled<T> | undefined {
    const heap = this.heap;
    const top = heap[0];
    const last = heap.pop();
    if (top === undefined || last === undefined || heap.length === 0) return top;
    let position = 0;
    for (;;) {
      const left = position * 2 + 1;
      if (left >= heap.length) break;
      const right = left + 1;
      const child = right < heap.length && before(heap[right]!, heap[left]!) ? right : left;
      if (!before(heap[child]!, last)) break;
      heap[position] = heap[child]!;
      position = child;
    }
    heap[position] = last;
    return top;
  }
}

function before<T>(a: Scheduled<T>, b: Scheduled<T>): boolean {
  return a.time < b.time || (a.time === b.time && a.sequence < b.sequence);
}
