import { createHash } from 'node:crypto';
import type { ErrorObject } from 'ajv';
import { YamlSource, pointerToPath } from '../config/yaml-source.js';
import { ConfigError } from '../errors.js';
import { FIELD_VALUE_RULE, isFieldValue } from '../upstream/headers.js';
import type { Capability } from '../catalog/capabilities.js';
import type { ClassifierConfig, ClassifierSpec } from '../classify/config.js';
import { COMPLEXITY_LABELS, TASK_LABELS } from '../classify/labels.js';
import { deepMerge, SHAPE_PARAMS, type CompiledRoute, type RetryOverride, type RewriteRoute, type SystemPromptAction } from './actions.js';
import { DEFAULT_STREAM_HOLD, type CascadeRoute } from './cascade.js';
import { DEFAULT_JUDGE_PROMPT, DEFAULT_SHADOW_CONCURRENCY, type ShadowPlan } from './shadow.js';
import { seedOf, type SplitArm, type SplitRoute } from './split.js';
import { ALWAYS, compileRegexSets, compileWhen, type CompileProblem, type Condition, type ConditionCompiler, type FieldRegexSet } from './conditions.js';
import { NO_RULE, NO_VARIANT, UNROUTED, type JsonObject } from './decision.js';
import { builtinFields, isBudgetField, isClassifyField, type FieldGetter, type FieldRegistry } from './fields.js';
import { RuleSet, type CompiledRule } from './ruleset.js';
import { validateRulesDocument } from './schema.js';
import { DEFAULT_STICK_TTL_MS, type TierFromRoute } from './tier-from.js';
import { APIS, type Api } from './shapes.js';

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
  choose?: { from: string[]; by?: 'cost'; require?: Capability[]; otherwise?: 'reject' | 'next_rule' };
  tier_from?: TierFromSpec;
  /** This rule's baseline (a tier or a model), over the file's. */
  baseline?: string;
  retry?: { max_attempts?: number; statuses?: number[]; budget_ms?: number };
  reject?: { status: number; message?: string };
  split?: { sticky?: string; arms: (RouteSpec & { name: string; weight: number })[] };
  cascade?: CascadeSpec;
  shadow?: { model?: string; tier?: string; sample: number; max_concurrency?: number; judge?: { model: string; prompt?: string } };
}
interface CascadeSpec {
  tiers: string[];
  checks?: { min_length?: number; refusal_phrases?: string[]; uncertainty_phrases?: string[]; json?: 'auto' | boolean };
  max_escalations?: number;
  stream_hold?: { chars?: number; ms?: number };
}
interface TierFromSpec {
  field: string;
  map: Record<string, string>;
  default?: string;
  raise_below_confidence?: number;
  stick_by?: string;
  stick_ttl_ms?: number;
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
  /** A client may send a tier's name as its model (see RuleSet.decide). */
  aliases?: boolean;
  /** What the team would use without routing: a tier or a model (see RouteDecision.baseline). */
  baseline?: string;
  tiers?: Record<string, TierSpec>;
  rules: RuleSpec[];
  classifier?: ClassifierSpec;
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
  // The same fields in the other shapes (src/rules/shapes.ts).
  max_completion_tokens: 'use route.max_tokens (a cap)',
  max_output_tokens: 'use route.max_tokens (a cap)',
  instructions: 'use route.system_prompt',
  system: 'use route.system_prompt',
  input: 'the client\'s input is its own',
};

/** Upstream headers a rule may not set: credentials and what the proxy computes itself. */
const FORBIDDEN_HEADERS = new Set([
  'authorization', 'proxy-authorization', 'cookie', 'host', 'content-length', 'content-type', 'connection',
  'keep-alive', 'te', 'trailer', 'transfer-encoding', 'upgrade', 'accept-encoding', 'expect',
]);
const HEADER_NAME = /^[A-Za-z0-9!#$%&'*+.^_`|~-]+$/;

/**
 * Compiles the `classifier:` block (absent: undefined spec). Reading a model file is I/O, which
 * the pure engine does not do: the rules-file loader passes src/classify/config.ts's
 * compileClassifier, as it passes the file's text.
 */
export type ClassifierCompiler = (spec: ClassifierSpec | undefined, rulesFile: string, problems: CompileProblem[]) => ClassifierConfig;

export interface CompileOptions {
  /** The field registry; the built-in fields by default. */
  readonly fields?: FieldRegistry;
  /** Without it, a rules file whose rules read `classify.*` or that has a `classifier:` block does not compile. */
  readonly classifier?: ClassifierCompiler;
}

/**
 * YAML text -> schema -> semantic checks -> frozen, compiled RuleSet. Throws a RulesError listing
 * every problem, each as `file:line:col: what is wrong`, in file order. A schema problem does not
 * stop the semantic checks: they run on what is left once every part the schema refused is cut
 * out, so one save (or one `signalbox check`) shows every problem. YAML syntax errors alone stop
 * early: nothing of a file that does not parse can be trusted.
 */
export function compileRules(text: string, file: string, options: CompileOptions = {}): RuleSet {
  const source = new YamlSource(file, text);
  if (source.syntaxErrors.length > 0) throw new RulesError(file, source.syntaxErrors);

  const raw = source.data;
  // YAML reads an empty file, a file of comments only and `null` alike as null.
  if (raw === null || raw === undefined) throw new RulesError(file, [`${file}: the file is empty: expected a mapping with "version: 1" and a "rules" list`]);
  if (!isObject(raw)) throw new RulesError(file, [`${source.where([])}: expected a mapping with "version: 1" and a "rules" list, not ${Array.isArray(raw) ? 'a list' : `a ${typeof raw}`}`]);

  const problems: CompileProblem[] = [];
  const schemaOk = validateRulesDocument(raw);
  const { document, removed } = schemaOk
    ? { document: raw as unknown as RulesDocument, removed: [] }
    : wellFormedPart(raw, validateRulesDocument.errors ?? [], problems);
  // Rules whose `when` (or a misspelt key that may have meant it) or route lost something to the
  // schema; sets, so that a file with many rules and many problems stays linear.
  const whenCut = new Set<number>();
  const routeCut = new Set<number>();
  for (const q of removed) {
    if (q[0] !== 'rules' || typeof q[1] !== 'number') continue;
    if (q.length === 2 || !RULE_KEYS_BESIDE_WHEN.has(q[2]!)) whenCut.add(q[1]);
    if (q.length === 2 || q[2] === 'route') routeCut.add(q[1]);
  }

  const timezone = typeof document.timezone === 'string' ? document.timezone : 'UTC';
  try {
    new Intl.DateTimeFormat('en-US', { timeZone: timezone });
  } catch {
    problems.push({ path: ['timezone'], message: `unknown time zone "${timezone}" (use an IANA name such as Europe/Paris)` });
  }

  const classifier = options.classifier?.(document.classifier, file, problems);
  if (classifier === undefined && document.classifier !== undefined) {
    problems.push({ path: ['classifier'], message: 'this compilation has no classifier (compile through src/rules-file/loader.ts)' });
  }
  const cc: ConditionCompiler = {
    fields: options.fields ?? builtinFields(),
    fieldOptions: { timezone: problems.length > 0 ? 'UTC' : timezone, classifier },
    usedFields: new Map<string, FieldGetter>(),
    regexSets: new Map<string, FieldRegexSet>(),
    namedModels: new Set<string>(),
  };

  const tiers = document.tiers ?? {};
  // A tier the schema refused still exists: rules naming it are not also told it is unknown.
  const tierNames = new Set(Object.keys(isObject(raw.tiers) ? raw.tiers : {}));
  for (const [name, tier] of Object.entries(tiers)) checkActions(tier, ['tiers', name], problems);

  const rules: CompiledRule[] = [];
  const seen = new Map<string, number>();
  let catchAll: string | undefined;
  (document.rules ?? []).forEach((spec, index) => {
    if (!isObject(spec)) return; // refused by the schema
    const path = ['rules', index];
    if (catchAll !== undefined) {
      problems.push({ path, message: `can never match: ${catchAll} before it matches every request (it has no conditions)` });
    }
    if (typeof spec.name === 'string') {
      if (seen.has(spec.name)) problems.push({ path: [...path, 'name'], message: `duplicate rule name: ${ruleName(raw, seen.get(spec.name)!)} has it too` });
      else seen.set(spec.name, index);
      const reserved = RESERVED_RULE_NAMES.get(spec.name);
      if (reserved !== undefined) problems.push({ path: [...path, 'name'], message: `the name "${spec.name}" is reserved: it names ${reserved}` });
    }

    const condition: Condition = spec.when === undefined ? ALWAYS : compileWhen(spec.when, [...path, 'when'], cc, problems);
    // A rule whose conditions were cut out, rather than absent, is not known to match everything.
    const isCatchAll = !whenCut.has(index) && (spec.when === undefined || Object.keys(spec.when).length === 0);
    if (isCatchAll) catchAll ??= ruleName(raw, index);

    const route = spec.route === undefined ? undefined
      : spec.route.split !== undefined ? compileSplit(spec, tiers, tierNames, [...path, 'route'], problems, cc)
      : compileAnyRoute(spec, tiers, tierNames, [...path, 'route'], problems, cc, !routeCut.has(index));
    const baseline = typeof spec.route?.baseline === 'string' ? baselineModel(spec.route.baseline, tiers, tierNames, [...path, 'route', 'baseline'], problems) : undefined;
    const shadow = spec.route?.shadow === undefined ? undefined : compileShadow(spec, tiers, tierNames, [...path, 'route', 'shadow'], problems);
    if (route) {
      const shapes = restrictedShapes(spec.when?.['request.api']);
      if (shapes !== undefined) checkShapeParams(route, shapes, [...path, 'route'], problems);
      rules.push({ name: spec.name, index, condition, route, description: spec.description, baseline, shadow });
    }
  });

  // `aliases: true`: a client may send a tier's name as its model; each tier's route is compiled
  // once here, as a rule's `route: { tier: <name> }` would be.
  const aliases = new Map<string, RewriteRoute>();
  if (document.aliases === true) {
    for (const name of Object.keys(tiers)) {
      const route = compileRoute({ name, route: { tier: name } }, tiers, tierNames, ['tiers', name], problems, true);
      if (route?.kind === 'rewrite') aliases.set(name, route);
    }
  }
  const baseline = typeof document.baseline === 'string' ? baselineModel(document.baseline, tiers, tierNames, ['baseline'], problems) : undefined;
  if (problems.length > 0) throw new RulesError(file, positioned(source, raw, problems));

  compileRegexSets(cc);
  const hash = createHash('sha256').update(text).digest('hex').slice(0, 12);
  const models = new Set(cc.namedModels);
  for (const tier of Object.values(tiers)) for (const m of [tier.model, ...(tier.fallbacks ?? [])]) models.add(m);
  for (const rule of rules) {
    for (const route of rule.route.kind === 'split' ? rule.route.arms.map((arm) => arm.route) : [rule.route]) addRouteModels(route, models);
    if (rule.shadow !== undefined) {
      for (const m of [rule.shadow.route.model, ...rule.shadow.route.fallbacks]) models.add(m);
      if (rule.shadow.judge !== undefined) models.add(rule.shadow.judge.model);
    }
  }
  if (baseline !== undefined) models.add(baseline);
  for (const rule of rules) if (rule.baseline !== undefined) models.add(rule.baseline);
  const readsClassification = [...cc.usedFields.keys()].some(isClassifyField);
  const readsBudget = [...cc.usedFields.keys()].some(isBudgetField);
  return new RuleSet({
    file, hash, timezone, rules, tiers: Object.keys(tiers), aliases, baseline, usedFields: cc.usedFields, models: [...models], classifier, readsClassification, readsBudget,
  });
}

/** Every model a compiled route may send to (the rules' model list: metrics labels, catalog warnings). */
function addRouteModels(route: CompiledRoute, models: Set<string>): void {
  const add = (r: RewriteRoute) => {
    for (const m of [r.model, ...r.fallbacks]) models.add(m);
  };
  if (route.kind === 'rewrite') add(route);
  if (route.kind === 'choose') for (const c of route.candidates) add(c.route);
  if (route.kind === 'tier_from') for (const t of route.tiers.values()) add(t);
  if (route.kind === 'cascade') for (const step of route.plan.steps) add(step.route);
}

/**
 * A baseline names a tier (its model) or a model. Tier names cannot contain `/` and model ids do,
 * so a name without one that is no tier is a misspelt tier, not a model.
 */
function baselineModel(name: string, tiers: Record<string, TierSpec>, tierNames: ReadonlySet<string>, path: Path, problems: CompileProblem[]): string | undefined {
  if (Object.hasOwn(tiers, name)) return tiers[name]!.model;
  if (name.includes('/')) return name;
  if (!tierNames.has(name)) problems.push({ path, message: `unknown tier "${name}" (a baseline is a tier or a model id such as openai/gpt-4o; tiers: ${[...tierNames].join(', ') || 'none defined'})` });
  return undefined;
}

/** A rules file with no rules: every request is forwarded unchanged as rule `none`. */
export function emptyRuleSet(): RuleSet {
  return compileRules('version: 1\nrules: []\n', '(no rules)');
}

type Path = (string | number)[];

/** Keys of a rule whose absence cannot make it match every request. */
const RULE_KEYS_BESIDE_WHEN = new Set<string | number>(['name', 'description', 'route']);

/** Longest name quoted in a message: a valid name has at most 64 characters, a hostile one any number. */
const MAX_QUOTED_NAME = 64;

function isObject(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

/** `rules[3] "code-tasks"`: how messages name a rule (the index alone when it has no usable name). */
function ruleName(raw: Record<string, unknown>, index: number): string {
  const name = (Array.isArray(raw.rules) && isObject(raw.rules[index]) ? raw.rules[index].name : undefined) as unknown;
  return typeof name === 'string' ? `rules[${index}] ${quotedName(name)}` : `rules[${index}]`;
}

/** A name from the file, quoted (control characters escaped) and shortened. */
function quotedName(name: string): string {
  return JSON.stringify(name.length > MAX_QUOTED_NAME ? `${name.slice(0, MAX_QUOTED_NAME)}…` : name);
}

/** Each problem as `file:line:col: rules[i] "name": message`, sorted by position, duplicates once. */
function positioned(source: YamlSource, raw: Record<string, unknown>, problems: readonly CompileProblem[]): string[] {
  const lines = problems.map((p) => {
    const options = { key: p.key ?? false };
    const pos = source.position(p.path, options);
    const rule = p.path[0] === 'rules' && typeof p.path[1] === 'number' ? `${ruleName(raw, p.path[1])}: ` : '';
    return { line: pos?.line ?? 0, col: pos?.col ?? 0, text: `${source.where(p.path, options)}: ${rule}${p.message}` };
  });
  lines.sort((a, b) => a.line - b.line || a.col - b.col);
  return [...new Set(lines.map((l) => l.text))];
}

/**
 * The schema's problems, and a copy of the document without the parts it refused: an unknown key
 * goes, a value of the wrong shape goes (a list item takes its list with it, except a rule, so
 * that later rules keep their index). `removed` lists what went, or is missing, so that checks
 * that depend on something being absent (a catch-all rule, a route's model or tier) stay quiet.
 */
function wellFormedPart(raw: Record<string, unknown>, errors: readonly ErrorObject[], problems: CompileProblem[]): { document: RulesDocument; removed: Path[] } {
  const copy = structuredClone(raw);
  const removed: Path[] = [];
  for (const e of errors) {
    const path = pointerToPath(e.instancePath);
    if (e.keyword === 'additionalProperties') {
      const extra = String((e.params as { additionalProperty: string }).additionalProperty);
      problems.push({ path: [...path, extra], key: true, message: `unknown key "${extra}" in ${describePath(path)}` });
      removed.push(cut(copy, [...path, extra]));
    } else if (e.keyword === 'propertyNames') {
      // The name stays: what it names is checked, and rules that use it find it.
      const name = String((e.params as { propertyName: string }).propertyName);
      problems.push({ path: [...path, name], key: true, message: `invalid name ${quotedName(name)} in ${describePath(path)}: use letters, digits, "_", "." and "-", at most 64` });
    } else if (e.propertyName === undefined) {
      problems.push({ path, message: `${describePath(path)} ${schemaMessage(e, valueAt(raw, path))}` });
      removed.push(e.keyword === 'required' ? [...path, String((e.params as { missingProperty: string }).missingProperty)] : cut(copy, path));
    }
  }
  return { document: copy as unknown as RulesDocument, removed };
}

function schemaMessage(e: ErrorObject, value: unknown): string {
  if (e.keyword === 'type' && Array.isArray(value)) return 'a list is not a matcher here: write { in: [...] }';
  if (e.keyword === 'const') return `must be ${JSON.stringify((e.params as { allowedValue: unknown }).allowedValue)}`;
  if (e.keyword === 'enum') return `must be one of ${JSON.stringify((e.params as { allowedValues: unknown }).allowedValues)}`;
  return e.message ?? 'is invalid';
}

/** Removes the value at `path` from `root`; returns the path actually removed. */
function cut(root: Record<string, unknown>, path: Path): Path {
  let p = path;
  while (typeof p[p.length - 1] === 'number' && !(p.length === 2 && p[0] === 'rules')) p = p.slice(0, -1);
  const parent = valueAt(root, p.slice(0, -1));
  const last = p[p.length - 1];
  if (Array.isArray(parent)) parent[last as number] = undefined;
  else if (isObject(parent) && last !== undefined) delete parent[last];
  return p;
}

function valueAt(doc: unknown, path: Path): unknown {
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

/** A path for a message; inside a rule, relative to it (the message names the rule first). */
function describePath(path: Path): string {
  const inRule = path[0] === 'rules' && typeof path[1] === 'number';
  const rest = inRule ? path.slice(2) : path;
  if (rest.length === 0) return inRule ? 'the rule' : 'the rules file';
  return rest.map((p) => (typeof p === 'number' ? `[${p}]` : p)).join('.').replace(/\.\[/g, '[');
}

function compileRetry(retry: RouteSpec['retry']): RetryOverride | undefined {
  return retry
    ? {
        ...(retry.max_attempts !== undefined && { maxAttempts: retry.max_attempts }),
        // A set now, once per rule: the proxy tests a status against it per failed attempt.
        ...(retry.statuses !== undefined && { statuses: new Set(retry.statuses) }),
        ...(retry.budget_ms !== undefined && { budgetMs: retry.budget_ms }),
      }
    : undefined;
}

/**
 * The shapes a top-level `request.api` condition lets a rule match (`eq`, `in`, `ne`, `not_in`,
 * or a plain value); undefined when the rule does not restrict them. Deeper conditions (under
 * any/all/not) are not read: they restrict less plainly, and such a rule's shape-only params are
 * skipped per request instead.
 */
function restrictedShapes(condition: unknown): readonly Api[] | undefined {
  if (condition === undefined) return undefined;
  const ops = condition !== null && typeof condition === 'object' && !Array.isArray(condition) ? Object.entries(condition) : [['eq', condition] as const];
  let shapes: readonly Api[] = APIS;
  for (const [op, value] of ops) {
    const list = Array.isArray(value) ? value : [value];
    if (op === 'eq' || op === 'in') shapes = shapes.filter((api) => list.includes(api));
    else if (op === 'ne' || op === 'not_in') shapes = shapes.filter((api) => !list.includes(api));
  }
  return shapes.length < APIS.length ? shapes : undefined;
}

/** Every rewrite a route may send (its own, a tier's, a split arm's, a cascade step's...). */
function rewritesOf(route: CompiledRoute): RewriteRoute[] {
  switch (route.kind) {
    case 'rewrite': return [route];
    case 'choose': return route.candidates.map((c) => c.route);
    case 'tier_from': return [...route.map.values(), ...(route.otherwise === undefined ? [] : [route.otherwise])];
    case 'split': return route.arms.flatMap((arm) => rewritesOf(arm.route));
    case 'cascade': return route.plan.steps.map((step) => step.route);
    default: return [];
  }
}

/**
 * A rule restricted to some shapes by `request.api` may not set a parameter that means nothing in
 * one of them (SHAPE_PARAMS): it would be skipped for every request the rule matches there.
 */
function checkShapeParams(route: CompiledRoute, shapes: readonly Api[], path: Path, problems: CompileProblem[]): void {
  const reported = new Set<string>();
  for (const rewrite of rewritesOf(route)) {
    for (const key of Object.keys(rewrite.params ?? {})) {
      const meaningful = SHAPE_PARAMS[key];
      const without = meaningful === undefined ? [] : shapes.filter((api) => !meaningful.includes(api));
      if (without.length === 0 || reported.has(key)) continue;
      reported.add(key);
      problems.push({
        path: [...path, 'params', key], key: true,
        message: `params.${key} has no meaning in the ${without.join(' and ')} API, which this rule's request.api condition lets it match (it is a ${meaningful!.join('/')} field)`,
      });
    }
  }
}

function checkActions(spec: ActionSpec, path: (string | number)[], problems: CompileProblem[]): void {
  for (const key of Object.keys(spec.params ?? {})) {
    const why = FORBIDDEN_PARAMS[key];
    if (why) problems.push({ path: [...path, 'params', key], key: true, message: `params may not set "${key}": ${why}` });
  }
  for (const [name, value] of Object.entries(spec.headers ?? {})) {
    if (!HEADER_NAME.test(name)) problems.push({ path: [...path, 'headers', name], key: true, message: `"${name}" is not a valid header name` });
    else if (FORBIDDEN_HEADERS.has(name.toLowerCase())) problems.push({ path: [...path, 'headers', name], key: true, message: `header "${name}" is set by the proxy and may not come from a rule` });
    // The value is not quoted: a rule's header may carry a provider secret.
    else if (!isFieldValue(value)) problems.push({ path: [...path, 'headers', name], message: `the value of header "${name}" must be ${FIELD_VALUE_RULE}` });
  }
}

/** The labels a `classify.*` field reads, for the fields whose values are labels. */
const FIELD_LABELS: ReadonlyMap<string, readonly string[]> = new Map<string, readonly string[]>([['classify.complexity', COMPLEXITY_LABELS], ['classify.task', TASK_LABELS]]);

/** A field's getter, registered as the rules' use of it (explain's `fields`, `readsClassification`, `readsBudget`); undefined after a problem. */
function usedField(field: string, path: Path, cc: ConditionCompiler, problems: CompileProblem[]): FieldGetter | undefined {
  const getter = cc.fields.compile(field, cc.fieldOptions);
  if (typeof getter === 'string') {
    problems.push({ path, message: getter });
    return undefined;
  }
  cc.usedFields.set(field, getter);
  return getter;
}

/** `tier_from`: stands alone but for retry and baseline, as `choose` does; every tier it names must exist. */
function compileTierFrom(
  spec: RuleSpec, tiers: Record<string, TierSpec>, tierNames: ReadonlySet<string>, path: Path, problems: CompileProblem[], cc: ConditionCompiler,
): TierFromRoute | undefined {
  const route = spec.route;
  const t = route.tier_from!;
  const at = [...path, 'tier_from'];
  const others = Object.keys(route).filter((k) => k !== 'tier_from' && k !== 'retry' && k !== 'baseline' && k !== 'description' && k !== 'shadow');
  if (others.length > 0) {
    problems.push({ path, message: `route.tier_from stands alone; remove ${others.map((k) => `"${k}"`).join(', ')} (put actions in the tiers it maps to)` });
    return undefined;
  }
  // What the schema cut out is reported already; the rest is still checked.
  if (typeof t.field !== 'string' || !isObject(t.map)) return undefined;
  let ok = true;
  const read = usedField(t.field, [...at, 'field'], cc, problems);
  const stickRead = t.stick_by === undefined ? undefined : usedField(t.stick_by, [...at, 'stick_by'], cc, problems);
  if (read === undefined || (t.stick_by !== undefined && stickRead === undefined)) ok = false;

  const routes = new Map<string, RewriteRoute>();
  const tierRoute = (name: string, where: Path): RewriteRoute | undefined => {
    if (!Object.hasOwn(tiers, name)) {
      // A tier the schema refused exists and is reported there.
      if (!tierNames.has(name)) problems.push({ path: where, message: `unknown tier "${name}" (tier_from maps to tiers; tiers: ${[...tierNames].join(', ') || 'none defined'})` });
      return undefined;
    }
    let compiled = routes.get(name);
    if (compiled === undefined) {
      const r = compileRoute({ name: spec.name, route: { tier: name } }, tiers, tierNames, where, problems, true);
      if (r?.kind !== 'rewrite') return undefined;
      routes.set(name, (compiled = r));
    }
    return compiled;
  };
  const labels = FIELD_LABELS.get(t.field);
  const map = new Map<string, RewriteRoute>();
  for (const [value, tier] of Object.entries(t.map)) {
    if (labels !== undefined && !labels.includes(value)) {
      problems.push({ path: [...at, 'map', value], key: true, message: `"${value}" is not a label of ${t.field} (labels: ${labels.join(', ')})` });
      ok = false;
      continue;
    }
    const r = tierRoute(tier, [...at, 'map', value]);
    if (r === undefined) ok = false;
    else map.set(value, r);
  }
  const otherwise = t.default === undefined ? undefined : tierRoute(t.default, [...at, 'default']);
  if (t.default !== undefined && otherwise === undefined) ok = false;
  if (labels !== undefined && t.default === undefined) {
    const missing = labels.filter((l) => !Object.hasOwn(t.map, l));
    if (missing.length > 0) {
      problems.push({ path: [...at, 'map'], message: `labels of ${t.field} not mapped: ${missing.join(', ')} (map every label, or give a default)` });
      ok = false;
    }
  }
  let confidence: FieldGetter | undefined;
  if (t.raise_below_confidence !== undefined) {
    if (t.field !== 'classify.complexity') {
      problems.push({ path: [...at, 'raise_below_confidence'], message: `raise_below_confidence moves a classify.complexity verdict one label up; it cannot apply to ${t.field}` });
      ok = false;
    } else {
      // Not a rule's use of the field: explain shows the confidence in the tier_from section.
      const getter = cc.fields.compile('classify.confidence', cc.fieldOptions);
      if (typeof getter !== 'string') confidence = getter;
    }
  }
  if (!ok || read === undefined) return undefined;
  return {
    kind: 'tier_from',
    field: t.field,
    read,
    map,
    otherwise,
    tiers: routes,
    raiseBelow: t.raise_below_confidence,
    confidence,
    stickBy: stickRead === undefined ? undefined : { field: t.stick_by!, read: stickRead, ttlMs: t.stick_ttl_ms ?? DEFAULT_STICK_TTL_MS },
    retry: compileRetry(route.retry),
  };
}

/** A route that is not a split: a cascade, a tier_from, or the others (compileRoute). */
function compileAnyRoute(
  spec: RuleSpec, tiers: Record<string, TierSpec>, tierNames: ReadonlySet<string>, path: Path, problems: CompileProblem[], cc: ConditionCompiler, complete: boolean,
): CompiledRoute | undefined {
  if (spec.route.cascade !== undefined) return compileCascade(spec, tiers, tierNames, path, problems);
  if (spec.route.tier_from !== undefined) return compileTierFrom(spec, tiers, tierNames, path, problems, cc);
  return compileRoute(spec, tiers, tierNames, path, problems, complete);
}

/** Keys a route may have beside the one that decides it (`split`, `cascade`): they apply to the rule, not to one arm or tier. */
const BESIDE_EXPERIMENTS = new Set(['retry', 'baseline', 'description', 'shadow']);

/** Whether `route` has nothing beside its experiment `key` but BESIDE_EXPERIMENTS; else a problem naming what to move (`where`). */
function standsAlone(route: RouteSpec, key: 'split' | 'cascade', where: string, path: Path, problems: CompileProblem[]): boolean {
  const others = Object.keys(route).filter((k) => k !== key && !BESIDE_EXPERIMENTS.has(k));
  if (others.length === 0) return true;
  problems.push({ path, message: `route.${key} stands alone; remove ${others.map((k) => `"${k}"`).join(', ')} (put actions in ${where})` });
  return false;
}

/** `split`: stands alone but for retry, baseline and shadow; each arm is a route of its own (not a split). */
function compileSplit(
  spec: RuleSpec, tiers: Record<string, TierSpec>, tierNames: ReadonlySet<string>, path: Path, problems: CompileProblem[], cc: ConditionCompiler,
): SplitRoute | undefined {
  const route = spec.route;
  const split = route.split!;
  if (!standsAlone(route, 'split', 'its arms', path, problems)) return undefined;
  if (!Array.isArray(split.arms)) return undefined;
  const at = [...path, 'split'];
  const sticky = split.sticky === undefined ? undefined : usedField(split.sticky, [...at, 'sticky'], cc, problems);
  let ok = split.sticky === undefined || sticky !== undefined;
  const arms: SplitArm[] = [];
  const names = new Set<string>();
  split.arms.forEach((armSpec, i) => {
    if (!isObject(armSpec)) return;
    const where = [...at, 'arms', i];
    const { name, weight, ...armRoute } = armSpec;
    if (names.has(name)) {
      problems.push({ path: [...where, 'name'], message: `duplicate arm name "${name}"` });
      ok = false;
    }
    if (name === NO_VARIANT) {
      problems.push({ path: [...where, 'name'], message: `the arm name "${NO_VARIANT}" is reserved: it labels requests of rules without a split` });
      ok = false;
    }
    names.add(name);
    const compiled = compileAnyRoute({ name: spec.name, route: armRoute }, tiers, tierNames, where, problems, cc, true);
    if (compiled === undefined || typeof weight !== 'number') {
      ok = false;
      return;
    }
    if (compiled.kind === 'reject') {
      problems.push({ path: where, message: 'an arm cannot reject: a split compares routes (put the reject in a rule before it)' });
      ok = false;
      return;
    }
    arms.push({ name, weight, route: compiled, seed: seedOf(`${spec.name}\u0000${name}`) });
  });
  const totalWeight = arms.reduce((sum, arm) => sum + arm.weight, 0);
  if (ok && totalWeight <= 0) {
    problems.push({ path: [...at, 'arms'], message: 'the arms\' weights add up to 0: give at least one a weight' });
    ok = false;
  }
  if (!ok) return undefined;
  return { kind: 'split', sticky: sticky === undefined ? undefined : { field: split.sticky!, read: sticky }, arms, totalWeight, retry: compileRetry(route.retry) };
}

/** A tier's compiled route (a rule's `route: { tier }`); undefined after a problem. */
function tierRouteOf(ruleName: string, name: string, tiers: Record<string, TierSpec>, tierNames: ReadonlySet<string>, where: Path, problems: CompileProblem[], what: string): RewriteRoute | undefined {
  if (!Object.hasOwn(tiers, name)) {
    if (!tierNames.has(name)) problems.push({ path: where, message: `unknown tier "${name}" (${what}; tiers: ${[...tierNames].join(', ') || 'none defined'})` });
    return undefined;
  }
  const route = compileRoute({ name: ruleName, route: { tier: name } }, tiers, tierNames, where, problems, true);
  return route?.kind === 'rewrite' ? route : undefined;
}

/** `cascade`: stands alone but for retry, baseline and shadow; its tiers must exist. */
function compileCascade(spec: RuleSpec, tiers: Record<string, TierSpec>, tierNames: ReadonlySet<string>, path: Path, problems: CompileProblem[]): CascadeRoute | undefined {
  const route = spec.route;
  const cascade = route.cascade!;
  if (!standsAlone(route, 'cascade', 'its tiers', path, problems)) return undefined;
  if (!Array.isArray(cascade.tiers)) return undefined;
  const at = [...path, 'cascade'];
  const steps: { tier: string; route: RewriteRoute }[] = [];
  let ok = true;
  cascade.tiers.forEach((tier, i) => {
    const compiled = tierRouteOf(spec.name, tier, tiers, tierNames, [...at, 'tiers', i], problems, 'a cascade tries tiers');
    if (compiled === undefined) ok = false;
    else steps.push({ tier, route: compiled });
  });
  const checks = cascade.checks ?? {};
  const maxEscalations = Math.min(cascade.max_escalations ?? cascade.tiers.length - 1, cascade.tiers.length - 1);
  if (!ok) return undefined;
  return {
    kind: 'cascade',
    plan: Object.freeze({
      rule: spec.name,
      steps,
      checks: {
        minLength: checks.min_length,
        refusalPhrases: checks.refusal_phrases ?? [],
        uncertaintyPhrases: checks.uncertainty_phrases ?? [],
        json: checks.json ?? 'auto',
      },
      maxEscalations,
      streamHold: { chars: cascade.stream_hold?.chars ?? DEFAULT_STREAM_HOLD.chars, ms: cascade.stream_hold?.ms ?? DEFAULT_STREAM_HOLD.ms },
      retry: compileRetry(route.retry),
    }),
    retry: compileRetry(route.retry),
  };
}

/** `shadow`: a tier or a model, exactly one. */
function compileShadow(spec: RuleSpec, tiers: Record<string, TierSpec>, tierNames: ReadonlySet<string>, path: Path, problems: CompileProblem[]): ShadowPlan | undefined {
  const shadow = spec.route.shadow!;
  if (spec.route.reject !== undefined) {
    problems.push({ path, message: 'a rule that rejects has no answer to shadow' });
    return undefined;
  }
  if ((shadow.model === undefined) === (shadow.tier === undefined)) {
    problems.push({ path, message: 'a shadow needs exactly one of "model" or "tier"' });
    return undefined;
  }
  const route = shadow.tier !== undefined
    ? tierRouteOf(spec.name, shadow.tier, tiers, tierNames, [...path, 'tier'], problems, 'a shadow copies to a tier or a model')
    : { kind: 'rewrite' as const, tier: undefined, model: shadow.model!, fallbacks: [], provider: undefined, maxTokens: undefined, params: undefined, systemPrompt: undefined, headers: undefined, retry: undefined };
  if (route === undefined) return undefined;
  return Object.freeze({
    rule: spec.name,
    route,
    sample: shadow.sample,
    maxConcurrency: shadow.max_concurrency ?? DEFAULT_SHADOW_CONCURRENCY,
    judge: shadow.judge === undefined ? undefined : { model: shadow.judge.model, prompt: shadow.judge.prompt ?? DEFAULT_JUDGE_PROMPT },
  });
}

/**
 * `complete` is false when the schema cut something out of this route: whether it lacks a model
 * or tier is then unknown, so only what is present is checked.
 */
function compileRoute(
  spec: RuleSpec, tiers: Record<string, TierSpec>, tierNames: ReadonlySet<string>, path: Path, problems: CompileProblem[], complete: boolean,
): CompiledRoute | undefined {
  const route = spec.route;
  // A shadow is the rule's, beside any route (compileShadow).
  const actionKeys = Object.keys(route).filter((k) => k !== 'description' && k !== 'shadow');
  const retry = compileRetry(route.retry);
  if (route.choose) {
    // Stands alone but for retry and baseline: each candidate brings its own actions (a tier's).
    const others = actionKeys.filter((k) => k !== 'choose' && k !== 'retry' && k !== 'baseline');
    if (others.length > 0) {
      problems.push({ path, message: `route.choose stands alone; remove ${others.map((k) => `"${k}"`).join(', ')} (put actions in the tiers it chooses from)` });
      return undefined;
    }
    const candidates: { name: string; route: RewriteRoute }[] = [];
    route.choose.from.forEach((name, i) => {
      if (Object.hasOwn(tiers, name)) {
        const tierRoute = compileRoute({ name: spec.name, route: { tier: name } }, tiers, tierNames, [...path, 'choose', 'from', i], problems, true);
        if (tierRoute?.kind === 'rewrite') candidates.push({ name, route: tierRoute });
      } else if (name.includes('/')) {
        candidates.push({ name, route: { kind: 'rewrite', tier: undefined, model: name, fallbacks: [], provider: undefined, maxTokens: undefined, params: undefined, systemPrompt: undefined, headers: undefined, retry: undefined } });
      } else if (!tierNames.has(name)) {
        problems.push({ path: [...path, 'choose', 'from', i], message: `unknown tier "${name}" (choose takes tiers and model ids such as openai/gpt-4o; tiers: ${[...tierNames].join(', ') || 'none defined'})` });
      }
    });
    if (candidates.length === 0) return undefined;
    return { kind: 'choose', candidates, require: route.choose.require ?? [], otherwise: route.choose.otherwise ?? 'reject', retry };
  }
  if (route.pass || route.reject) {
    const which = route.pass ? 'pass' : 'reject';
    // A pass may still say how its requests are retried; a reject calls nothing upstream.
    const others = actionKeys.filter((k) => k !== which && k !== 'baseline' && !(which === 'pass' && k === 'retry'));
    if (others.length > 0) {
      problems.push({ path, message: `route.${which} stands alone; remove ${others.map((k) => `"${k}"`).join(', ')}` });
      return undefined;
    }
    if (route.pass) return { kind: 'pass', retry };
    return { kind: 'reject', status: route.reject!.status, message: route.reject!.message ?? `Request rejected by routing rule "${spec.name}"` };
  }
  checkActions(route, path, problems);
  const unknownTier = route.tier !== undefined && !tierNames.has(route.tier);
  if (unknownTier) problems.push({ path: [...path, 'tier'], message: `unknown tier "${route.tier}" (tiers: ${[...tierNames].join(', ') || 'none defined'})` });
  if ((route.model === undefined) === (route.tier === undefined)) {
    if (complete) problems.push({ path, message: 'a route needs exactly one of "model" or "tier" (or "pass: true", or "reject")' });
    return undefined;
  }
  if (unknownTier) return undefined;
  let base: TierSpec | undefined;
  if (route.tier !== undefined) {
    base = tiers[route.tier];
    if (!base) return undefined; // a tier the schema refused, already reported
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
