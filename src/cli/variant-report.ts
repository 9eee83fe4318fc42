import type { Readable } from 'node:stream';
import { MeanAccumulator, quantileInterval, wilson, type Interval } from '../experiments/intervals.js';
import { mulberry32 } from '../seeded-random.js';
import { num, readLogRecords, str, type LogReport } from './log-reader.js';

/**
 * `signalbox report --by variant`: the arms of each rule's split compared (issue 17, item 5), from
 * the request log: per (rule, variant) the requests, the mean cost per request, latency p50 and
 * p95, the error rate, the feedback (`msg: 'feedback'` lines) and the shadow's agreement
 * (`msg: 'shadow'` lines), each with a 95% confidence interval (src/experiments/intervals.ts).
 * One pass over the log; memory is bounded by the rows and their latency samples, not the file.
 */

/**
 * Distinct (rule, variant) rows kept; later ones are summed into one `(other)` row. Fewer than the
 * default report's MAX_REPORT_ROWS since each row holds a latency sample: 1,000 rows of
 * LATENCY_SAMPLE_SIZE numbers are at most 8 MiB, and real rules have a handful of arms.
 */
export const MAX_VARIANT_ROWS = 1000;
/**
 * Latencies kept per row, a uniform reservoir sample (Vitter's algorithm R) of all of them. With
 * 1,024 values the order-statistic interval of p95 spans about ±14 ranks around rank 973, a few
 * percent of the latency, far less than two arms worth comparing differ by, while the memory per row
 * stays at 8 KiB. An arm with fewer requests keeps them all (exact percentiles).
 */
export const LATENCY_SAMPLE_SIZE = 1024;
/** Feedback labels counted per row (the proxy accepts only FEEDBACK_LABELS, but a log is any text); later ones count as `(other)`. */
export const MAX_LABELS_PER_ROW = 32;
/** The label whose share is shown with its interval: the first of FEEDBACK_LABELS' default. */
export const POSITIVE_LABEL = 'good';
const NO_VARIANT = 'none';
const OTHER = '(other)';
/** The reservoir's random draws are seeded: the same log gives the same report. */
const SAMPLE_SEED = 17;

class VariantRow {
  requests = 0;
  readonly cost = new MeanAccumulator();
  /** Latencies seen; `latencies` holds a uniform sample of at most LATENCY_SAMPLE_SIZE of them. */
  latencySeen = 0;
  readonly latencies: number[] = [];
  errors = 0;
  readonly labels = new Map<string, number>();
  feedback = 0;
  shadows = 0;
  agreements = 0;
  readonly judgeScore = new MeanAccumulator();

  constructor(readonly rule: string, readonly variant: string) {}

  addLatency(ms: number, random: () => number): void {
    this.latencySeen++;
    if (this.latencies.length < LATENCY_SAMPLE_SIZE) {
      this.latencies.push(ms);
      return;
    }
    const slot = Math.floor(random() * this.latencySeen);
    if (slot < LATENCY_SAMPLE_SIZE) this.latencies[slot] = ms;
  }

  addLabel(label: string): void {
    this.feedback++;
    const key = this.labels.has(label) || this.labels.size < MAX_LABELS_PER_ROW ? label : OTHER;
    this.labels.set(key, (this.labels.get(key) ?? 0) + 1);
  }
}

/** One arm's figures, as printed and as `--json` gives them; an interval is absent when there is too little data for one. */
export interface VariantFigures {
  readonly rule: string;
  readonly variant: string;
  readonly requests: number;
  /** Requests with a cost in their log line, and their mean cost per request, USD. */
  readonly priced: number;
  readonly costUsd: Interval | undefined;
  readonly latencySampled: number;
  readonly p50Ms: Interval | undefined;
  readonly p95Ms: Interval | undefined;
  readonly errors: number;
  readonly errorRate: Interval | undefined;
  readonly feedback: Readonly<Record<string, number>>;
  readonly goodShare: Interval | undefined;
  readonly shadows: number;
  readonly agreement: Interval | undefined;
  readonly judgeScore: Interval | undefined;
}

export type VariantReport = LogReport<VariantFigures>;

export async function buildVariantReport(input: Readable): Promise<VariantReport> {
  const rows = new Map<string, VariantRow>();
  const random = mulberry32(SAMPLE_SEED);
  const rowOf = (record: Record<string, unknown>): VariantRow | undefined => {
    const rule = str(record.rule);
    // A request no rule saw (pass-through, refused before routing, the feedback call itself) belongs to no arm.
    if (rule === undefined) return undefined;
    const variant = str(record.variant) ?? NO_VARIANT;
    const key = `${rule}\u0000${variant}`;
    let row = rows.get(key);
    if (row !== undefined) return row;
    if (rows.size >= MAX_VARIANT_ROWS) {
      const otherKey = `${OTHER}\u0000${OTHER}`;
      row = rows.get(otherKey);
      if (row === undefined) rows.set(otherKey, (row = new VariantRow(OTHER, OTHER)));
      return row;
    }
    rows.set(key, (row = new VariantRow(rule, variant)));
    return row;
  };
  const { lines, skipped } = await readLogRecords(input, (record) => {
    const msg = record.msg;
    if (msg !== 'request' && msg !== 'feedback' && msg !== 'shadow') return;
    const row = rowOf(record);
    if (row === undefined) return;
    if (msg === 'request') {
      row.requests++;
      if (typeof record.cost_usd === 'number') row.cost.add(num(record.cost_usd));
      if (typeof record.duration_ms === 'number') row.addLatency(num(record.duration_ms), random);
      const status = record.status;
      if ((typeof status === 'number' && status >= 500 && status !== 499) || record.stream_error !== undefined) row.errors++;
    } else if (msg === 'feedback') {
      const label = str(record.label);
      if (label !== undefined) row.addLabel(label);
    } else if (typeof record.judge_agreement === 'boolean') {
      row.shadows++;
      if (record.judge_agreement) row.agreements++;
      const score = record.judge_score;
      if (typeof score === 'number' && score >= 0 && score <= 1) row.judgeScore.add(score);
    }
  });
  const figures = [...rows.values()].map((row): VariantFigures => {
    const sorted = Float64Array.from(row.latencies).sort();
    return {
      rule: row.rule,
      variant: row.variant,
      requests: row.requests,
      priced: row.cost.n,
      costUsd: row.cost.interval(),
      latencySampled: sorted.length,
      p50Ms: quantileInterval(sorted, 0.5),
      p95Ms: quantileInterval(sorted, 0.95),
      errors: row.errors,
      errorRate: wilson(row.errors, row.requests),
      feedback: Object.fromEntries(row.labels),
      goodShare: wilson(row.labels.get(POSITIVE_LABEL) ?? 0, row.feedback),
      shadows: row.shadows,
      agreement: wilson(row.agreements, row.shadows),
      judgeScore: row.judgeScore.interval(),
    };
  });
  figures.sort((a, b) => (a.rule === b.rule ? a.variant.localeCompare(b.variant) : a.rule.localeCompare(b.rule)));
  return { rows: figures, lines, skipped };
}

function interval(i: Interval | undefined, format: (n: number) => string): string {
  return i === undefined ? '-' : `${format(i.estimate)} [${format(i.low)}, ${format(i.high)}]`;
}

const usd = (n: number): string => n.toFixed(6);
const ms = (n: number): string => n.toFixed(0);
const percent = (n: number): string => `${(n * 100).toFixed(1)}%`;
const score = (n: number): string => n.toFixed(3);

export function formatVariantReport(report: VariantReport): string[] {
  const out = [
    '| rule | variant | requests | cost/request USD | p50 ms | p95 ms | errors | feedback | good | shadow agreement | judge score |',
    '| --- | --- | ---: | ---: | ---: | ---: | ---: | --- | ---: | ---: | ---: |',
  ];
  for (const row of report.rows) {
    const labels = Object.entries(row.feedback).map(([label, count]) => `${label} ${count}`).join(', ') || '-';
    out.push(`| ${row.rule} | ${row.variant} | ${row.requests} | ${interval(row.costUsd, usd)} | ${interval(row.p50Ms, ms)} | ${interval(row.p95Ms, ms)} | ${interval(row.errorRate, percent)} | ${labels} | ${interval(row.goodShare, percent)} | ${interval(row.agreement, percent)} | ${interval(row.judgeScore, score)} |`);
  }
  out.push(
    `${report.lines} lines read, ${report.skipped} not JSON. Each figure is followed by its 95% confidence interval [low, high]: `
    + 'cost is the mean over the requests whose line has a cost (normal interval); p50 and p95 of duration_ms with an order-statistic interval, '
    + `from a uniform sample of at most ${LATENCY_SAMPLE_SIZE} requests per arm; errors (status >= 500 or a stream error), the share of "${POSITIVE_LABEL}" among the feedback `
    + 'and the shadow\'s agreement with Wilson intervals; the judge\'s mean score with a normal interval. Arms whose intervals do not overlap differ; "-": too little data.',
  );
  return out;
}
