/**
 * `signalbox spend` and `signalbox spend reset <name>`: the admin API (docs/keys-and-budgets.md#admin-api)
 * of a running server, in a terminal. The admin key is read from ADMIN_KEY in the environment,
 * never from a flag: flags show in `ps` and in shell history.
 */
import type { CliIo } from './commands.js';

export const SPEND_USAGE = `usage:
  signalbox spend [--by key|team|user|model|day] [--from YYYY-MM-DD] [--to YYYY-MM-DD] [--key NAME] [--url URL] [--json]
                                                    spend of a running server (GET /admin/spend; ADMIN_KEY from the environment)
  signalbox spend reset <name> [--period day|month|all] [--url URL] [--json]
                                                    zero a key's spend of today and/or this month`;

const DEFAULT_URL = 'http://127.0.0.1:8080';
/** A server that accepts the connection but never answers does not hang the terminal. */
const TIMEOUT_MS = 10_000;
/** Largest answer read: far above any listing (10,000 keys), and a server that streams forever is not read forever. */
const MAX_ANSWER_BYTES = 32 * 1024 * 1024;

const SPEND_FLAGS = ['--by', '--from', '--to', '--key', '--url'];
const RESET_FLAGS = ['--period', '--url'];

/** `--flag value` pairs and `--json`; undefined on anything else (a usage error). */
function parseFlags(args: readonly string[], allowed: readonly string[]): { flags: Record<string, string>; json: boolean } | undefined {
  const flags: Record<string, string> = {};
  let json = false;
  for (let i = 0; i < args.length; i++) {
    const flag = args[i]!;
    if (flag === '--json' && !json) {
      json = true;
      continue;
    }
    const value = args[i + 1];
    if (!allowed.includes(flag) || value === undefined || flag.slice(2) in flags) return undefined;
    flags[flag.slice(2)] = value;
    i++;
  }
  return { flags, json };
}

export async function spendCommand(args: readonly string[], io: CliIo): Promise<number> {
  const reset = args[0] === 'reset';
  const name = reset ? args[1] : undefined;
  const parsed = reset ? (name === undefined || name.startsWith('--') ? undefined : parseFlags(args.slice(2), RESET_FLAGS)) : parseFlags(args, SPEND_FLAGS);
  if (parsed === undefined) {
    io.err(SPEND_USAGE);
    return 2;
  }
  const adminKey = io.env.ADMIN_KEY;
  if (adminKey === undefined || adminKey === '') {
    io.err('signalbox spend: set ADMIN_KEY in the environment to the server\'s admin key (it is never read from a flag: flags show in ps and shell history)');
    return 2;
  }
  const { flags, json } = parsed;
  let base: URL;
  try {
    base = new URL(flags.url ?? DEFAULT_URL);
    if (base.protocol !== 'http:' && base.protocol !== 'https:') throw new Error('not http');
  } catch {
    io.err(`signalbox spend: --url must be an http:// or https:// URL, got ${JSON.stringify(flags.url)}`);
    return 2;
  }
  const path = reset ? `/admin/keys/${encodeURIComponent(name!)}/reset` : '/admin/spend';
  const url = new URL(path, base);
  for (const [flag, value] of Object.entries(flags)) if (flag !== 'url') url.searchParams.set(flag, value);
  const answer = await call(url, reset ? 'POST' : 'GET', adminKey, io);
  if (answer === undefined) return 1;
  if (json) io.out(JSON.stringify(answer, null, 2));
  else if (reset) {
    const done = answer as { key: string; reset: string[] };
    io.out(`reset the spend of ${printable(done.key)} for ${done.reset.map(printable).join(' and ')}`);
  } else printSpend(answer as SpendAnswer, io);
  return 0;
}

/** The JSON answer, or undefined after saying on stderr why there is none. */
async function call(url: URL, method: string, adminKey: string, io: CliIo): Promise<unknown> {
  let res: Response;
  let text: string;
  try {
    res = await fetch(url, { method, headers: { authorization: `Bearer ${adminKey}` }, signal: AbortSignal.timeout(TIMEOUT_MS), redirect: 'error' });
    text = await boundedText(res);
  } catch (err) {
    const e = err as Error & { cause?: { code?: string; message?: string } };
    const why = e.name === 'TimeoutError' ? `no answer within ${TIMEOUT_MS / 1000} s` : (e.cause?.code ?? e.cause?.message ?? e.message);
    io.err(`signalbox spend: cannot reach Signalbox at ${url.origin} (${why}): is the server running there? (--url)`);
    return undefined;
  }
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    io.err(`signalbox spend: ${url.origin} answered ${res.status} with something that is not JSON: is it a Signalbox server?`);
    return undefined;
  }
  if (res.ok) return body;
  const error = (body as { error?: { code?: unknown; message?: unknown } } | null)?.error;
  const code = typeof error?.code === 'string' ? error.code : undefined;
  if (code === 'invalid_admin_key') io.err(`signalbox spend: the server refused ADMIN_KEY (401 invalid_admin_key): it is not the server's admin key`);
  else if (code === 'not_found' && res.status === 404) io.err(`signalbox spend: ${url.origin} has no admin API: ADMIN_KEY is not set on the server`);
  else io.err(printable(`signalbox spend: ${res.status} ${code ?? ''}: ${typeof error?.message === 'string' ? error.message : text.slice(0, 500)}`));
  return undefined;
}

async function boundedText(res: Response): Promise<string> {
  const chunks: Uint8Array[] = [];
  let length = 0;
  if (res.body !== null) {
    for await (const chunk of res.body) {
      length += chunk.length;
      if (length > MAX_ANSWER_BYTES) throw new Error(`answer larger than ${MAX_ANSWER_BYTES} bytes`);
      chunks.push(chunk);
    }
  }
  return Buffer.concat(chunks).toString('utf8');
}

interface SpendRow { readonly [column: string]: string | number }
interface SpendAnswer {
  readonly by: string;
  readonly timezone: string;
  readonly from: string;
  readonly to: string;
  readonly rows: readonly SpendRow[];
  readonly month: { readonly month: string; readonly rows: readonly SpendRow[] };
}

/**
 * A name as the terminal should see it: end user ids are the clients' own bytes (USER_SOURCE),
 * and a control character (an escape sequence) would be the terminal's to obey.
 */
// eslint-disable-next-line no-control-regex -- matching control characters is the point
const CONTROL = /[\u0000-\u001f\u007f-\u009f]/g;
const printable = (value: unknown): string => String(value).replace(CONTROL, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);

/** USD with 6 decimals: a micro-dollar is below any one request's cost that matters. */
const money = (value: unknown): string => (typeof value === 'number' ? value.toFixed(6) : String(value));

/** Rows as an aligned table: the name column left-aligned, the amounts right-aligned. */
function table(by: string, rows: readonly SpendRow[]): string[] {
  const lines = [[by, 'spent_usd', 'reserved_usd'], ...rows.map((r) => [printable(r[by]), money(r.spent_usd), money(r.reserved_usd)])];
  const widths = [0, 1, 2].map((i) => Math.max(...lines.map((l) => l[i]!.length)));
  return lines.map((l) => `${l[0]!.padEnd(widths[0]!)}  ${l[1]!.padStart(widths[1]!)}  ${l[2]!.padStart(widths[2]!)}`);
}

function printSpend(answer: SpendAnswer, io: CliIo): void {
  io.out(`spend by ${answer.by}, ${answer.from === answer.to ? answer.from : `${answer.from} to ${answer.to}`} (${answer.timezone})`);
  for (const line of answer.rows.length > 0 ? table(answer.by, answer.rows) : ['(none)']) io.out(line);
  io.out('');
  io.out(`this month, ${answer.month.month}`);
  const monthBy = answer.by === 'day' ? 'month' : answer.by;
  for (const line of answer.month.rows.length > 0 ? table(monthBy, answer.month.rows) : ['(none)']) io.out(line);
}
