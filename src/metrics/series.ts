import type { Registry } from 'prom-client';

/**
 * Counters and histograms for the per-request hot path, exposed through prom-client's registry.
 *
 * prom-client's own metrics hash an object of labels (keys sorted) and validate it on every
 * `inc`/`observe`; with eight updates per request that was a third of the cost of observability.
 * These take label values positionally, find their series in a trie of Maps (SeriesIndex), and
 * do the work of shaping label objects only when Prometheus scrapes. The scrape is still written by prom-client
 * (`registry.metrics()`), from the `get()` each class implements, so the format is its own.
 */

type LabelValues = readonly string[];

interface SeriesValue {
  readonly labels: Record<string, string | number>;
  readonly value: number;
  readonly metricName?: string;
}

interface MetricData {
  readonly name: string;
  readonly help: string;
  readonly type: 'counter' | 'histogram';
  readonly values: SeriesValue[];
  readonly aggregator: 'sum';
}

/**
 * Series by label values, one Map level per label name: finding a series already seen walks one
 * Map lookup per label and allocates nothing (joining the values into a key string allocated per
 * update, and merged tuples whose values held the separator). Bound: the trie holds at most one
 * Map per distinct prefix of some series' values, so at most (label count x series count)
 * entries, in proportion to the series themselves, which the label sets bound (ModelLabels, the
 * rules' names; see docs/bounds.md).
 */
class SeriesIndex<S> {
  private readonly depth: number;
  private root = new Map<string, unknown>();
  /** The series of a metric without labels. */
  private single: S | undefined;
  /** Every series, in the order they appeared (the order of the scrape). */
  private list: S[] = [];

  constructor(depth: number) {
    this.depth = depth;
  }

  get all(): readonly S[] {
    return this.list;
  }

  find(values: LabelValues): S | undefined {
    if (this.depth === 0) return this.single;
    let node: unknown = this.root;
    for (let i = 0; i < this.depth; i++) {
      node = (node as Map<string, unknown>).get(values[i]!);
      if (node === undefined) return undefined;
    }
    return node as S;
  }

  /** Adds the series of `values`, which `find` did not know. */
  add(values: LabelValues, series: S): void {
    this.list.push(series);
    if (this.depth === 0) {
      this.single = series;
      return;
    }
    let node = this.root;
    const last = this.depth - 1;
    for (let i = 0; i < last; i++) {
      let next = node.get(values[i]!) as Map<string, unknown> | undefined;
      if (next === undefined) {
        next = new Map();
        node.set(values[i]!, next);
      }
      node = next;
    }
    node.set(values[last]!, series);
  }

  clear(): void {
    this.root = new Map();
    this.single = undefined;
    this.list = [];
  }
}

function labelObject(names: readonly string[], values: LabelValues): Record<string, string> {
  const labels: Record<string, string> = {};
  for (let i = 0; i < names.length; i++) labels[names[i]!] = values[i]!;
  return labels;
}

abstract class FastMetric {
  readonly name: string;
  readonly help: string;
  readonly labelNames: readonly string[];
  readonly aggregator = 'sum' as const;

  constructor(registry: Registry, name: string, help: string, labelNames: readonly string[]) {
    this.name = name;
    this.help = help;
    this.labelNames = labelNames;
    // prom-client's registry accepts any object with a name and an async get() (its Metric shape).
    registry.registerMetric(this as unknown as Parameters<Registry['registerMetric']>[0]);
  }

  abstract get(): Promise<MetricData>;
  abstract reset(): void;
}

export class FastCounter extends FastMetric {
  readonly type = 'counter' as const;
  private readonly series: SeriesIndex<{ labels: Record<string, string>; value: number }>;

  constructor(registry: Registry, name: string, help: string, labelNames: readonly string[]) {
    super(registry, name, help, labelNames);
    this.series = new SeriesIndex(labelNames.length);
    this.reset();
  }

  /** Adds `by` to the series of these label values (in `labelNames` order). */
  inc(values: LabelValues, by = 1): void {
    let s = this.series.find(values);
    if (s === undefined) {
      s = { labels: labelObject(this.labelNames, values), value: 0 };
      this.series.add(values, s);
    }
    s.value += by;
  }

  async get(): Promise<MetricData> {
    const values: SeriesValue[] = [];
    for (const s of this.series.all) values.push({ labels: s.labels, value: s.value });
    return { name: this.name, help: this.help, type: this.type, values, aggregator: this.aggregator };
  }

  /** A counter without labels is exported at 0 from the start, as Prometheus expects. */
  reset(): void {
    this.series.clear();
    if (this.labelNames.length === 0) this.inc([], 0);
  }
}

export class FastHistogram extends FastMetric {
  readonly type = 'histogram' as const;
  private readonly buckets: readonly number[];
  private readonly series: SeriesIndex<{ labels: Record<string, string>; counts: Float64Array; sum: number; count: number }>;

  constructor(registry: Registry, name: string, help: string, labelNames: readonly string[], buckets: readonly number[]) {
    super(registry, name, help, labelNames);
    this.buckets = buckets;
    this.series = new SeriesIndex(labelNames.length);
    this.reset();
  }

  observe(values: LabelValues, value: number): void {
    let s = this.series.find(values);
    if (s === undefined) {
      s = { labels: labelObject(this.labelNames, values), counts: new Float64Array(this.buckets.length), sum: 0, count: 0 };
      this.series.add(values, s);
    }
    const buckets = this.buckets;
    for (let i = 0; i < buckets.length; i++) {
      if (value <= buckets[i]!) {
        s.counts[i]!++;
        break;
      }
    }
    s.sum += value;
    s.count++;
  }

  async get(): Promise<MetricData> {
    const values: SeriesValue[] = [];
    const bucketName = `${this.name}_bucket`;
    for (const s of this.series.all) {
      let cumulative = 0;
      for (let i = 0; i < this.buckets.length; i++) {
        cumulative += s.counts[i]!;
        values.push({ labels: { ...s.labels, le: this.buckets[i]! }, value: cumulative, metricName: bucketName });
      }
      values.push({ labels: { ...s.labels, le: '+Inf' }, value: s.count, metricName: bucketName });
      values.push({ labels: s.labels, value: s.sum, metricName: `${this.name}_sum` });
      values.push({ labels: s.labels, value: s.count, metricName: `${this.name}_count` });
    }
    return { name: this.name, help: this.help, type: this.type, values, aggregator: this.aggregator };
  }

  /** A histogram without labels is exported (all zero) from the start. */
  reset(): void {
    this.series.clear();
    if (this.labelNames.length === 0) {
      this.series.add([], { labels: {}, counts: new Float64Array(this.buckets.length), sum: 0, count: 0 });
    }
  }
}
