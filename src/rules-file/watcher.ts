import { watch, statSync, type FSWatcher } from 'node:fs';
import { basename, dirname } from 'node:path';

export interface RulesWatcherOptions {
  /** Quiet time after the last change event before reloading. */
  readonly debounceMs: number;
  /** Interval of the stat() poll that backs up change events; 0 disables it. */
  readonly pollIntervalMs: number;
}

/**
 * Calls `onChange` after the rules file may have changed, surviving the ways files get replaced:
 *
 * - editors that save by writing a temporary file and renaming it over the original (a watch on
 *   the file itself would follow the old inode), hence a watch on the directory;
 * - Kubernetes ConfigMap volumes, which swap a `..data` symlink to a new directory
 *   (https://kubernetes.io/docs/concepts/configuration/configmap/#mounted-configmaps-are-updated-automatically);
 * - writes in several pieces, hence a debounce: one reload once the directory has been quiet;
 * - filesystems whose change events get lost (network mounts, some bind mounts), hence a poll of
 *   the file's stat (following symlinks).
 *
 * The consumer compares content hashes, so a spurious call costs one read of a small file.
 */
export class RulesWatcher {
  private readonly file: string;
  private readonly onChange: (trigger: string) => void;
  private readonly options: RulesWatcherOptions;
  private watcher: FSWatcher | undefined;
  private poller: NodeJS.Timeout | undefined;
  private debounce: NodeJS.Timeout | undefined;
  private lastStat: string;

  constructor(file: string, onChange: (trigger: string) => void, options: RulesWatcherOptions) {
    this.file = file;
    this.onChange = onChange;
    this.options = options;
    this.lastStat = this.statKey();
  }

  start(): this {
    const name = basename(this.file);
    try {
      this.watcher = watch(dirname(this.file), { persistent: false }, (_event, filename) => {
        const f = filename?.toString();
        if (f === undefined || f === name || f.startsWith('..data')) this.schedule('watch');
      });
      // A watcher error (directory removed, too many watches) leaves the poll to do the work.
      this.watcher.on('error', () => this.watcher?.close());
    } catch {
      this.watcher = undefined;
    }
    if (this.options.pollIntervalMs > 0) {
      this.poller = setInterval(() => {
        const key = this.statKey();
        if (key !== this.lastStat) {
          this.lastStat = key;
          this.schedule('poll');
        }
      }, this.options.pollIntervalMs);
      this.poller.unref();
    }
    return this;
  }

  close(): void {
    this.watcher?.close();
    if (this.poller) clearInterval(this.poller);
    if (this.debounce) clearTimeout(this.debounce);
  }

  private schedule(trigger: string): void {
    if (this.debounce) clearTimeout(this.debounce);
    this.debounce = setTimeout(() => {
      this.debounce = undefined;
      this.lastStat = this.statKey();
      this.onChange(trigger);
    }, this.options.debounceMs);
    this.debounce.unref();
  }

  private statKey(): string {
    try {
      const s = statSync(this.file);
      return `${s.ino}:${s.size}:${s.mtimeMs}`;
    } catch {
      return 'missing';
    }
  }
}
