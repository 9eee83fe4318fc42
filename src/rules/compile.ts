import { createHash } from 'node:crypto';
import { YamlSource, pointerToPath } from '../config/yaml-source.js';
import { ConfigError } from '../errors.js';
import { deepMerge, type CompiledRoute, type SystemPromptAction } from './actions.js';
import { ALWAYS, compileRegexSets, compileWhen, type CompileProblem, type Condition, type ConditionCompiler, type FieldRegexSet } from './conditions.js';
import { NO_RULE, UNROUTED, type JsonObject } from './decision.js';
import { builtinFields, type FieldGetter, type FieldRegistry } from './fields.js';
import { RuleSet, type CompiledRule } from './ruleset.js';
import { validateRulesDocument } from './schema.js';

/** The rules document after schema validation. */
interface ActionSpec {
  fallbacks?: string[];
  provider?: JsonObject;
  max_tokens?: number;
  params?: JsonObject;
  system_prompt?: SystemPromptAction;
  headers?: Record<string, string>;
  description?: string;
}
interface TierSpec extends ActionSpec {
  model: string;
}
interface RouteSpec extends ActionSpec {
  model?: string;
  tier?: string;
  pass?: true;
  retry?: { max_attempts?: number; statuses?: number[]; budget_ms?: number };
  reject?: { status: number; message?: string };
}
interface RuleSpec {
  name: string;
  description?: string;
  when?: Record<string, unknown>;
  route: RouteSpec;
}
interface RulesDocument {
  version: 1;
  timezone?: string;
  tiers?: Record<string, TierSpec>;
  rules: RuleSpec[];
}

export class RulesError extends ConfigError {
  constructor(file: string, problems: readonly string[]) {
    super(`invalid rules file ${file}`, problems);
    this.name = 'RulesError';
  }
}

/** Rule names that label something else in metrics and logs, with what they label. */
export const RESERVED_RULE_NAMES: ReadonlyMap<string, string> = new Map([
  [NO_RULE, 'requests that no rule matched'],
  [UNROUTED, 'requests the rules never saw'],
]);

/** Body fields a rule may not set through `params`: they have actions of their own, or belong to the client. */
const FORBIDDEN_PARAMS: Record<string, string> = {
  model: 'use route.model or route.tier',
  models: 'use route.fallbacks',
  messages: 'use route.system_prompt',
  stream: 'the client decides whether it reads a stream',
  max_tokens: 'use route.max_tokens (a cap)',
  provider: 'use route.provider',
};

/** Upstream headers a rule may not set: credentials and what the proxy computes itself. */
const FORBIDDEN_HEADERS = new Set([
  'authorization', 'proxy-authorization', 'cookie', 'host', 'content-length', 'content-type', 'connection',
  'keep-alive', 'te', 'trailer', 'transfer-encoding', 'upgrade', 'accept-encoding', 'expect',
]);
const HEADER_NAME = /^[A-Za-z0-9!#$%&'*+.^_`|~-]+$/;

export interface CompileOptions {
  /** The field registry; the built-in fields by default. */
  readonly fields?: FieldRegistry;
}

/**
 * YAML text -> schema -> semantic checks -> frozen, compiled RuleSet. Throws a RulesError listing
 * every problem, each as `file:line:col: what is wrong`.
 */
export function compileRules(text: string, file: string, options: CompileOptions = {}): RuleSet {
  const source = new YamlSource(file, text);
  if (source.syntaxErrors.length > 0) throw new RulesError(file, source.syntaxErrors);

  const doc = source.data;
  if (!validateRulesDocument(doc)) {
    const problems = (validateRulesDocument.errors ?? []).map((e) => {
      const path = pointerToPath(e.instancePath);
      if (e.keyword === 'additionalProperties') {
        const extra = String((e.params as { additionalProperty: string }).additionalProperty);
        return `${source.where([...path, extra], { key: true })}: unknown key "${extra}" in ${describePath(path)}`;
      }
      let message = e.message ?? 'is invalid';
      if (e.keyword === 'type' && Array.isArray(valueAt(doc, path))) message = 'a list is not a matcher here: write { in: [...] }';
      if (e.keyword === 'const') message = `must be ${JSON.stringify((e.params as { allowedValue: unknown }).allowedValue)}`;
      if (e.keyword === 'enum') message = `must be one of ${JSON.stringify((e.params as { allowedValues: unknown }).allowedValues)}`;
      return `${source.where(path)}: ${describePath(path)} ${message}`;
    });
    throw new RulesError(file, [...new Set(problems)]);
  }
  const document = doc as unknown as RulesDocument;
  const problems: CompileProblem[] = [];

  const timezone = document.timezone ?? 'UTC';
  try {
    new Intl.DateTimeFormat('en-US', { timeZone: timezone });
  } catch {
    problems.push({ path: ['timezone'], message: `unknown time zone "${timezone}" (use an IANA name such as Europe/Paris)` });
  }

  const cc: ConditionCompiler = {
    fields: options.fields ?? builtinFields(),
    fieldOptions: { timezone: problems.length > 0 ? 'UTC' : timezone },
    usedFields: new Map<string, FieldGetter>(),
    regexSets: new Map<string, FieldRegexSet>(),
    namedModels: new Set<string>(),
  };

  const tiers = document.tiers ?? {};
  for (const [name, tier] of Object.entries(tiers)) checkActions(tier, ['tiers', name], problems);

  const rules: CompiledRule[] = [];
  const seen = new Map<string, number>();
  let catchAll: string | undefined;
  document.rules.forEach((spec, index) => {
    const path = ['rules', index];
    if (catchAll !== undefined) {
      problems.push({ path, message: `rule "${spec.name}" can never match: rule "${catchAll}" before it matches every request (it has no conditions)` });
    }
    if (seen.has(spec.name)) {
      problems.push({ path: [...path, 'name'], message: `duplicate rule name "${spec.name}" (also rule #${seen.get(spec.name)! + 1})` });
    } else {
      seen.set(spec.name, index);
    }
    const reserved = RESERVED_RULE_NAMES.get(spec.name);
    if (reserved !== undefined) problems.push({ path: [...path, 'name'], message: `"${spec.name}" is reserved: it names ${reserved}` });

    const condition: Condition = spec.when === undefined ? ALWAYS : compileWhen(spec.when, [...path, 'when'], cc, problems);
    const isCatchAll = spec.when === undefined || Object.keys(spec.when).length === 0;
    if (isCatchAll) catchAll ??= spec.name;

    const route = compileRoute(spec, tiers, [...path, 'route'], problems);
    if (route) rules.push({ name: spec.name, index, condition, route, description: spec.description });
  });

  if (problems.length > 0) {
    throw new RulesError(file, problems.map((p) => `${source.where(p.path, { key: p.key ?? false })}: ${p.message}`));
  }

  compileRegexSets(cc);
  const hash = createHash('sha256').update(text).digest('hex').slice(0, 12);
  const models = new Set(cc.namedModels);
  for (const tier of Object.values(tiers)) for (const m of [tier.model, ...(tier.fallbacks ?? [])]) models.add(m);
  for (const rule of rules) if (rule.route.kind === 'rewrite') for (const m of [rule.route.model, ...rule.route.fallbacks]) models.add(m);
  return new RuleSet({ file, hash, timezone, rules, tiers: Object.keys(tiers), usedFields: cc.usedFields, models: [...models] });
}

function valueAt(doc: unknown, path: (string | number)[]): unknown {
  let cur = doc;
  for (const p of path) {
    if (cur === null || typeof cur !== 'object') return undefined;
    cur = (cur as Record<string, unknown>)[p];
  }
  return cur;
}

function lowerCaseKeys(headers: Record<string, string>): Record<string, string> {
  return Object.fromEntries(Object.entries(headers).map(([k, v]) => [k.toLowerCase(), v]));
}

function describePath(path: (string | number)[]): string {
  if (path.length === 0) return 'the rules file';
  return path.map((p) => (typeof p === 'number' ? `[${p}]` : p)).join('.').replace(/\.\[/g, '[');
}

function checkActions(spec: ActionSpec, path: (string | number)[], problems: CompileProblem[]): void {
  for (const key of Object.keys(spec.params ?? {})) {
    const why = FORBIDDEN_PARAMS[key];
    if (why) problems.push({ path: [...path, 'params', key], key: true, message: `params may not set "${key}": ${why}` });
  }
  for (const name of Object.keys(spec.headers ?? {})) {
    if (!HEADER_NAME.test(name)) problems.push({ path: [...path, 'headers', name], key: true, message: `"${name}" is not a valid header name` });
    else if (FORBIDDEN_HEADERS.has(name.toLowerCase())) problems.push({ path: [...path, 'headers', name], key: true, message: `header "${name}" is set by the proxy and may not come from a rule` });
  }
}

function compileRoute(spec: RuleSpec, tiers: Record<string, TierSpec>, path: (string | number)[], problems: CompileProblem[]): CompiledRoute | undefined {
  const route = spec.route;
  const actionKeys = Object.keys(route).filter((k) => k !== 'description');
  const retry = route.retry
    ? {
        ...(route.retry.max_attempts !== undefined && { maxAttempts: route.retry.max_attempts }),
        ...(route.retry.statuses !== undefined && { statuses: route.retry.statuses }),
        ...(route.retry.budget_ms !== undefined && { budgetMs: route.retry.budget_ms }),
      }
    : undefined;
  if (route.pass || route.reject) {
    const which = route.pass ? 'pass' : 'reject';
    // A pass may still say how its requests are retried; a reject calls nothing upstream.
    const others = actionKeys.filter((k) => k !== which && !(which === 'pass' && k === 'retry'));
    if (others.length > 0) {
      problems.push({ path, message: `route.${which} stands alone; remove ${others.map((k) => `"${k}"`).join(', ')}` });
      return undefined;
    }
    if (route.pass) return { kind: 'pass', retry };
    return { kind: 'reject', status: route.reject!.status, message: route.reject!.message ?? `Request rejected by routing rule "${spec.name}"` };
  }
  if ((route.model === undefined) === (route.tier === undefined)) {
    problems.push({ path, message: 'a route needs exactly one of "model" or "tier" (or "pass: true", or "reject")' });
    return undefined;
  }
  checkActions(route, path, problems);
  let base: TierSpec | undefined;
  if (route.tier !== undefined) {
    base = tiers[route.tier];
    if (!base) {
      problems.push({ path: [...path, 'tier'], message: `unknown tier "${route.tier}" (tiers: ${Object.keys(tiers).join(', ') || 'none defined'})` });
      return undefined;
    }
  }
  // The route's own fields win over its tier's; provider, params and headers merge.
  const provider = base?.provider || route.provider ? deepMerge(base?.provider, route.provider ?? {}) : undefined;
  const params = base?.params || route.params ? { ...base?.params, ...route.params } : undefined;
  // Header names are case-insensitive; lower case, as Node hands them to undici.
  const headers = base?.headers || route.headers ? lowerCaseKeys({ ...base?.headers, ...route.headers }) : undefined;
  return {
    kind: 'rewrite',
    tier: route.tier,
    model: route.model ?? base!.model,
    fallbacks: route.fallbacks ?? base?.fallbacks ?? [],
    provider,
    maxTokens: route.max_tokens ?? base?.max_tokens,
    params,
    systemPrompt: route.system_prompt ?? base?.system_prompt,
    headers,
    retry,
  };
}
