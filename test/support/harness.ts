import { once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { AddressInfo } from 'node:net';
import { Writable } from 'node:stream';
import type { FastifyInstance } from 'fastify';
import type { LiveCatalog } from '../../src/catalog/refresher.js';
import { loadConfig, type SignalboxConfig } from '../../src/config/load.js';
import { FakeOpenRouter, type FakeOpenRouterOptions } from '../../src/dev/fake-openrouter.js';
import { compileRulesText } from '../../src/rules-file/loader.js';
import { buildApp, type AppOptions } from '../../src/server/app.js';
import type { KeysSource } from '../../src/server/client-auth.js';
import type { SignalboxMetrics } from '../../src/metrics/metrics.js';
import type { GenerationCosts } from '../../src/upstream/generation-costs.js';
import type { Lifecycle } from '../../src/server/lifecycle.js';
import { createLogger } from '../../src/server/logger.js';
import { TEST_MODELS } from './models.js';
import { withTimeout } from './timeout.js';

export type LogRecord = Record<string, unknown> & { level: number; msg?: string };

/** How long `LogCapture.waitFor` waits by default: a lost line fails its test instead of hanging CI. */
export const LOG_WAIT_TIMEOUT_MS = 10_000;

interface LogWaiter {
  readonly predicate: (r: LogRecord) => boolean;
  readonly resolve: (r: LogRecord) => void;
  readonly timer: NodeJS.Timeout;
}

/**
 * Collects pino's JSON lines; `waitFor` resolves on the first line (past or future) that matches.
 *
 * Waiters sit in one list that `_write` walks, not as one 'record' listener each: tests wait for
 * dozens of lines at once (which tripped Node's MaxListenersExceededWarning), and a waiter whose
 * line never comes is removed when its timeout fails it, so nothing accumulates.
 */
export class LogCapture extends Writable {
  readonly records: LogRecord[] = [];
  /** Every byte pino wrote, for redaction checks. */
  text = '';
  private pending = '';
  private readonly waiters = new Set<LogWaiter>();

  override _write(chunk: Buffer, _enc: BufferEncoding, done: () => void): void {
    const s = chunk.toString('utf8');
    this.text += s;
    this.pending += s;
    let nl: number;
    while ((nl = this.pending.indexOf('\n')) !== -1) {
      const line = this.pending.slice(0, nl);
      this.pending = this.pending.slice(nl + 1);
      if (line.trim() === '') continue;
      const record = JSON.parse(line) as LogRecord;
      this.records.push(record);
      for (const waiter of this.waiters) {
        if (!waiter.predicate(record)) continue;
        this.waiters.delete(waiter);
        clearTimeout(waiter.timer);
        waiter.resolve(record);
      }
    }
    done();
  }

  /** Waiters still pending (a test of the capture itself checks that none leak). */
  get waiting(): number {
    return this.waiters.size;
  }

  /** The first line, past or future, that matches; rejects after `timeoutMs` without one. */
  waitFor(predicate: (r: LogRecord) => boolean, timeoutMs = LOG_WAIT_TIMEOUT_MS): Promise<LogRecord> {
    const found = this.records.find(predicate);
    if (found) return Promise.resolve(found);
    return new Promise((resolve, reject) => {
      const waiter: LogWaiter = {
        predicate,
        resolve,
        timer: setTimeout(() => {
          this.waiters.delete(waiter);
          reject(new Error(`no log line matched within ${timeoutMs} ms (${this.records.length} lines captured)`));
        }, timeoutMs),
      };
      this.waiters.add(waiter);
    });
  }

  /** The per-request line of the request with this id. */
  requestLine(reqId: string, timeoutMs?: number): Promise<LogRecord> {
    return this.waitFor((r) => r.msg === 'request' && r.reqId === reqId, timeoutMs);
  }
}

/** Config as the server would load it from `env`, ignoring any config file in the repository. */
export function testConfig(env: Record<string, string>): SignalboxConfig {
  return loadConfig({
    // No proxy-side retries, cooldowns or later cost lookups unless a test asks: most tests check
    // what one upstream answer does, and count the requests the fake received.
    env: { PORT: '0', LOG_LEVEL: 'debug', RETRY_MAX_ATTEMPTS: '1', COOLDOWN_FAILURES: '0', GENERATION_COSTS: 'false', ...env },
    readFile: () => {
      throw Object.assign(new Error('no config file in tests'), { code: 'ENOENT' });
    },
  });
}

export interface Harness {
  readonly fake: FakeOpenRouter;
  readonly app: FastifyInstance;
  readonly lifecycle: Lifecycle;
  /** Undefined when metrics are off. */
  readonly metrics: SignalboxMetrics | undefined;
  /** The app's later cost lookups (GENERATION_COSTS, on with a server key). */
  readonly generationCosts: GenerationCosts | undefined;
  readonly config: SignalboxConfig;
  readonly logs: LogCapture;
  /** Signalbox's origin, e.g. http://127.0.0.1:41234 (append /v1/...). */
  readonly url: string;
  close(): Promise<void>;
}

export interface HarnessOptions {
  /** Environment settings on top of OPENROUTER_BASE_URL (pointing at the fake) and PORT=0. */
  readonly env?: Record<string, string>;
  readonly fake?: FakeOpenRouterOptions;
  /** A rules file's text (YAML); no rules when absent. */
  readonly rules?: string;
  /** Changes the loaded config: to give the server values its loader refuses (tests of the guards behind it). */
  readonly configure?: (config: SignalboxConfig) => SignalboxConfig;
  /** The model catalog the app holds; an empty one when absent. */
  readonly catalog?: LiveCatalog;
  /** The client keys in force (a LiveKeys of a keys file); absent: SIGNALBOX_API_KEYS, if set. */
  readonly keys?: KeysSource;
  /** The rate limits' store and clock (src/server/app.ts). */
  readonly app?: Pick<AppOptions, 'limits' | 'shadowRandom'>;
}

/** A fake OpenRouter and a Signalbox in front of it, both on port 0. `close()` stops both. */
export async function startHarness(options: HarnessOptions = {}): Promise<Harness> {
  const fake = new FakeOpenRouter({ ...options.fake, extraModels: [...TEST_MODELS, ...(options.fake?.extraModels ?? [])] });
  const baseUrl = await fake.listen();
  // A data directory of its own (spend snapshots, the catalog): never ./data of the checkout, never another test's.
  const dataDir = mkdtempSync(join(tmpdir(), 'signalbox-harness-'));
  const loaded = testConfig({ OPENROUTER_BASE_URL: baseUrl, DATA_DIR: dataDir, ...options.env });
  const config = options.configure ? options.configure(loaded) : loaded;
  const logs = new LogCapture();
  const logger = createLogger(config.log.level, logs);
  const rules = options.rules === undefined ? undefined : { current: compileRulesText(options.rules, 'test-rules.yaml') };
  const { app, lifecycle, metrics, generationCosts } = await buildApp({
    config, logger, ...(rules && { rules }), ...(options.catalog && { catalog: options.catalog }), ...(options.keys && { keys: options.keys }), ...options.app,
  });
  await app.listen({ host: '127.0.0.1', port: 0 });
  lifecycle.markReady();
  const { port } = app.server.address() as AddressInfo;
  return {
    fake, app, lifecycle, metrics, generationCosts, config, logs,
    url: `http://127.0.0.1:${port}`,
    async close() {
      await Promise.allSettled([app.close(), fake.close()]);
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

/**
 * Resolves once an upstream call of `lifecycle` waits before its next attempt (a backoff or a
 * Retry-After). The retry metrics cannot say so: they are recorded when the request is over.
 */
export async function retryWaiting(lifecycle: Lifecycle): Promise<void> {
  const waiting = async (): Promise<void> => {
    while (![...lifecycle.calls].some((call) => call.waiting)) await new Promise((resolve) => setTimeout(resolve, 5));
  };
  await withTimeout(waiting(), 'an upstream call waiting to retry');
}

/** Resolves when `emitter` emits `event` (a typed `once`). */
export async function next<T>(emitter: NodeJS.EventEmitter, event: string): Promise<T> {
  const [value] = (await withTimeout(once(emitter, event), `the '${event}' event`)) as [T];
  return value;
}

export const CHAT_BODY = {
  model: 'openai/gpt-4o-mini',
  messages: [{ role: 'user', content: 'Say hello' }],
} as const;
