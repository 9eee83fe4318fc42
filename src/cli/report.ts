import { createReadStream } from 'node:fs';
import type { Readable } from 'node:stream';
import { num, readLogRecords, str, type LogReport } from './log-reader.js';
import { buildVariantReport, formatVariantReport } from './variant-report.js';

/**
 * `signalbox report <log file | ->`: reads a request log (the JSON lines Signalbox writes) and
 * prints, per rule and serving model, the requests, their cost, their baseline cost and what
 * routing saved (docs/metrics.md, "What routing saves"). Streams the log line by line: memory is
 * bounded by the rows, not the file.
 */

/** Distinct (rule, model) rows kept; the rest are summed into one `(other)` row: a log with a million invented model names stays small. */
export const MAX_REPORT_ROWS = 10_000;

interface Row {
  rule: string;
  model: string;
  requests: number;
  costUsd: number;
  /** Of the requests with a baseline: their cost and the baseline's. */
  comparedCostUsd: number;
  baselineUsd: number;
}

export type Report = LogReport<Row>;

export async function buildReport(input: Readable): Promise<Report> {
  const rows = new Map<string, Row>();
  const { lines, skipped } = await readLogRecords(input, (record) => {
    if (record.msg !== 'request') return;
    const rule = str(record.rule) ?? 'unrouted';
    const model = str(record.served_model) ?? str(record.routed_model) ?? str(record.model) ?? 'unknown';
    let key = `${rule}\u0000${model}`;
    let row = rows.get(key);
    if (row === undefined) {
      if (rows.size >= MAX_REPORT_ROWS) {
        key = '(other)\u0000(other)';
        row = rows.get(key);
      }
      if (row === undefined) {
        row = { rule: rows.size >= MAX_REPORT_ROWS ? '(other)' : rule, model: rows.size >= MAX_REPORT_ROWS ? '(other)' : model, requests: 0, costUsd: 0, comparedCostUsd: 0, baselineUsd: 0 };
        rows.set(key, row);
      }
    }
    row.requests++;
    const cost = num(record.cost_usd);
    row.costUsd += cost;
    if (typeof record.baseline_cost_usd === 'number') {
      row.comparedCostUsd += cost;
      row.baselineUsd += num(record.baseline_cost_usd);
    }
  });
  return { rows: [...rows.values()].sort((a, b) => b.costUsd - a.costUsd), lines, skipped };
}

function usd(n: number): string {
  return n.toFixed(6);
}

export function formatReport(report: Report): string[] {
  const out = ['| rule | model | requests | cost USD | baseline USD | saved USD | saved |', '| --- | --- | ---: | ---: | ---: | ---: | ---: |'];
  const total: Row = { rule: 'total', model: '', requests: 0, costUsd: 0, comparedCostUsd: 0, baselineUsd: 0 };
  for (const row of [...report.rows, total]) {
    if (row !== total) {
      total.requests += row.requests;
      total.costUsd += row.costUsd;
      total.comparedCostUsd += row.comparedCostUsd;
      total.baselineUsd += row.baselineUsd;
    }
    const saved = row.baselineUsd - row.comparedCostUsd;
    const compared = row.baselineUsd > 0;
    out.push(`| ${row.rule} | ${row.model} | ${row.requests} | ${usd(row.costUsd)} | ${compared ? usd(row.baselineUsd) : '-'} | ${compared ? usd(saved) : '-'} | ${compared ? `${((saved / row.baselineUsd) * 100).toFixed(1)}%` : '-'} |`);
  }
  out.push(`${report.lines} lines read, ${report.skipped} not JSON; savings compare only the requests that have a baseline cost (baseline: in the rules and a catalog price)`);
  return out;
}

/** The `report` subcommand; resolves to the exit code. */
export async function reportCommand(args: readonly string[], io: { out: (line: string) => void; err: (line: string) => void }, stdin: Readable): Promise<number> {
  const byVariant = args[0] === '--by' && args[1] === 'variant';
  const rest = byVariant ? args.slice(2) : args;
  const json = byVariant && rest[0] === '--json';
  const files = json ? rest.slice(1) : rest;
  if (files.length !== 1 || files[0]!.startsWith('--')) {
    io.err('usage: signalbox report [--by variant [--json]] <request log file | ->');
    return 2;
  }
  const file = files[0]!;
  let input: Readable = stdin;
  if (file !== '-') {
    const stream = createReadStream(file);
    const opened = await new Promise<Error | undefined>((resolve) => {
      stream.once('open', () => resolve(undefined));
      stream.once('error', resolve);
    });
    if (opened) {
      io.err(`signalbox report: cannot read ${file}: ${opened.message}`);
      return 1;
    }
    input = stream;
  }
  if (byVariant) {
    const report = await buildVariantReport(input);
    if (json) io.out(JSON.stringify(report, null, 2));
    else for (const line of formatVariantReport(report)) io.out(line);
    return 0;
  }
  for (const line of formatReport(await buildReport(input))) io.out(line);
  return 0;
}
