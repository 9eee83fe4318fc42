import { isDeepStrictEqual } from 'node:util';
import type { BudgetFields } from '../accounts/budget.js';
import type { Caller } from '../accounts/caller.js';
import type { Catalog } from '../catalog/catalog.js';
import { Ajv } from 'ajv';
import { AJV_STARTUP_OPTIONS } from '../config/ajv-options.js';
import { YamlSource, pointerToPath } from '../config/yaml-source.js';
import { RulesError } from './compile.js';
import { invalidMessages, type JsonObject, type RequestContext } from './decision.js';
import { BUDGET_FIELD_SLOTS, compilePath } from './fields.js';
import { APIS, type Api } from './shapes.js';
import type { Explanation, RuleSet } from './ruleset.js';

/**
 * Rule unit tests, like `promtool test rules`: each case is a request (headers, body, time) and
 * what the routing must make of it. Pure: the caller reads the files.
 */

export interface RuleCase {
  readonly name: string;
  readonly headers?: Record<string, string>;
  /** The caller's key as the keys file would describe it (`key.*` fields); absent: no client key. */
  readonly key?: CaseKey;
  /** The request's shape: `chat` (default), `responses` or `messages` (`request.api`; src/rules/shapes.ts). */
  readonly api?: Api;
  /** The caller's spend fields as the account store would give them (`budget.remaining_usd: 0.5`); absent: missing. */
  readonly spend?: Readonly<Record<string, number>>;
  readonly body: JsonObject;
  readonly now?: string;
  readonly expect: CaseExpectation;
}

export interface CaseKey {
  readonly name: string;
  readonly tier?: string;
  readonly team?: string;
  readonly meta?: Record<string, string | number | boolean>;
}

export interface CaseExpectation {
  /**
   * The code of the error the proxy answers before routing (`invalid_messages`); stands alone,
   * since such a request reaches no rule.
   */
  readonly error?: RefusalCode;
  readonly rule?: string;
  readonly action?: Explanation['action'];
  readonly model?: string | null;
  readonly tier?: string | null;
  /** The tier the client's model named and the request was routed as (`aliases: true`); null: none. */
  readonly alias?: string | null;
  /** The arm of a `split` the request lands in; null: the rule does not split. */
  readonly variant?: string | null;
  readonly status?: number;
  readonly body_changed?: boolean;
  /** Dot paths into the body sent upstream, with the value expected there (null: absent). */
  readonly body?: Record<string, unknown>;
  /** Extra upstream headers the route sets. */
  readonly headers?: Record<string, string>;
}

export interface CasesFile {
  /** Rules file named by the cases file, relative to it. */
  readonly rules?: string;
  /** A pinned model catalog (OpenRouter's /models JSON) for `model.*`, cost and `choose`, relative to the cases file. */
  readonly catalog?: string;
  readonly now?: string;
  readonly cases: readonly RuleCase[];
}

export interface CaseResult {
  readonly name: string;
  readonly passed: boolean;
  /** One line per expectation that did not hold. */
  readonly mismatches: readonly string[];
  /** What the decision warned about (choose without a catalog). */
  readonly warning?: string;
}

/** Codes of the errors a request can get before routing, which a case can expect. */
const REFUSAL_CODES = ['invalid_messages'] as const;
type RefusalCode = (typeof REFUSAL_CODES)[number];

const dateTime = { type: 'string', pattern: '^\\d{4}-\\d{2}-\\d{2}T\\d{2}:\\d{2}(:\\d{2}(\\.\\d+)?)?(Z|[+-]\\d{2}:\\d{2})$' };
export const CASES_SCHEMA = {
  type: 'object', additionalProperties: false, required: ['cases'],
  properties: {
    rules: { type: 'string', minLength: 1 },
    catalog: { type: 'string', minLength: 1 },
    now: dateTime,
    cases: {
      type: 'array', minItems: 1,
      items: {
        type: 'object', additionalProperties: false, required: ['name', 'body', 'expect'],
        properties: {
          name: { type: 'string', minLength: 1 },
          headers: { type: 'object', additionalProperties: { type: ['string', 'number', 'boolean'] } },
          key: {
            type: 'object', additionalProperties: false, required: ['name'],
            properties: {
              name: { type: 'string', minLength: 1 },
              tier: { type: 'string' },
              team: { type: 'string' },
              meta: { type: 'object', additionalProperties: { type: ['string', 'number', 'boolean'] } },
            },
          },
          api: { enum: [...APIS] },
          spend: {
            type: 'object', propertyNames: { enum: [...BUDGET_FIELD_SLOTS.keys()] },
            additionalProperties: { type: 'number' },
          },
          body: { type: 'object' },
          now: dateTime,
          expect: {
            type: 'object', additionalProperties: false, minProperties: 1,
            properties: {
              error: { enum: REFUSAL_CODES },
              rule: { type: 'string' },
              action: { enum: ['route', 'pass', 'reject', 'none'] },
              model: { type: ['string', 'null'] },
              tier: { type: ['string', 'null'] },
              alias: { type: ['string', 'null'] },
              variant: { type: ['string', 'null'] },
              status: { type: 'integer' },
              body_changed: { type: 'boolean' },
              body: { type: 'object' },
              headers: { type: 'object', additionalProperties: { type: 'string' } },
            },
          },
        },
      },
    },
  },
};
const validateCases = new Ajv({ allErrors: true, strict: true, allowUnionTypes: true, ...AJV_STARTUP_OPTIONS }).compile(CASES_SCHEMA);

/** Parses and validates a cases file; throws a RulesError with positioned problems. */
export function parseCases(text: string, file: string): CasesFile {
  const source = new YamlSource(file, text);
  if (source.syntaxErrors.length > 0) throw new RulesError(file, source.syntaxErrors);
  if (!validateCases(source.data)) {
    const problems = (validateCases.errors ?? []).map((e) => {
      const path = pointerToPath(e.instancePath);
      if (e.keyword === 'additionalProperties') {
        const extra = String((e.params as { additionalProperty: string }).additionalProperty);
        return `${source.where([...path, extra], { key: true })}: unknown key "${extra}"`;
      }
      return `${source.where(path)}: ${path.join('.') || 'the cases file'} ${e.message ?? 'is invalid'}`;
    });
    throw new RulesError(file, problems);
  }
  const cases = source.data as unknown as CasesFile;
  const mixed = cases.cases.flatMap((c, i) => (c.expect.error !== undefined && Object.keys(c.expect).length > 1
    ? [`${source.where(['cases', i, 'expect', 'error'], { key: true })}: cases.${i}.expect.error stands alone: a request refused before routing reaches no rule`]
    : []));
  if (mixed.length > 0) throw new RulesError(file, mixed);
  return cases;
}

function lowerCaseHeaders(headers: Record<string, unknown> | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(headers ?? {})) out[k.toLowerCase()] = String(v);
  return out;
}

/** A case's `key:` as the Caller the server would put on the request (no allow-list, limits or budgets: routing reads none of them). */
function callerOf(key: CaseKey | undefined): Caller | undefined {
  if (key === undefined) return undefined;
  return {
    name: key.name, tier: key.tier, team: key.team === undefined ? undefined : { name: key.team }, meta: { ...key.meta }, models: undefined, limits: {}, budgets: {}, users: undefined,
  };
}

/** The request a case describes, as the server would hand it to the rules. */
export function caseContext(testCase: RuleCase, defaultNow?: string, catalog?: Catalog): RequestContext {
  const now = testCase.now ?? defaultNow;
  const body = testCase.body;
  return {
    headers: lowerCaseHeaders(testCase.headers),
    body,
    requestedModel: typeof body.model === 'string' ? body.model : undefined,
    ...(now !== undefined && { now: new Date(now) }),
    catalog,
    caller: callerOf(testCase.key),
    api: testCase.api,
    // A split without a subject draws the middle of [0, 1): a case is the same on every run.
    random: () => 0.5,
    ...(testCase.spend !== undefined && { resolved: { budget: budgetOf(testCase.spend) } }),
  };
}

/** A case's `spend:` as the fields the account step would resolve. */
function budgetOf(spend: Readonly<Record<string, number>>): BudgetFields {
  const fields: { -readonly [K in keyof BudgetFields]: number } = {};
  for (const [name, value] of Object.entries(spend)) fields[BUDGET_FIELD_SLOTS.get(name)!] = value;
  return fields;
}

/** Runs one case against a RuleSet. */
export function runCase(rules: RuleSet, testCase: RuleCase, defaultNow?: string, catalog?: Catalog): CaseResult {
  const body = testCase.body;
  const e = testCase.expect;
  // The server's own check of a chat body, before routing: a refused request has no explanation to compare.
  const refused = (testCase.api ?? 'chat') === 'chat' ? invalidMessages(body) : undefined;
  if (refused !== undefined || e.error !== undefined) {
    const passed = refused?.code === e.error;
    const got = refused ? `${refused.code} (${refused.message})` : 'none: the request is routed';
    return { name: testCase.name, passed, mismatches: passed ? [] : [`error: expected ${e.error ?? 'none'}, got ${got}`] };
  }
  const explanation = rules.explain(caseContext(testCase, defaultNow, catalog));
  const mismatches: string[] = [];
  const check = (what: string, expected: unknown, actual: unknown): void => {
    if (!isDeepStrictEqual(expected, actual)) mismatches.push(`${what}: expected ${JSON.stringify(expected)}, got ${JSON.stringify(actual ?? null)}`);
  };
  if (e.rule !== undefined) check('rule', e.rule, explanation.rule);
  if (e.action !== undefined) check('action', e.action, explanation.action);
  if (e.model !== undefined) check('model', e.model, explanation.model ?? null);
  if (e.tier !== undefined) check('tier', e.tier, explanation.tier ?? null);
  if (e.alias !== undefined) check('alias', e.alias, explanation.alias ?? null);
  if (e.variant !== undefined) check('variant', e.variant, explanation.split?.variant ?? null);
  if (e.status !== undefined) check('status', e.status, explanation.reject?.status ?? null);
  if (e.body_changed !== undefined) check('body_changed', e.body_changed, explanation.body_changed);
  for (const [path, expected] of Object.entries(e.body ?? {})) {
    const get = compilePath(path);
    const actual = typeof get === 'string' ? undefined : get(explanation.body);
    check(`body.${path}`, expected, actual ?? null);
  }
  for (const [name, expected] of Object.entries(e.headers ?? {})) {
    check(`headers.${name}`, expected, explanation.upstream_headers[name.toLowerCase()] ?? null);
  }
  return { name: testCase.name, passed: mismatches.length === 0, mismatches, ...(explanation.warning !== undefined && { warning: explanation.warning }) };
}

/** Runs every case; `catalog` is the pinned one (`--catalog`, or the cases file's `catalog:`), never a live fetch. */
export function runCases(rules: RuleSet, cases: CasesFile, catalog?: Catalog): CaseResult[] {
  return cases.cases.map((c) => runCase(rules, c, cases.now, catalog));
}
