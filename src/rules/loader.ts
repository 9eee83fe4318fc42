import { readFileSync } from 'node:fs';
import { compileRules, RulesError, type CompileOptions } from './compile.js';
import type { RuleSet } from './ruleset.js';

/** Reads and compiles a rules file; every failure, unreadable file included, is a RulesError. */
export function loadRulesFile(file: string, options: CompileOptions = {}): RuleSet {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? (err as Error).message;
    throw new RulesError(file, [`${file}: cannot read the rules file (${code})`]);
  }
  return compileRules(text, file, options);
}

/** A rules file with no rules: every request is forwarded unchanged as rule `none`. */
export function emptyRuleSet(): RuleSet {
  return compileRules('version: 1\nrules: []\n', '(no rules)');
}
