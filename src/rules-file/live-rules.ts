import { EventEmitter } from 'node:events';
import { ConfigError } from '../errors.js';
import type { RuleSet, RulesSource } from '../rules/ruleset.js';

export type ReloadResult = 'success' | 'unchanged' | 'failure';

export interface ReloadEvent {
  readonly result: ReloadResult;
  /** What asked for the reload: `watch`, `poll`, `sighup`, ... */
  readonly trigger: string;
  /** The rules (or keys) serving after the attempt. */
  readonly hash: string;
  readonly previousHash: string;
  /** Positioned problems, when the new file was refused. */
  readonly problems: readonly string[];
  /** The attempt before this one was refused and this one was not: the file is valid again. */
  readonly recovered: boolean;
}

/**
 * A value loaded from a file, reloadable: the rules, the keys. A request reads `current` once, at
 * its start, and keeps that value to the end; a reload swaps the reference and never touches a
 * value in use. A file that fails to load never replaces the value in force.
 */
export class LiveValue<T extends { readonly hash: string }> extends EventEmitter {
  current: T;
  /** The last reload attempt was refused: the file on disk is not the value in force. */
  failing = false;
  private readonly load: () => T;

  constructor(initial: T, load: () => T) {
    super();
    this.current = initial;
    this.load = load;
  }

  reload(trigger: string): ReloadEvent {
    let next: T | undefined;
    let error: unknown;
    try {
      next = this.load();
    } catch (err) {
      error = err;
    }
    return this.settle(trigger, next, error);
  }

  /** `reload` with an asynchronous loader (a hot reload reads the file without blocking requests). */
  async reloadWith(trigger: string, load: () => Promise<T>): Promise<ReloadEvent> {
    let next: T | undefined;
    let error: unknown;
    try {
      next = await load();
    } catch (err) {
      error = err;
    }
    return this.settle(trigger, next, error);
  }

  private settle(trigger: string, next: T | undefined, err: unknown): ReloadEvent {
    const previousHash = this.current.hash;
    const wasFailing = this.failing;
    let event: ReloadEvent;
    if (next) {
      const changed = next.hash !== previousHash;
      if (changed) this.current = next;
      event = { result: changed ? 'success' : 'unchanged', trigger, hash: this.current.hash, previousHash, problems: [], recovered: wasFailing };
    } else {
      const problems = err instanceof ConfigError ? err.problems : [String((err as Error)?.message ?? err)];
      event = { result: 'failure', trigger, hash: previousHash, previousHash, problems, recovered: false };
    }
    this.failing = event.result === 'failure';
    this.emit('reload', event);
    return event;
  }
}

/** The rules in force, reloadable (see LiveValue). */
export class LiveRules extends LiveValue<RuleSet> implements RulesSource {}
