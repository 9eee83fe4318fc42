import type { CascadeChecks } from '../rules/cascade.js';

/**
 * The checks of a cascade (issue 17, item 3) as pure functions of the answer's text: whether the
 * answer of a tier is good enough to stop there, or the first reason it is not. The server runs
 * them on a whole answer (non-streaming) or on the window of a stream held so far (`checkWindow`).
 */

export type CheckFailure = 'short' | 'refusal' | 'uncertain' | 'invalid_json';

/** Why a tier was left: a check that failed, or the tier failed outright (5xx after its retries, a broken stream). */
export type EscalationReason = CheckFailure | 'error';

/** The phrases of a plan's checks, normalised once per compiled plan (never per request). */
interface PreparedChecks {
  readonly refusal: readonly string[];
  readonly uncertainty: readonly string[];
}

const prepared = new WeakMap<CascadeChecks, PreparedChecks>();

function prepare(checks: CascadeChecks): PreparedChecks {
  let p = prepared.get(checks);
  if (p === undefined) {
    p = { refusal: checks.refusalPhrases.map(normalise), uncertainty: checks.uncertaintyPhrases.map(normalise) };
    prepared.set(checks, p);
  }
  return p;
}

/**
 * Lower case, with the typographic apostrophe (U+2019) read as `'`: models write "I’m sorry" as
 * often as "I'm sorry", and a rules file lists one spelling.
 */
function normalise(text: string): string {
  return text.toLowerCase().replaceAll('\u2019', "'");
}

/** Whether the request asked for JSON: `response_format` of type `json_object` or `json_schema`. */
export function asksJson(body: Readonly<Record<string, unknown>>): boolean {
  const format = body.response_format;
  if (format === null || typeof format !== 'object') return false;
  const type = (format as Record<string, unknown>).type;
  return type === 'json_object' || type === 'json_schema';
}

function jsonRequired(checks: CascadeChecks, askedJson: boolean): boolean {
  return checks.json === true || (checks.json === 'auto' && askedJson);
}

/**
 * The characters a JSON text can start with (RFC 8259 §2, after white space). A fenced answer
 * ("```json ...") fails: the client asked for JSON and will parse the content as JSON, which a
 * fence breaks, so a fence is not tolerated.
 */
const JSON_START = new Set(['{', '[', '"', '-', '0', '1', '2', '3', '4', '5', '6', '7', '8', '9', 't', 'f', 'n']);

function firstNonBlank(text: string): string | undefined {
  const m = /\S/.exec(text);
  return m === null ? undefined : m[0];
}

function isJson(text: string): boolean {
  try {
    JSON.parse(text);
    return true;
  } catch {
    return false;
  }
}

/**
 * What a prefix of the answer can already prove: a refusal at its start, an uncertainty phrase
 * inside it, a first character that cannot start JSON when JSON is required. Shared by both checks.
 */
function provenFailure(text: string, checks: CascadeChecks, askedJson: boolean): CheckFailure | undefined {
  const p = prepare(checks);
  if (p.refusal.length > 0 || p.uncertainty.length > 0) {
    const lower = normalise(text);
    const start = lower.trimStart();
    for (const phrase of p.refusal) if (phrase.length > 0 && start.startsWith(phrase)) return 'refusal';
    for (const phrase of p.uncertainty) if (phrase.length > 0 && lower.includes(phrase)) return 'uncertain';
  }
  if (jsonRequired(checks, askedJson)) {
    const first = firstNonBlank(text);
    if (first !== undefined && !JSON_START.has(first)) return 'invalid_json';
  }
  return undefined;
}

/**
 * A whole answer: undefined when it passes, else the first failing check in the order `short`,
 * `refusal`, `uncertain`, `invalid_json`.
 */
export function checkAnswer(text: string, checks: CascadeChecks, askedJson: boolean): CheckFailure | undefined {
  if (checks.minLength !== undefined && text.length < checks.minLength) return 'short';
  const proven = provenFailure(text, checks, askedJson);
  if (proven !== undefined) return proven;
  if (jsonRequired(checks, askedJson) && !isJson(text)) return 'invalid_json';
  return undefined;
}

/**
 * The window of a stream: the content received so far (`prefix`), and whether the stream ended
 * with it (`complete`: the whole answer, checked as `checkAnswer` does). An incomplete prefix
 * fails only what it already proves: a refusal phrase at its start, an uncertainty phrase inside
 * it, a first non-blank character that cannot start JSON in JSON mode; never `short` (more may
 * come), and never a JSON text cut in the middle.
 */
export function checkWindow(prefix: string, complete: boolean, checks: CascadeChecks, askedJson: boolean): CheckFailure | undefined {
  return complete ? checkAnswer(prefix, checks, askedJson) : provenFailure(prefix, checks, askedJson);
}
