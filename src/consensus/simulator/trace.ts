/**
 * The last K events of a simulation run, kept in a ring buffer so a failure can print what led
 * up to it without the cost of keeping the whole history.
 */
export class Trace {
  private readonly lines: string[];
  private next = 0;
  private count = 0;

  constructor(capacity: number) {
    this.lines = new Array<string>(capacity);
  }

  get enabled(): boolean {
    return this.lines.length > 0;
  }

  record(line: string): void {
    if (this.lines.length === 0) return;
    this.lines[this.next] = line;
    this.next = (this.next + 1) % this.lines.length;
    if (this.count < this.lines.length) this.count += 1;
  }

  entries(): string[] {
    const result: string[] = [];
    const start = (this.next - this.count + this.lines.length) % Math.max(this.lines.length, 1);
    for (let offset = 0; offset < this.count; offset++) {
      result.push(this.lines[(start + offset) % this.lines.length]!);
    }
    return result;
  }
}
