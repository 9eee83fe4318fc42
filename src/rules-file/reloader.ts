import type { Logger } from 'pino';
import { loadRulesFile, loadRulesFileAsync } from './loader.js';
import { LiveRules, type LiveValue, type ReloadEvent } from './live-rules.js';
import { RulesWatcher, type RulesWatcherOptions } from './watcher.js';

/** Keeps `rules` equal to the rules file: reloads it when it changes or when asked (SIGHUP). */
export interface RulesReloader {
  readonly rules: LiveRules;
  /**
   * Reloads now (SIGHUP), reading the file asynchronously. Reloads run one at a time, so an older
   * read never lands after a newer one; a request made while one waits to start joins it (the
   * file is read then anyway), so a flood of signals or events queues at most one.
   */
  reload(trigger: string): Promise<ReloadEvent>;
  close(): void;
}

/** Reloads nobody asked for: the watcher's change events and poll, which also fire on touches that change nothing. */
export const WATCHER_TRIGGERS: ReadonlySet<string> = new Set(['watch', 'poll']);

/**
 * The rules file, loaded now (a RulesError stops startup with positioned messages) and reloaded
 * whenever it changes. Every reload is logged; a refused file is logged with its problems and
 * the rules in force keep serving, and the next valid file is logged at info even when it equals
 * the rules in force.
 */
export function startRulesReloader(file: string, logger: Logger, options: RulesWatcherOptions): RulesReloader {
  const rules = new LiveRules(loadRulesFile(file), () => loadRulesFile(file));
  rules.on('reload', (e: ReloadEvent) => {
    const fields = { rules_file: file, trigger: e.trigger, rules_hash: e.hash };
    if (e.result === 'success') logger.info({ ...fields, previous_hash: e.previousHash, rules: rules.current.rules.length }, 'rules reloaded');
    else if (e.result === 'failure') logger.error({ ...fields, problems: e.problems }, `rules file refused, still serving rules ${e.hash}: ${e.problems.join('; ')}`);
    // After a refusal the last visible line is the error: a fix back to the rules in force must say it took.
    else if (e.recovered) logger.info(fields, 'rules file valid again; rules in force unchanged');
    // An operator who sent SIGHUP waits for an answer; the watcher's spurious wake-ups are noise.
    else if (!WATCHER_TRIGGERS.has(e.trigger)) logger.info(fields, 'rules file unchanged');
    else logger.debug(fields, 'rules file unchanged');
  });
  const reload = serialReloads(rules, () => loadRulesFileAsync(file));
  const watcher = new RulesWatcher(file, (trigger) => void reload(trigger), options).start();
  return { rules, reload, close: () => watcher.close() };
}

/**
 * `live.reloadWith(trigger, load)`, one at a time, so an older read never lands after a newer
 * one; a request made while one waits to start joins it (the file is read then anyway), so a
 * flood of signals or events queues at most one. Shared by the rules and the keys file.
 */
export function serialReloads<T extends { readonly hash: string }>(live: LiveValue<T>, load: () => Promise<T>): (trigger: string) => Promise<ReloadEvent> {
  let last: Promise<unknown> = Promise.resolve();
  let waiting: Promise<ReloadEvent> | undefined;
  return (trigger) => {
    if (waiting) return waiting;
    const next = last.then(() => {
      waiting = undefined;
      // reloadWith never rejects: a failed read or compile is a 'failure' event.
      return live.reloadWith(trigger, load);
    });
    waiting = next;
    last = next;
    return next;
  };
}
