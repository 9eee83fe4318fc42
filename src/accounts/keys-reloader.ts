import type { Logger } from 'pino';
import { LiveValue, type ReloadEvent } from '../rules-file/live-rules.js';
import { serialReloads, WATCHER_TRIGGERS } from '../rules-file/reloader.js';
import { RulesWatcher, type RulesWatcherOptions } from '../rules-file/watcher.js';
import { loadKeysFile, loadKeysFileAsync, type KeyRing } from './keys-file.js';

/** The keys in force, reloadable like the rules: a refused file never replaces them. */
export class LiveKeys extends LiveValue<KeyRing> {}

export interface KeysReloader {
  readonly keys: LiveKeys;
  /** Reloads now (SIGHUP), serialised like the rules' reloads. */
  reload(trigger: string): Promise<ReloadEvent>;
  close(): void;
}

/**
 * The keys file, loaded now (a KeysError stops startup with positioned messages) and reloaded
 * whenever it changes, with the rules file's watcher (rename-over saves, ConfigMap symlink swaps,
 * a stat poll): a key is created or revoked without a restart. Logged like rules reloads, with
 * the key names' count and the file's hash (of digests, never of keys), never a key or digest.
 */
export function startKeysReloader(file: string, logger: Logger, options: RulesWatcherOptions, env: NodeJS.ProcessEnv = process.env): KeysReloader {
  const keys = new LiveKeys(loadKeysFile(file, env), () => loadKeysFile(file, env));
  keys.on('reload', (e: ReloadEvent) => {
    const fields = { keys_file: file, trigger: e.trigger, keys_hash: e.hash };
    if (e.result === 'success') logger.info({ ...fields, previous_hash: e.previousHash, keys: keys.current.size }, 'keys reloaded');
    else if (e.result === 'failure') logger.error({ ...fields, problems: e.problems }, `keys file refused, still serving keys ${e.hash}: ${e.problems.join('; ')}`);
    else if (e.recovered) logger.info(fields, 'keys file valid again; keys in force unchanged');
    else if (!WATCHER_TRIGGERS.has(e.trigger)) logger.info(fields, 'keys file unchanged');
    else logger.debug(fields, 'keys file unchanged');
  });
  const reload = serialReloads(keys, () => loadKeysFileAsync(file, env));
  const watcher = new RulesWatcher(file, (trigger) => void reload(trigger), options).start();
  return { keys, reload, close: () => watcher.close() };
}
