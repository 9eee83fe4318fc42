import { createRequire } from 'node:module';
import { pino, type DestinationStream, type Logger } from 'pino';
import type { LogFormat, LogLevel } from '../config/load.js';
import { ConfigError } from '../errors.js';
import { TimedBatch } from './timed-batch.js';

/**
 * Keys whose values never reach a log line, wherever a logged object carries them. Signalbox never
 * logs headers or config secrets on purpose; this is the second line of defence for a stray object
 * (an error's cause, a debug dump).
 */
const SECRET_KEYS = new Set([
  'authorization', 'proxy-authorization', 'cookie', 'set-cookie', 'x-api-key',
  'api_key', 'apikey', 'keys', 'openrouter_api_key', 'signalbox_api_keys', 'password', 'token',
]);
const CENSOR = '[redacted]';

/** A copy of `value` with every secret key's value censored, at any depth (bounded). */
function scrub(value: unknown, depth = 0): unknown {
  if (value === null || typeof value !== 'object' || depth > 8) return value;
  if (Array.isArray(value)) return value.map((v) => scrub(v, depth + 1));
  const out: Record<string, unknown> = {};
  for (const [key, v] of Object.entries(value)) out[key] = SECRET_KEYS.has(key.toLowerCase()) ? CENSOR : scrub(v, depth + 1);
  return out;
}

const censor = (): string => CENSOR;

/**
 * Redaction through serializers, not pino's `redact` paths: a serializer runs only when a logged
 * object has that top-level key, so the request line (which has none of them) costs nothing,
 * where wildcard redact paths walked every line (measured at 4% of the proxy's CPU).
 */
const SERIALIZERS = {
  err: (err: Error) => scrub(pino.stdSerializers.err(err)),
  headers: scrub, req: scrub, res: scrub, config: scrub, upstream: scrub, options: scrub,
  authorization: censor, cookie: censor, api_key: censor, apiKey: censor, keys: censor,
};

/** Lines wait at most this long before they are written... */
const LOG_FLUSH_INTERVAL_MS = 50;
/** ...or until this many characters are waiting. */
const LOG_FLUSH_CHARS = 64 * 1024;

/**
 * Standard output, batched in front of pino's own synchronous destination: lines are joined and
 * handed to one write at most every 50 ms (or sooner past 64 KiB). A write per line measured at
 * more proxy CPU per request than building the line itself. pino's `minLength` + `periodicFlush`
 * (sonic-boom) was measured as the alternative (issue 13): about 2 µs more per request line
 * (sonic-boom's per-line byte counting), and an idle zero-byte write every period; this batch
 * stays, and `flushLogOnCrash` writes what waits when the process exits or crashes.
 */
class BatchedStdout implements DestinationStream {
  private readonly sink = pino.destination({ dest: 1, sync: true });
  private readonly lines = new TimedBatch<string>({
    intervalMs: LOG_FLUSH_INTERVAL_MS,
    maxWeight: LOG_FLUSH_CHARS,
    weigh: (line) => line.length,
    flush: (lines) => this.sink.write(lines.length === 1 ? lines[0]! : lines.join('')),
  });

  write(line: string): void {
    this.lines.add(line);
  }

  flushSync(): void {
    this.lines.flush();
  }
}

/** pino-pretty's line formatter: one JSON line in, readable text out. */
type PrettyFormatter = (line: string) => string;

/**
 * Loads pino-pretty, a dev dependency: it exists in a checkout after `npm ci`, not in the
 * production image. Called only for LOG_FORMAT=pretty, so the JSON format never loads it.
 * `load` is injectable so that the missing-module case can be tested.
 */
export function loadPrettyFormatter(colorize: boolean, load: (id: string) => unknown = createRequire(import.meta.url)): PrettyFormatter {
  let pretty: { prettyFactory(options: Record<string, unknown>): PrettyFormatter };
  try {
    pretty = load('pino-pretty') as typeof pretty;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'MODULE_NOT_FOUND') throw err;
    throw new ConfigError('invalid configuration', [
      'LOG_FORMAT (log.format) is pretty, but pino-pretty is not installed: it is a dev dependency, for a terminal ' +
        'in a checkout (run `npm ci`); the container image has no dev dependencies, use LOG_FORMAT=json there',
    ]);
  }
  return pretty.prettyFactory({ colorize, singleLine: true, translateTime: 'SYS:HH:MM:ss.l', ignore: 'service' });
}

/**
 * LOG_FORMAT=pretty: each JSON line pino (or `writeLine`) produces is rewritten for a person, then
 * handed to the real destination. Formatting costs far more than the JSON line, which is why it is
 * for a terminal, not for production.
 */
class PrettyLines implements DestinationStream {
  constructor(
    private readonly format: PrettyFormatter,
    private readonly sink: DestinationStream & { flushSync?: () => void },
  ) {}

  write(line: string): void {
    this.sink.write(this.format(line));
  }

  flushSync(): void {
    this.sink.flushSync?.();
  }
}

/**
 * The process logger. Without a destination it writes to stdout in batches (see above); install
 * `flushLogOnCrash` (src/main.ts does) so that no line is lost when the process ends. Throws a ConfigError when the pretty
 * format is asked for and pino-pretty is not installed.
 */
export function createLogger(level: LogLevel, destination?: DestinationStream, format: LogFormat = 'json'): Logger {
  const sink = destination ?? new BatchedStdout();
  return pino(
    {
      level,
      base: { service: 'signalbox' },
      serializers: SERIALIZERS,
      // pino's default epoch-milliseconds `time`: formatting an ISO date on every line costs more
      // than the rest of the timestamp handling together, and log shippers read either.
    },
    // Colours only for a terminal: escape codes in a file or a test's stream are noise.
    format === 'pretty' ? new PrettyLines(loadPrettyFormatter(destination === undefined && process.stdout.isTTY === true), sink) : sink,
  );
}

/** Writes out what the destination still buffers. */
export function flushLogger(logger: Logger): void {
  try {
    logger.flush();
    const stream = (logger as unknown as Record<symbol, unknown>)[pino.symbols.streamSym] as { flushSync?: () => void } | undefined;
    stream?.flushSync?.();
  } catch {
    // nothing left to flush, or stdout is gone
  }
}

/**
 * Flushes the log when the process ends, so that a crash loses no line already recorded (pino v10
 * deprecates `pino.final`; the destination's `flushSync` is what it did). `uncaughtExceptionMonitor`
 * observes without changing Node's handling: the stack still goes to stderr and the exit code is
 * still 1. Under Node's default `--unhandled-rejections=throw` an unhandled rejection arrives here
 * too, with origin `unhandledRejection`. `exit` covers every `process.exit()`. A listener that
 * threw would replace the original error, so nothing here may throw.
 */
export function flushLogOnCrash(logger: Logger): void {
  process.on('uncaughtExceptionMonitor', (err, origin) => {
    try {
      logger.fatal({ err, origin }, 'crashed');
    } catch {
      // a logged error that cannot be serialized must not hide the crash
    }
    flushLogger(logger);
  });
  process.on('exit', () => flushLogger(logger));
}

type HotLevel = 'debug' | 'info' | 'warn';

/**
 * Writes one line in exactly pino's layout (`{"level":30,"time":...,<bindings>,...fields,"msg":...}`)
 * with a single JSON.stringify, for the per-request line: pino serializes an object key by key
 * (escaping checks, serializer lookups) at several times the cost, which showed as the largest
 * part of the logging cost per request. The fields must be plain JSON values and need none of the
 * serializers (the request line carries no secrets by construction). Anything that is not a plain
 * pino logger writing to a stream falls back to the ordinary call.
 */
export function writeLine(logger: Logger, level: HotLevel, fields: Record<string, unknown>, msg: string): void {
  const internals = logger as unknown as Record<symbol, unknown>;
  const stream = internals[pino.symbols.streamSym] as { write(line: string): unknown; [key: symbol]: unknown } | undefined;
  const bindings = internals[pino.symbols.chindingsSym];
  if (stream === undefined || typeof bindings !== 'string' || stream[pino.symbols.needsMetadataGsym] === true) {
    logger[level](fields, msg);
    return;
  }
  const body = JSON.stringify(fields);
  const inner = body.length > 2 ? `,${body.slice(1, -1)}` : '';
  stream.write(`{"level":${logger.levels.values[level]},"time":${Date.now()}${bindings}${inner},"msg":${JSON.stringify(msg)}}\n`);
}
