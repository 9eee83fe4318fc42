import { readFileSync } from 'node:fs';
import type { IncomingHttpHeaders } from 'node:http';
import { connect } from 'node:net';
import type { MainProcess } from './main-process.js';

/**
 * The hostile-input suite (test/hostile/, docs/hostile.md). CI runs a small corpus from a fixed
 * seed so that a red run can be repeated exactly; `HOSTILE_RUNS=5000 npm test -- hostile` runs a
 * long one locally, and `HOSTILE_SEED=<n>` replays another.
 */
export const HOSTILE_SEED = Number(process.env.HOSTILE_SEED ?? 1);
export const HOSTILE_RUNS = Number(process.env.HOSTILE_RUNS ?? 150);

/** The server-side OpenRouter key the child runs with: it must never reach a client or a log. */
export const SERVER_KEY = 'sk-or-hostile-secret';

/**
 * The child's resident memory ceiling (issue 12). An idle proxy holds about 90 MiB; a body near
 * the 20 MiB limit costs about five times its size while in flight, and freed buffers go back to
 * the system slowly (two concurrent 15 MB model names measured a 290 MiB peak). The ceiling
 * catches unbounded growth: the paths the issue found reached 1 to 2.4 GB. See docs/hostile.md.
 */
export const RSS_CEILING_BYTES = 384 * 1024 * 1024;

/** VmRSS of a process, in bytes, from /proc (Linux, as in CI); undefined once the process is gone. */
export function rssOf(pid: number): number | undefined {
  try {
    const match = /^VmRSS:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${pid}/status`, 'latin1'));
    return match ? Number(match[1]) * 1024 : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Samples the child's RSS every 50 ms for the whole test and keeps the peak. A child that crosses
 * the ceiling is killed at once: the suite then fails on "not alive" and on the peak, and an
 * unbounded buffer cannot take gigabytes of a shared CI machine first.
 */
export class RssWatch {
  peak = 0;
  private readonly timer: NodeJS.Timeout;

  constructor(private readonly main: MainProcess) {
    this.timer = setInterval(() => this.sample(), 50);
    this.timer.unref();
  }

  sample(): number {
    const pid = this.main.child.pid;
    const rss = pid === undefined ? undefined : rssOf(pid);
    if (rss !== undefined && rss > this.peak) this.peak = rss;
    if (rss !== undefined && rss > RSS_CEILING_BYTES) this.main.child.kill('SIGKILL');
    return rss ?? 0;
  }

  stop(): void {
    clearInterval(this.timer);
  }
}

/** Empty when the child is alive, answers /healthz, and stayed under the RSS ceiling; else what is wrong. */
export async function liveness(main: MainProcess, origin: string, watch: RssWatch): Promise<string[]> {
  const problems: string[] = [];
  watch.sample();
  if (main.child.exitCode !== null || main.child.signalCode !== null) {
    problems.push(`the proxy died (exit ${main.child.exitCode ?? main.child.signalCode}); stderr tail: ${main.stderr().slice(-2000)}`);
  } else {
    try {
      const res = await fetch(`${origin}/healthz`, { signal: AbortSignal.timeout(5_000) });
      if (res.status !== 200) problems.push(`/healthz answered ${res.status}`);
      await res.arrayBuffer();
    } catch (err) {
      // Most often the process is dying: give it a moment to exit, so the report shows why.
      await Promise.race([main.exit, new Promise((resolve) => setTimeout(resolve, 2_000).unref())]);
      const died = main.child.exitCode !== null || main.child.signalCode !== null;
      problems.push(died
        ? `the proxy died (exit ${main.child.exitCode ?? main.child.signalCode}); stderr tail: ${main.stderr().slice(-1500)}`
        : `/healthz did not answer: ${String(err)}`);
    }
  }
  if (watch.peak > RSS_CEILING_BYTES) {
    problems.push(`RSS peaked at ${(watch.peak / 1048576).toFixed(0)} MiB, over the ${RSS_CEILING_BYTES / 1048576} MiB ceiling`);
  }
  return problems;
}

export interface SeenResponse {
  readonly status: number;
  readonly headers: IncomingHttpHeaders | Record<string, string>;
  readonly body: Buffer;
}

/**
 * Why a response is not acceptable, or undefined when it is: a success, the proxy's own error in
 * OpenAI's envelope `{"error":{"message","type","code"}}` or, on /v1/messages, Anthropic's
 * `{"type":"error","error":{"type","message"}}` (never a 500 internal_error, which means
 * a client's bytes broke the proxy), or an upstream error relayed (OpenRouter's numeric `code`, or
 * a non-JSON body the upstream wrote).
 * Every response carries x-request-id, and none carries the server key.
 */
export function verdict(res: SeenResponse): string | undefined {
  const raw = `${JSON.stringify(res.headers)}\n${res.body.toString('latin1')}`;
  if (raw.includes(SERVER_KEY)) return 'the server key is in the response';
  if (!res.headers['x-request-id']) return 'no x-request-id';
  if (res.status >= 200 && res.status < 300) return undefined;
  if (res.status < 400) return `unexpected status ${res.status}`;
  let body: unknown;
  try {
    body = JSON.parse(res.body.toString('utf8'));
  } catch {
    // The proxy's own errors are always JSON envelopes; an upstream error is relayed as the upstream
    // wrote it (a text/plain 418 included). `x-signalbox-attempts` says an upstream answered.
    if (res.headers['x-signalbox-attempts'] !== undefined && !/json/i.test(String(res.headers['content-type'] ?? ''))) return undefined;
    return 'an error whose body is not JSON';
  }
  const error = (body as { error?: Record<string, unknown> } | null)?.error;
  if (typeof error !== 'object' || error === null || typeof error.message !== 'string') return 'an error outside any envelope';
  // Anthropic's envelope (the Messages API's clients, ours and the upstream's): `type` on the error, the code leading the message.
  if ((body as { type?: unknown }).type === 'error') {
    if (typeof error.type !== 'string') return 'an Anthropic error envelope without a string type';
    if (res.status >= 500 && error.message.startsWith('internal_error:')) return 'internal_error: the request broke the proxy';
    return undefined;
  }
  if (typeof error.code === 'number') return undefined; // relayed from upstream (OpenRouter's shape)
  if (typeof error.type !== 'string' || typeof error.code !== 'string') return 'an error envelope without string type and code';
  if (res.status >= 500 && error.type === 'internal_error') return 'internal_error: the request broke the proxy';
  return undefined;
}

/** What one raw connection got back. */
export interface RawExchange {
  readonly bytes: Buffer;
  /** `closed`: the server closed; `timeout`: still open after the wait (then closed by us); `error`: reset. */
  readonly end: 'closed' | 'timeout' | 'error';
}

/**
 * Writes `chunks` on a fresh connection (each a separate write), half-closes it when asked, and
 * collects every byte until the server closes or `waitMs` passes.
 */
export function rawExchange(port: number, chunks: readonly (string | Buffer)[], options: { halfClose?: boolean; waitMs?: number } = {}): Promise<RawExchange> {
  return new Promise((resolve) => {
    const socket = connect({ port, host: '127.0.0.1', allowHalfOpen: true });
    const received: Buffer[] = [];
    let settled = false;
    const finish = (end: RawExchange['end']): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.destroy();
      resolve({ bytes: Buffer.concat(received), end });
    };
    const timer = setTimeout(() => finish('timeout'), options.waitMs ?? 5_000);
    socket.on('data', (chunk: Buffer) => received.push(chunk));
    socket.on('end', () => finish('closed'));
    socket.on('close', () => finish('closed'));
    socket.on('error', () => finish('error'));
    socket.once('connect', () => {
      for (const chunk of chunks) socket.write(chunk);
      if (options.halfClose) socket.end();
    });
  });
}

/** At most `max` characters of `s`, for failure messages that stay readable. */
export function clip(s: string, max = 600): string {
  return s.length <= max ? s : `${s.slice(0, max)}... (${s.length} chars)`;
}
