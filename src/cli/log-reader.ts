import { createInterface } from 'node:readline';
import type { Readable } from 'node:stream';

/* Reading a request log (the JSON lines Signalbox writes) for `signalbox report`, by rule and model or by variant. */

/** A longer line is no request line of ours (they are a few KiB); it is skipped unread. */
export const MAX_LINE_CHARS = 1024 * 1024;

/** A report's rows, with the lines read and those skipped (not JSON, too long). */
export interface LogReport<Row> {
  readonly rows: readonly Row[];
  readonly lines: number;
  readonly skipped: number;
}

/** A log field as a cost or a duration: a finite number from 0 up, else 0 (a log is any text). */
export function num(v: unknown): number {
  return typeof v === 'number' && Number.isFinite(v) && v >= 0 ? v : 0;
}

/** A log field as a name, when it is a string. */
export function str(v: unknown): string | undefined {
  return typeof v === 'string' ? v : undefined;
}

/**
 * Reads a log line by line and hands each JSON object line to `onRecord`; counts the lines read
 * and those skipped (not JSON, or longer than MAX_LINE_CHARS).
 */
export async function readLogRecords(input: Readable, onRecord: (record: Record<string, unknown>) => void): Promise<{ lines: number; skipped: number }> {
  let lines = 0;
  let skipped = 0;
  const lineReader = createInterface({ input, crlfDelay: Infinity });
  for await (const line of lineReader) {
    lines++;
    if (line.length > MAX_LINE_CHARS || !line.startsWith('{')) {
      skipped++;
      continue;
    }
    let record: unknown;
    try {
      record = JSON.parse(line);
    } catch {
      skipped++;
      continue;
    }
    if (record !== null && typeof record === 'object' && !Array.isArray(record)) onRecord(record as Record<string, unknown>);
  }
  return { lines, skipped };
}
