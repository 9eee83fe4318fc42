import { EventEmitter } from 'node:events';
import { request as httpRequest, type IncomingMessage } from 'node:http';
import { request as httpsRequest } from 'node:https';
import type { Logger } from 'pino';
import { type Catalog, parseCatalog } from './catalog.js';
import { CatalogStore, MAX_CATALOG_BYTES, readBoundedFile } from './store.js';

/** A fetch of the catalog that takes longer than this (connect to last byte) fails. */
export const CATALOG_FETCH_TIMEOUT_MS = 30_000;
/** Each refresh waits CATALOG_REFRESH_MS ± this fraction of it. */
export const CATALOG_REFRESH_JITTER = 0.1;

export type CatalogRefreshResult = 'success' | 'failure';

export interface CatalogRefreshEvent {
  readonly result: CatalogRefreshResult;
  /** `upstream`, `file` or `disk` (the stored catalog read at start). */
  readonly source: 'upstream' | 'file' | 'disk';
  readonly error?: string;
}

/**
 * The catalog in force: what later stages read (`current`, undefined until one was loaded), like
 * `RulesSource` for the rules. A refresh swaps the reference; a failed one keeps the old catalog.
 * Emits a `refresh` event (`CatalogRefreshEvent`) per attempt.
 */
export class LiveCatalog extends EventEmitter {
  current: Catalog | undefined;
  /** Unix milliseconds when `current` was fetched (or its file read). */
  fetchedAt: number | undefined;

  /** Seconds since the catalog in force was fetched; +Inf while there is none, so an age alert fires. */
  ageSeconds(now: number): number {
    return this.fetchedAt === undefined ? Number.POSITIVE_INFINITY : Math.max(0, (now - this.fetchedAt) / 1000);
  }

  replace(catalog: Catalog, fetchedAt: number): void {
    this.current = catalog;
    this.fetchedAt = fetchedAt;
  }
}

/** The clock and timers of the refresher, injected by tests. */
export interface RefreshClock {
  now(): number;
  setTimeout(fn: () => void, ms: number): { unref?: () => unknown };
  clearTimeout(timer: unknown): void;
  /** In [0, 1): the jitter. */
  random(): number;
}

const SYSTEM_CLOCK: RefreshClock = {
  now: () => Date.now(),
  setTimeout: (fn, ms) => setTimeout(fn, ms),
  clearTimeout: (timer) => clearTimeout(timer as NodeJS.Timeout),
  random: () => Math.random(),
};

export type CatalogSource =
  | { readonly kind: 'upstream'; readonly baseUrl: string; readonly authorization: string | undefined }
  | { readonly kind: 'file'; readonly path: string };

export interface CatalogRefresherOptions {
  readonly source: CatalogSource;
  /** Where the last good upstream catalog is kept; none: not kept. */
  readonly store: CatalogStore | undefined;
  readonly refreshMs: number;
  readonly logger: Logger;
  readonly clock?: RefreshClock;
}

/**
 * Keeps a `LiveCatalog` current: at start the stored catalog (when fetching from the upstream),
 * then a fetch, then one every CATALOG_REFRESH_MS. With CATALOG_FILE the file is read instead, on
 * the same schedule, and nothing is fetched. Nothing here throws into the caller or an event
 * loop: every failure is logged, counted by the `refresh` event and leaves the catalog in force.
 */
export class CatalogRefresher {
  readonly catalog = new LiveCatalog();
  private readonly options: CatalogRefresherOptions;
  private readonly clock: RefreshClock;
  private timer: unknown;
  private running: Promise<void> | undefined;
  private inFlight: { destroy(): void } | undefined;
  private closed = false;

  constructor(options: CatalogRefresherOptions) {
    this.options = options;
    this.clock = options.clock ?? SYSTEM_CLOCK;
  }

  /** Loads the stored catalog, then refreshes; resolves after that first refresh, never rejects. Start-up must not wait for it. */
  async start(): Promise<void> {
    if (this.options.source.kind === 'upstream') await this.loadStored();
    await this.refresh();
  }

  /** One refresh now (the timer calls this); the next is scheduled when it settles. One at a time: a call during a refresh gets that refresh. */
  refresh(): Promise<void> {
    if (this.closed) return Promise.resolve();
    this.running ??= this.refreshOnce().finally(() => {
      this.running = undefined;
      this.schedule();
    });
    return this.running;
  }

  private async refreshOnce(): Promise<void> {
    const source = this.options.source;
    try {
      const fetchedAt = this.clock.now();
      const raw = source.kind === 'file'
        ? await readBoundedFile(source.path, MAX_CATALOG_BYTES)
        : await this.fetchUpstream(source.baseUrl, source.authorization);
      const catalog = usableCatalog(JSON.parse(raw));
      if (this.closed) return;
      this.catalog.replace(catalog, fetchedAt);
      this.emitRefresh({ result: 'success', source: source.kind });
      this.options.logger.info({ models: catalog.size, skipped: catalog.skipped, skipped_overrides: catalog.skippedOverrides, source: source.kind }, 'model catalog loaded');
      if (source.kind === 'upstream' && this.options.store) await this.save(raw, fetchedAt);
    } catch (err) {
      if (!this.closed) this.failed(source.kind, err);
    }
  }

  close(): void {
    this.closed = true;
    if (this.timer !== undefined) this.clock.clearTimeout(this.timer);
    this.timer = undefined;
    this.inFlight?.destroy();
  }

  /**
   * The next refresh, CATALOG_REFRESH_MS ± 10% from now. The jitter spreads the replicas of a
   * deployment (restarted together by a rollout) over minutes, so they do not fetch the whole
   * catalog from OpenRouter in the same second every hour.
   */
  private schedule(): void {
    if (this.closed) return;
    // A refresh asked for by hand (not by the timer) replaces the pending one: never two timers.
    if (this.timer !== undefined) this.clock.clearTimeout(this.timer);
    const jitter = (this.clock.random() * 2 - 1) * CATALOG_REFRESH_JITTER;
    const timer = this.clock.setTimeout(() => void this.refresh(), Math.round(this.options.refreshMs * (1 + jitter)));
    timer.unref?.();
    this.timer = timer;
  }

  private async loadStored(): Promise<void> {
    const store = this.options.store;
    if (!store) return;
    try {
      const stored = await store.load();
      if (stored === undefined || this.closed) return;
      const catalog = usableCatalog(stored.response);
      this.catalog.replace(catalog, stored.fetchedAt);
      this.emitRefresh({ result: 'success', source: 'disk' });
      this.options.logger.info({ models: catalog.size, fetched_at: new Date(stored.fetchedAt).toISOString(), file: store.path }, 'model catalog loaded from disk');
    } catch (err) {
      this.failed('disk', err);
    }
  }

  private async save(raw: string, fetchedAt: number): Promise<void> {
    try {
      await this.options.store!.save(raw, fetchedAt);
    } catch (err) {
      // The catalog in memory is fine; only the next restart without network loses it.
      this.options.logger.warn({ err: errorMessage(err), file: this.options.store!.path }, 'model catalog not saved to disk');
    }
  }

  private failed(source: CatalogRefreshEvent['source'], err: unknown): void {
    const error = errorMessage(err);
    this.emitRefresh({ result: 'failure', source, error });
    this.options.logger.warn(
      { source, error, models: this.catalog.current?.size ?? 0, age_s: Math.round(this.catalog.ageSeconds(this.clock.now())) },
      'model catalog refresh failed: the catalog in force is kept',
    );
  }

  /** A listener that throws must not break the refresher (nor escape into a timer). */
  private emitRefresh(event: CatalogRefreshEvent): void {
    try {
      this.catalog.emit('refresh', event);
    } catch (err) {
      this.options.logger.error({ err }, 'model catalog refresh listener failed');
    }
  }

  /** `GET {base}/models`: the body as text, at most MAX_CATALOG_BYTES, within CATALOG_FETCH_TIMEOUT_MS. */
  private fetchUpstream(baseUrl: string, authorization: string | undefined): Promise<string> {
    return new Promise((resolve, reject) => {
      const url = new URL(`${baseUrl.replace(/\/+$/, '')}/models`);
      const headers: Record<string, string> = { accept: 'application/json' };
      if (authorization !== undefined) headers.authorization = authorization;
      const send = url.protocol === 'https:' ? httpsRequest : httpRequest;
      const req = send(url, { method: 'GET', headers, timeout: CATALOG_FETCH_TIMEOUT_MS });
      this.inFlight = req;
      const deadline = setTimeout(() => req.destroy(new Error(`no complete answer within ${CATALOG_FETCH_TIMEOUT_MS} ms`)), CATALOG_FETCH_TIMEOUT_MS);
      deadline.unref();
      let settled = false;
      const settle = (err: Error | undefined, body?: string): void => {
        if (settled) return;
        settled = true;
        clearTimeout(deadline);
        this.inFlight = undefined;
        if (err) reject(err);
        else resolve(body!);
      };
      req.on('timeout', () => req.destroy(new Error(`no answer within ${CATALOG_FETCH_TIMEOUT_MS} ms`)));
      req.on('error', (err) => settle(err));
      req.on('response', (res: IncomingMessage) => {
        if (res.statusCode !== 200) {
          res.resume();
          req.destroy(new Error(`upstream answered ${res.statusCode}`));
          return;
        }
        const chunks: Buffer[] = [];
        let bytes = 0;
        res.on('data', (chunk: Buffer) => {
          bytes += chunk.length;
          if (bytes > MAX_CATALOG_BYTES) {
            req.destroy(new Error(`response larger than ${MAX_CATALOG_BYTES} bytes`));
            return;
          }
          chunks.push(chunk);
        });
        res.on('error', (err) => settle(err));
        res.on('end', () => settle(undefined, Buffer.concat(chunks).toString('utf8')));
      });
      req.end();
    });
  }
}

/** The catalog of a response, or an error when it has no usable model (an error page, `{}`): the old one is better. */
function usableCatalog(json: unknown): Catalog {
  const catalog = parseCatalog(json);
  if (catalog.size === 0) throw new Error(`no usable model in the response (${catalog.skipped} entries skipped)`);
  return catalog;
}

function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
