import { renameSync } from 'node:fs';
import { writeFileAtomically } from '../atomic-file.js';
import { FileReadError, readRegularFileSync } from '../bounded-file.js';
import type { MemoryLimitStore } from './memory-limit-store.js';

/**
 * The embedded store's spend on disk (issue 16, item 5): without REDIS_URL, spend lives in process
 * memory, so it is written to DATA_DIR/spend.json every SPEND_SNAPSHOT_INTERVAL_MS (when it
 * changed) and on shutdown, and read back at start. Each write is atomic (a temporary file,
 * fsync, rename: src/atomic-file.ts), so a crash leaves the previous snapshot whole: at most one
 * interval's spend is lost. Rate-limit buckets are not saved (they refill within a minute), nor
 * reservations (their requests end with the process).
 */

export const SPEND_SNAPSHOT_FILE = 'spend.json';

/**
 * Largest snapshot read back: a counter is under 150 bytes of JSON, so 64 MiB holds the most a
 * store can have in practice (10,000 keys' counters for the history kept, and their end users); a
 * larger file is no snapshot of ours.
 */
export const MAX_SNAPSHOT_BYTES = 64 * 1024 * 1024;

export interface SnapshotLogger {
  warn(obj: object, msg: string): void;
  info(obj: object, msg: string): void;
}

/** The interval's timer, injected by tests. */
export interface SnapshotTimers {
  every(fn: () => void, ms: number): unknown;
  clear(handle: unknown): void;
}

const REAL_TIMERS: SnapshotTimers = {
  // unref: the snapshot timer never keeps a stopping process alive (shutdown writes its own).
  every: (fn, ms) => setInterval(fn, ms).unref(),
  clear: (handle) => clearInterval(handle as NodeJS.Timeout),
};

export interface SpendSnapshotsOptions {
  readonly store: MemoryLimitStore;
  /** DATA_DIR/spend.json. */
  readonly file: string;
  readonly intervalMs: number;
  readonly logger: SnapshotLogger;
  readonly clock?: () => number;
  readonly timers?: SnapshotTimers;
}

export class SpendSnapshots {
  private readonly options: SpendSnapshotsOptions;
  private readonly clock: () => number;
  private readonly timers: SnapshotTimers;
  private timer: unknown;
  /** The store's version the last snapshot holds (or the store had when this began): nothing is written until it moves. */
  private written: number;
  /** The write in progress: writes never overlap. */
  private writing: Promise<void> | undefined;
  /** A failing streak is logged once. */
  private failing = false;
  private closed = false;

  constructor(options: SpendSnapshotsOptions) {
    this.options = options;
    this.clock = options.clock ?? Date.now;
    this.timers = options.timers ?? REAL_TIMERS;
    this.written = options.store.version;
  }

  /**
   * Reads the last snapshot into the store, at start. A missing file is a first start. A file that
   * cannot be a snapshot (corrupt, too large, not a regular file) is logged, moved aside to
   * `<file>.corrupt` so the next write does not destroy the evidence, and the store starts empty:
   * losing the spend must not keep the proxy from serving.
   */
  load(): void {
    const { file, store, logger } = this.options;
    let text: string;
    try {
      text = readRegularFileSync(file, 'spend snapshot', MAX_SNAPSHOT_BYTES).toString('utf8');
    } catch (err) {
      if (err instanceof FileReadError && err.message.includes('(ENOENT)')) return;
      this.setAside(err);
      return;
    }
    try {
      const { loaded, skipped } = store.restore(JSON.parse(text), this.clock());
      this.written = store.version;
      logger.info({ file, entries: loaded, skipped }, 'spend snapshot loaded');
    } catch (err) {
      this.setAside(err);
    }
  }

  /** Writes every intervalMs while the spend changes. */
  start(): void {
    if (this.timer !== undefined || this.closed) return;
    this.timer = this.timers.every(() => void this.write(), this.options.intervalMs);
  }

  /** Stops the timer and writes a last snapshot (the spend settled until now). */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.timer !== undefined) this.timers.clear(this.timer);
    await this.writing;
    await this.write(true);
  }

  /** Writes the snapshot when the spend changed since the last one; never throws (a failure is logged). */
  write(final = false): Promise<void> {
    if (this.writing !== undefined) return this.writing;
    if ((this.closed && !final) || this.options.store.version === this.written) return Promise.resolve();
    this.writing = this.writeNow().finally(() => {
      this.writing = undefined;
    });
    return this.writing;
  }

  private async writeNow(): Promise<void> {
    const { store, file, logger } = this.options;
    const version = store.version;
    try {
      // 0o600: counters name keys and end users (ids a client chose, emails sometimes).
      await writeFileAtomically(file, JSON.stringify(store.snapshot(this.clock())), 0o600);
      this.written = version;
      if (this.failing) logger.info({ file }, 'spend snapshot written again');
      this.failing = false;
    } catch (err) {
      if (!this.failing) logger.warn({ file, err: String(err) }, 'writing the spend snapshot failed: spend since the last snapshot would be lost in a restart');
      this.failing = true;
    }
  }

  private setAside(err: unknown): void {
    const { file, logger } = this.options;
    let movedTo: string | undefined = `${file}.corrupt`;
    try {
      renameSync(file, movedTo);
    } catch {
      movedTo = undefined;
    }
    logger.warn({ file, moved_to: movedTo, err: err instanceof Error ? err.message : String(err) }, 'the spend snapshot cannot be read: starting with no spend');
  }
}
