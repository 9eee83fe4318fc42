import { RE2JS, RE2Set } from 're2js';
import type { EvalInput, FieldGetter, FieldOptions, FieldRegistry } from './fields.js';

/**
 * Conditions compile, once, into closures. `test` is the hot path (a boolean, nothing allocated);
 * `explain` walks the same tree and says which leaf failed, for the explain endpoint and the CLI.
 *
 * Semantics, documented in docs/rules.md: a scalar means equality; several operators in one
 * matcher must all hold; keys of a `when` map must all hold; `any`, `all`, `not` combine. Every
 * operator is false on a missing field (undefined or null), except `exists: false`.
 */

export interface Failure {
  readonly field: string;
  readonly operator: string;
  readonly expected: unknown;
  /** The field's value (null when missing; long strings shortened). */
  readonly actual: unknown;
  /** Present and true when the field has no value in this request. */
  readonly missing?: true;
}

export interface Condition {
  test(input: EvalInput): boolean;
  /** undefined when the condition holds, otherwise the first leaf that failed. */
  explain(input: EvalInput): Failure | undefined;
}

export interface CompileProblem {
  /** Where in the rules document (for file:line:col). */
  readonly path: (string | number)[];
  /** The problem is the key at `path` (a field name, a param), not its value. */
  readonly key?: true;
  readonly message: string;
}

export const OPERATORS = [
  'eq', 'in', 'not_in', 'ne', 'gt', 'gte', 'lt', 'lte', 'exists', 'contains', 'starts_with', 'ends_with', 'matches',
] as const;
export type Operator = (typeof OPERATORS)[number];

/** Longest pattern accepted by `matches`. */
export const MAX_PATTERN_LENGTH = 1000;
/** `matches` reads at most this many characters of a value (the engine is linear; this bounds the constant). */
export const MAX_MATCH_INPUT_CHARS = 65_536;
/**
 * Most instructions one `matches` pattern may compile to (re2js' programSize, like RE2's
 * ProgramSize). RE2 is linear in the text, but the factor is the program: a bounded repeat
 * `x{n,m}` copies `x` m times, so the legal `(.|\s){0,1000}secret` compiles to about 4,000
 * instructions and scanning 64 KiB with it took 0.3 to 3.5 s. Ordinary patterns take 10 to 300,
 * and the longest literal allowed (MAX_PATTERN_LENGTH characters) about 1,000; at this limit a
 * pattern set scanned about 64 KiB of hostile text in up to 0.3 s on one core.
 */
export const MAX_PATTERN_PROGRAM_SIZE = 2000;
/**
 * Most instructions all `matches` patterns of a rules file may compile to together: a request can
 * run every field's pattern set, so this bounds the regex work of one request (an ordinary file
 * stays under 1,000).
 */
export const MAX_RULES_PROGRAM_SIZE = 5000;

type Scalar = string | number | boolean | null;

function isMissing(v: unknown): boolean {
  return v === undefined || v === null;
}

/** Equality with one concession: header values are strings, so `"5"` equals 5 and `"true"` equals true. */
function equals(actual: unknown, expected: Scalar): boolean {
  if (actual === expected) return true;
  if (typeof actual === 'string' && (typeof expected === 'number' || typeof expected === 'boolean')) return actual === String(expected);
  if (typeof actual === 'number' && typeof expected === 'string') return String(actual) === expected;
  return false;
}

function toNumber(v: unknown): number {
  if (typeof v === 'number') return v;
  if (typeof v === 'string' && v.trim() !== '') return Number(v);
  return NaN;
}

type Predicate = (actual: unknown, input: EvalInput) => boolean;

/**
 * All `matches` patterns on one field, compiled into one RE2 set: the first regex a request
 * needs on that field runs every pattern in a single linear pass and the result is memoised, so
 * the 20th regex on `request.text` costs a lookup, not a 20th scan (about 10x cheaper measured
 * with 17 patterns). The single compiled patterns stay as a fallback should the set's DFA run
 * out of its memory budget.
 */
export class FieldRegexSet {
  private readonly set = new RE2Set(RE2Set.UNANCHORED);
  private readonly singles: RE2JS[] = [];
  private readonly memoKey: string;
  /** Instructions of the patterns added, for the MAX_RULES_PROGRAM_SIZE budget. */
  programSize = 0;

  constructor(field: string) {
    this.memoKey = `matches:${field}`;
  }

  add(pattern: string, compiled: RE2JS): number {
    this.singles.push(compiled);
    this.programSize += compiled.programSize();
    return this.set.add(pattern);
  }

  compile(): void {
    this.set.compile();
  }

  /** Indexes of the patterns that match `value`, computed once per request. */
  matching(value: string, input: EvalInput): readonly number[] {
    let hits = input.memo.get(this.memoKey) as number[] | undefined;
    if (hits === undefined) {
      const text = value.length > MAX_MATCH_INPUT_CHARS ? value.slice(0, MAX_MATCH_INPUT_CHARS) : value;
      try {
        hits = this.set.match(text);
      } catch {
        hits = [];
        for (let i = 0; i < this.singles.length; i++) if (this.singles[i]!.test(text)) hits.push(i);
      }
      input.memo.set(this.memoKey, hits);
    }
    return hits;
  }
}

function compileOperator(op: Operator, expected: unknown, cc: ConditionCompiler, regexes: FieldRegexSet, path: (string | number)[], problems: CompileProblem[]): Predicate | undefined {
  const bad = (message: string): undefined => {
    problems.push({ path, message });
    return undefined;
  };
  switch (op) {
    case 'eq': {
      const e = expected as Scalar;
      return (a) => !isMissing(a) && equals(a, e);
    }
    case 'ne': {
      const e = expected as Scalar;
      return (a) => !isMissing(a) && !equals(a, e);
    }
    case 'in': {
      const list = expected as Scalar[];
      return (a) => !isMissing(a) && list.some((e) => equals(a, e));
    }
    case 'not_in': {
      const list = expected as Scalar[];
      return (a) => !isMissing(a) && !list.some((e) => equals(a, e));
    }
    case 'gt': {
      const e = expected as number;
      return (a) => toNumber(a) > e;
    }
    case 'gte': {
      const e = expected as number;
      return (a) => toNumber(a) >= e;
    }
    case 'lt': {
      const e = expected as number;
      return (a) => toNumber(a) < e;
    }
    case 'lte': {
      const e = expected as number;
      return (a) => toNumber(a) <= e;
    }
    case 'exists': {
      const e = expected as boolean;
      return (a) => !isMissing(a) === e;
    }
    case 'contains': {
      const e = expected as Scalar;
      const text = String(e);
      return (a) => (typeof a === 'string' ? a.includes(text) : Array.isArray(a) ? a.some((x) => equals(x, e)) : false);
    }
    case 'starts_with': {
      const e = expected as string;
      return (a) => typeof a === 'string' && a.startsWith(e);
    }
    case 'ends_with': {
      const e = expected as string;
      return (a) => typeof a === 'string' && a.endsWith(e);
    }
    case 'matches': {
      const pattern = expected as string;
      if (pattern.length > MAX_PATTERN_LENGTH) return bad(`pattern is ${pattern.length} characters long; the limit is ${MAX_PATTERN_LENGTH}`);
      let re: RE2JS;
      try {
        // RE2 syntax: linear-time matching, so no pattern can backtrack catastrophically.
        // https://github.com/google/re2/wiki/Syntax
        re = RE2JS.compile(pattern);
      } catch (err) {
        return bad(`invalid regular expression ${JSON.stringify(pattern)}: ${(err as Error).message}`);
      }
      const size = re.programSize();
      if (size > MAX_PATTERN_PROGRAM_SIZE) {
        return bad(`regular expression ${JSON.stringify(pattern)} compiles to ${size} instructions; the limit is ${MAX_PATTERN_PROGRAM_SIZE} (a repeat {n,m} copies what it repeats m times: lower m, or use * or +)`);
      }
      let total = size;
      for (const set of cc.regexSets.values()) total += set.programSize;
      if (total > MAX_RULES_PROGRAM_SIZE) {
        return bad(`regular expression ${JSON.stringify(pattern)} takes the file's patterns to ${total} instructions; together they may compile to at most ${MAX_RULES_PROGRAM_SIZE}, since a request may run them all`);
      }
      const index = regexes.add(pattern, re);
      return (a, input) => typeof a === 'string' && regexes.matching(a, input).includes(index);
    }
  }
}

/** Values shown in an explanation: JSON-safe (null for missing), long strings shortened so a prompt never floods the output. */
export function shown(value: unknown): unknown {
  if (value === undefined) return null;
  if (typeof value === 'string' && value.length > 200) return `${value.slice(0, 200)}… (${value.length} characters)`;
  return value;
}

function leaf(field: string, get: FieldGetter, op: Operator, expected: unknown, predicate: Predicate): Condition {
  return {
    test: (input) => predicate(get(input), input),
    explain: (input) => {
      const actual = get(input);
      if (predicate(actual, input)) return undefined;
      return isMissing(actual) ? { field, operator: op, expected, actual: null, missing: true } : { field, operator: op, expected, actual: shown(actual) };
    },
  };
}

function allOf(conditions: Condition[]): Condition {
  if (conditions.length === 1) return conditions[0]!;
  return {
    test: (input) => {
      for (const c of conditions) if (!c.test(input)) return false;
      return true;
    },
    explain: (input) => {
      for (const c of conditions) {
        const f = c.explain(input);
        if (f) return f;
      }
      return undefined;
    },
  };
}

function anyOf(conditions: Condition[]): Condition {
  return {
    test: (input) => {
      for (const c of conditions) if (c.test(input)) return true;
      return false;
    },
    explain: (input) => {
      const failures: Failure[] = [];
      for (const c of conditions) {
        const f = c.explain(input);
        if (!f) return undefined;
        failures.push(f);
      }
      return { field: 'any', operator: 'any', expected: `one of ${conditions.length} conditions`, actual: failures };
    },
  };
}

function notOf(condition: Condition): Condition {
  return {
    test: (input) => !condition.test(input),
    explain: (input) => (condition.explain(input) ? undefined : { field: 'not', operator: 'not', expected: 'the condition to fail', actual: 'it held' }),
  };
}

export const ALWAYS: Condition = { test: () => true, explain: () => undefined };

export interface ConditionCompiler {
  readonly fields: FieldRegistry;
  readonly fieldOptions: FieldOptions;
  /** Every field name a condition uses, for the explain output. */
  readonly usedFields: Map<string, FieldGetter>;
  /** Model names the conditions on `model` compare with (for bounded metric labels). */
  readonly namedModels: Set<string>;
  /** The `matches` patterns of each field; compile them with `compileRegexSets` once all rules are read. */
  readonly regexSets: Map<string, FieldRegexSet>;
}

export function compileRegexSets(cc: ConditionCompiler): void {
  for (const set of cc.regexSets.values()) set.compile();
}

/** Compiles a `when` map. Problems are collected, never thrown, so that all are reported at once. */
export function compileWhen(when: Record<string, unknown>, path: (string | number)[], cc: ConditionCompiler, problems: CompileProblem[]): Condition {
  const parts: Condition[] = [];
  for (const [key, value] of Object.entries(when)) {
    const here = [...path, key];
    if (key === 'any' || key === 'all') {
      const list = (value as Record<string, unknown>[]).map((w, i) => compileWhen(w, [...here, i], cc, problems));
      parts.push(key === 'any' ? anyOf(list) : allOf(list));
    } else if (key === 'not') {
      parts.push(notOf(compileWhen(value as Record<string, unknown>, here, cc, problems)));
    } else {
      const getter = cc.fields.compile(key, cc.fieldOptions);
      if (typeof getter === 'string') {
        problems.push({ path: here, key: true, message: getter });
        continue;
      }
      cc.usedFields.set(key, getter);
      const ops: [Operator, unknown][] =
        value !== null && typeof value === 'object' ? (Object.entries(value) as [Operator, unknown][]) : [['eq', value]];
      if (key === 'model') {
        for (const [op, expected] of ops) {
          if (op === 'matches') continue;
          for (const v of Array.isArray(expected) ? expected : [expected]) if (typeof v === 'string') cc.namedModels.add(v);
        }
      }
      let regexes = cc.regexSets.get(key);
      if (!regexes) cc.regexSets.set(key, (regexes = new FieldRegexSet(key)));
      for (const [op, expected] of ops) {
        const predicate = compileOperator(op, expected, cc, regexes, value !== null && typeof value === 'object' ? [...here, op] : here, problems);
        if (predicate) parts.push(leaf(key, getter, op, expected, predicate));
      }
    }
  }
  return parts.length === 0 ? ALWAYS : allOf(parts);
}
