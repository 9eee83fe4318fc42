import { Pool } from 'undici';

/**
 * The request of `npm run bench`'s non-streaming runs, shared with bench:profile so that both
 * measure the same work: it matches rule 31 of bench/rules.bench.yaml (metadata and the tier header).
 */
export const CHAT_BODY = JSON.stringify({
  model: 'auto',
  messages: [{ role: 'user', content: 'Summarise the incident report in three bullet points.' }],
  metadata: { customer: { plan: 'enterprise', region: 'eu' } },
});
export const CHAT_HEADERS: Readonly<Record<string, string>> = { 'x-user-tier': 'pro' };

export interface LoadResult {
  readonly requests: number;
  readonly errors: number;
  readonly seconds: number;
  readonly rps: number;
}

/**
 * Closed-loop load: `concurrency` workers on keep-alive connections (no pipelining), each sending
 * the next request as soon as the previous response has been read, for `seconds`, or until
 * `requests` have been sent if that comes first.
 */
export async function closedLoop(origin: string, options: { concurrency: number; seconds: number; requests?: number; path: string; body: string; headers?: Record<string, string> }): Promise<LoadResult> {
  const pool = new Pool(origin, { connections: options.concurrency, pipelining: 1 });
  const headers = { 'content-type': 'application/json', authorization: 'Bearer bench', ...options.headers };
  const deadline = process.hrtime.bigint() + BigInt(Math.round(options.seconds * 1e9));
  let requests = 0;
  let errors = 0;
  let sent = 0;
  const budget = options.requests ?? Infinity;
  const started = process.hrtime.bigint();
  const worker = async (): Promise<void> => {
    while (sent < budget && process.hrtime.bigint() < deadline) {
      sent++;
      try {
        const res = await pool.request({ method: 'POST', path: options.path, headers, body: options.body });
        await res.body.dump();
        if (res.statusCode === 200) requests++;
        else errors++;
      } catch {
        errors++;
      }
    }
  };
  await Promise.all(Array.from({ length: options.concurrency }, worker));
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  await pool.close();
  return { requests, errors, seconds, rps: requests / seconds };
}

export function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}
