/**
 * Items collected and handed over together: when `maxWeight` is reached, or `intervalMs` after
 * the first item of a batch, whichever comes first. Used to take per-request work (log lines,
 * metrics) off the request path. The timer never keeps the process alive; `flush()` on exit.
 */
export class TimedBatch<T> {
  private items: T[] = [];
  private weight = 0;
  private timer: NodeJS.Timeout | undefined;
  private readonly intervalMs: number;
  private readonly maxWeight: number;
  private readonly weigh: (item: T) => number;
  private readonly handOver: (items: T[]) => void;
  private readonly flushLater = (): void => {
    this.timer = undefined;
    this.flush();
  };

  constructor(options: { intervalMs: number; maxWeight: number; weigh?: (item: T) => number; flush: (items: T[]) => void }) {
    this.intervalMs = options.intervalMs;
    this.maxWeight = options.maxWeight;
    this.weigh = options.weigh ?? (() => 1);
    this.handOver = options.flush;
  }

  add(item: T): void {
    this.items.push(item);
    this.weight += this.weigh(item);
    if (this.weight >= this.maxWeight) {
      this.flush();
    } else if (this.timer === undefined) {
      this.timer = setTimeout(this.flushLater, this.intervalMs);
      this.timer.unref();
    }
  }

  /** Hands over everything collected now. */
  flush(): void {
    if (this.timer !== undefined) {
      clearTimeout(this.timer);
      this.timer = undefined;
    }
    if (this.items.length === 0) return;
    const items = this.items;
    this.items = [];
    this.weight = 0;
    this.handOver(items);
  }
}
