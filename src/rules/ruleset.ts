import { basename } from 'node:path';
import { applyRewrite, type CompiledRoute, type RetryOverride, type RewriteRoute } from './actions.js';
import { choose, noModelFits, servingFallbacks, type CandidateVerdict, type Choice, type DroppedFallback } from './choose.js';
import { shown, type Condition, type Failure } from './conditions.js';
import { NO_RULE, type RequestContext, type RouteDecision } from './decision.js';
import { EvalInput, type FieldGetter } from './fields.js';
import type { ClassifierConfig } from '../classify/config.js';
import type { Classification } from '../classify/labels.js';
import { tierFrom, type TierFromExplanation, type TierFromResult } from './tier-from.js';
import type { CascadePlan } from './cascade.js';
import type { ShadowPlan } from './shadow.js';
import { chooseArm, type SplitChoice } from './split.js';
import { chatView } from './shapes.js';

export interface CompiledRule {
  readonly name: string;
  /** Position in the file, from 0. */
  readonly index: number;
  readonly condition: Condition;
  readonly route: CompiledRoute;
  readonly description: string | undefined;
  /** The rule's own baseline model, over the file's. */
  readonly baseline: string | undefined;
  /** The rule's shadow, when it copies a sample of its requests to a candidate. */
  readonly shadow?: ShadowPlan | undefined;
}

export interface RuleTrace {
  readonly rule: string;
  readonly matched: boolean;
  /** For a rule that did not match: the first condition that failed. */
  readonly failed?: Failure;
  /** A `choose` rule that matched but let evaluation go on (`otherwise: next_rule`), or a `tier_from` whose map named no tier: why. */
  readonly skipped?: string;
}

export interface Explanation {
  readonly rules_file: string;
  readonly rules_hash: string;
  /** The rule that decided, `none` when none matched. */
  readonly rule: string;
  readonly action: 'route' | 'pass' | 'reject' | 'none';
  readonly tier: string | undefined;
  /** The tier the client's model named (`aliases: true`) and the request was resolved to, when it was. */
  readonly alias: string | undefined;
  /** The model this request's cost is compared with (`baseline:`), when the rules name one. */
  readonly baseline: string | undefined;
  /** For a `tier_from` rule: the value read (the verdict, its confidence and method), any raise, the tier, and whether it was a conversation's kept tier. */
  readonly tier_from?: TierFromExplanation;
  /** For a `split` rule: the arm, how it was assigned, the sticky field and every arm's weight. */
  readonly split?: { variant: string; assignment: string; sticky: string | undefined; arms: { name: string; weight: number }[] };
  /** For a `cascade` rule: the plan (tiers in order, checks, escalations, stream hold). */
  readonly cascade?: Record<string, unknown>;
  /** For a rule with a `shadow`: the candidate, the sample, the concurrency and the judge's model. */
  readonly shadow?: Record<string, unknown>;
  /** For a `choose` rule: every candidate, its estimated cost, and why it was kept or dropped. */
  readonly choice?: readonly CandidateVerdict[];
  /** Fallbacks of the route that were not sent because they cannot serve this request, and why. */
  readonly dropped_fallbacks?: readonly DroppedFallback[];
  /** Something the operator should know (choose without a catalog). */
  readonly warning?: string;
  /** The verdict the rules read (`classify.*`): labels, confidence and the method that made it. */
  readonly classification?: Classification;
  /** The model sent upstream. */
  readonly model: string | undefined;
  /** In the Responses and Messages shapes (no `models` list): the models the proxy's retries try after `model`, in order. */
  readonly fallbacks?: readonly string[];
  readonly route: Record<string, unknown> | undefined;
  readonly reject: { status: number; message: string } | undefined;
  /** Rules evaluated in order, up to and including the one that matched. */
  readonly trace: RuleTrace[];
  /** The value of every field the rules use, for this request. */
  readonly fields: Record<string, unknown>;
  /** Exactly the body that would be sent upstream. */
  readonly body: unknown;
  readonly body_changed: boolean;
  readonly upstream_headers: Readonly<Record<string, string>>;
}

/** The rule that decided (index -1: none), with what its route worked out while matching. */
interface Match {
  readonly index: number;
  readonly choice: Choice | undefined;
  readonly mapped?: TierFromResult | undefined;
  /** The route that decides: the rule's, or the arm's of its split. */
  readonly route?: CompiledRoute;
  readonly split?: SplitChoice | undefined;
}
const NO_MATCH: Match = Object.freeze({ index: -1, choice: undefined });

export interface RuleSetInit {
  readonly file: string;
  readonly hash: string;
  readonly timezone: string;
  readonly rules: readonly CompiledRule[];
  readonly tiers: readonly string[];
  /** With `aliases: true`: each tier's route by the tier's name; empty otherwise. */
  readonly aliases: ReadonlyMap<string, RewriteRoute>;
  /** The file's baseline model (`baseline:`, a tier resolved to its model). */
  readonly baseline?: string | undefined;
  readonly usedFields: ReadonlyMap<string, FieldGetter>;
  readonly models: readonly string[];
  /** The `classifier:` block, compiled (the shipped local model when the file has none); undefined when compiled without one. */
  readonly classifier?: ClassifierConfig | undefined;
  /** Some rule reads `classify.*`: the asynchronous step resolves a verdict for methods that need I/O. */
  readonly readsClassification?: boolean;
  /** Whether any rule reads a spend field (`budget.*`, `team.*`, `user.*`): the server then reads the caller's balances first. */
  readonly readsBudget?: boolean;
}

/**
 * Where the request path reads the rules in force from, once per request: `LiveRules`
 * (src/rules-file/, reloaded when the file changes) or a fixed `{ current: ruleSet }`.
 */
export interface RulesSource {
  readonly current: RuleSet;
}

/**
 * A compiled, immutable rules file. Pure: no I/O; the clock is read only when a rule reads `time.*`
 * and the context brings no `now`.
 * First match wins; no match forwards the request unchanged as rule `none`.
 */
export class RuleSet {
  readonly file: string;
  readonly hash: string;
  readonly timezone: string;
  readonly rules: readonly CompiledRule[];
  readonly tiers: readonly string[];
  /** Every model name the file mentions: in tiers, routes, fallbacks and conditions on `model`. */
  readonly models: readonly string[];
  private readonly usedFields: ReadonlyMap<string, FieldGetter>;
  private readonly aliases: ReadonlyMap<string, RewriteRoute>;
  /** What the team would use without routing; each decision names it (RouteDecision.baseline). */
  readonly baseline: string | undefined;
  readonly classifier: ClassifierConfig | undefined;
  /** Some rule reads `classify.*` (see RuleSetInit). */
  readonly readsClassification: boolean;
  readonly readsBudget: boolean;

  constructor(init: RuleSetInit) {
    this.file = init.file;
    this.hash = init.hash;
    this.timezone = init.timezone;
    this.rules = Object.freeze([...init.rules]);
    this.tiers = Object.freeze([...init.tiers]);
    this.models = Object.freeze([...init.models]);
    this.usedFields = init.usedFields;
    this.aliases = init.aliases;
    this.baseline = init.baseline;
    this.classifier = init.classifier;
    this.readsClassification = init.readsClassification ?? false;
    this.readsBudget = init.readsBudget ?? false;
    Object.freeze(this);
  }

  private input(context: RequestContext): EvalInput {
    return new EvalInput(context.headers, context.body, context.now, context.clock, context.catalog, context.resolved, context.caller, context.api);
  }

  /** With `aliases: true`: the tiers a client may name as its model, with their models; empty otherwise. */
  get aliasTiers(): ReadonlyMap<string, RewriteRoute> {
    return this.aliases;
  }

  /**
   * The first rule whose conditions hold and that decides: a `choose` with `otherwise: next_rule`
   * whose candidates all fail to fit lets evaluation go on. Index -1: none.
   */
  private firstMatch(input: EvalInput, context: RequestContext, trace?: RuleTrace[]): Match {
    const rules = this.rules;
    for (let i = 0; i < rules.length; i++) {
      const rule = rules[i]!;
      if (trace === undefined) {
        if (!rule.condition.test(input)) continue;
      } else {
        const failed = rule.condition.explain(input);
        if (failed) {
          trace.push({ rule: rule.name, matched: false, failed });
          continue;
        }
      }
      // A split's arm is the route from here on (src/rules/split.ts).
      const split = rule.route.kind === 'split' ? chooseArm(rule.route, (get) => get(input), context.random ?? Math.random) : undefined;
      const route = split?.arm.route ?? rule.route;
      const choice = route.kind === 'choose' ? choose(route, input.view, context.catalog, input.now) : undefined;
      if (choice !== undefined && choice.route === undefined && route.kind === 'choose' && route.otherwise === 'next_rule') {
        trace?.push({ rule: rule.name, matched: true, skipped: `no candidate fits: ${noModelFits(choice.verdicts)}` });
        continue;
      }
      const mapped = route.kind === 'tier_from' ? tierFrom(route, rule.name, input, context.stickyTiers) : undefined;
      if (mapped !== undefined && mapped.route === undefined) {
        trace?.push({ rule: rule.name, matched: true, skipped: mapped.skipped! });
        continue;
      }
      trace?.push({ rule: rule.name, matched: true });
      return { index: i, choice, mapped, route, split };
    }
    return NO_MATCH;
  }

  decide(context: RequestContext): RouteDecision {
    const input = this.input(context);
    const match = this.firstMatch(input, context);
    return this.finished(match.index === -1 ? this.unrewritten(context, NO_RULE, undefined) : this.apply(this.rules[match.index]!, context, match), match, input.verdict);
  }

  /**
   * The decision with the baseline it is measured against (its rule's, else the file's), the
   * verdict the rules read, and the rule's experiments: its split arm and its shadow (a rejected
   * request has no answer to shadow).
   */
  private finished(decision: RouteDecision, match: Match, verdict: Classification | undefined): RouteDecision {
    const rule = match.index === -1 ? undefined : this.rules[match.index]!;
    const baseline = rule?.baseline ?? this.baseline;
    const split = match.split;
    const shadow = decision.reject === undefined ? rule?.shadow : undefined;
    if (baseline === undefined && verdict === undefined && split === undefined && shadow === undefined) return decision;
    return {
      ...decision,
      ...(baseline !== undefined && { baseline }),
      ...(verdict !== undefined && { classification: verdict }),
      ...(split !== undefined && { split: { variant: split.arm.name, assignment: split.assignment } }),
      ...(shadow !== undefined && { shadow }),
    };
  }

  private apply(rule: CompiledRule, context: RequestContext, { choice, mapped, route: matched }: Match): RouteDecision {
    const route = matched ?? rule.route;
    const retry = rule.route.kind === 'split' ? rule.route.retry : undefined;
    switch (route.kind) {
      case 'split':
        // Arms are never splits (compileSplit); a split is replaced by its arm in firstMatch.
        throw new Error('unreachable: a split route is resolved to its arm before it applies');
      case 'cascade': {
        const first = route.plan.steps[0]!;
        return { ...rewritten(rule.name, first.route, context, retry ?? route.retry ?? first.route.retry), tier: first.tier, cascade: route.plan };
      }
      case 'tier_from': {
        const picked = mapped!.route!;
        const decision = rewritten(rule.name, picked, context, route.retry ?? retry ?? picked.retry);
        return mapped!.stick === undefined ? decision : { ...decision, stick: mapped!.stick };
      }
      case 'choose': {
        const picked = choice?.route;
        if (picked === undefined) {
          return { ...unchanged(context, rule.name), reject: { status: 400, message: noModelFits(choice?.verdicts ?? []), code: 'no_model_fits' } };
        }
        return { ...rewritten(rule.name, picked, context, route.retry ?? retry ?? picked.retry), ...(choice?.warning !== undefined && { warning: choice.warning }) };
      }
      case 'pass':
        return this.unrewritten(context, rule.name, route.retry ?? retry);
      case 'reject':
        return { ...unchanged(context, rule.name), reject: { status: route.status, message: route.message } };
      case 'rewrite':
        return rewritten(rule.name, route, context, route.retry ?? retry);
    }
  }

  /**
   * A request no rule gave a model (none matched, or `pass`): forwarded as the client sent it, or,
   * with `aliases: true` and a tier's name as its model, routed as that tier. Rules saw the name
   * the client sent; tier names cannot be model ids (no `/`), so no real model is shadowed.
   */
  private unrewritten(context: RequestContext, rule: string, retry: RetryOverride | undefined): RouteDecision {
    const requested = context.requestedModel;
    const alias = this.aliases.size === 0 || requested === undefined ? undefined : this.aliases.get(requested);
    if (alias === undefined) return retry === undefined ? unchanged(context, rule) : { ...unchanged(context, rule), retry };
    return { ...rewritten(rule, alias, context, retry ?? alias.retry), alias: alias.tier };
  }

  /** The decision with its reasons: each rule tried, the first condition that failed, field values. */
  explain(context: RequestContext): Explanation {
    const input = this.input(context);
    const trace: RuleTrace[] = [];
    const match = this.firstMatch(input, context, trace);
    const { index, choice, mapped } = match;
    const matched = index === -1 ? undefined : this.rules[index];
    const fields: Record<string, unknown> = {};
    for (const [name, get] of this.usedFields) fields[name] = shown(get(input));

    const decision = this.finished(matched ? this.apply(matched, context, match) : this.unrewritten(context, NO_RULE, undefined), match, input.verdict);
    const route = match.route ?? matched?.route;
    const alias = decision.alias === undefined ? undefined : this.aliases.get(decision.alias);
    return {
      rules_file: this.file,
      rules_hash: this.hash,
      rule: decision.rule,
      action: !route ? 'none' : decision.reject ? 'reject' : route.kind === 'pass' ? 'pass' : 'route',
      tier: decision.tier,
      alias: decision.alias,
      model: decision.model,
      baseline: decision.baseline,
      route: alias !== undefined ? describeRoute(alias)
        : route?.kind === 'rewrite' ? describeRoute(route)
        : route?.kind === 'choose' && choice?.route !== undefined ? describeRoute(choice.route)
        : route?.kind === 'tier_from' && mapped?.route !== undefined ? describeRoute(mapped.route)
        : route?.kind === 'cascade' ? describeRoute(route.plan.steps[0]!.route)
        : route?.kind === 'pass' && route.retry ? { pass: true, retry: describeRetry(route.retry) } : undefined,
      ...(mapped !== undefined && { tier_from: mapped.explanation }),
      ...(match.split !== undefined && matched?.route.kind === 'split' && {
        split: {
          variant: match.split.arm.name, assignment: match.split.assignment, sticky: matched.route.sticky?.field,
          arms: matched.route.arms.map((arm) => ({ name: arm.name, weight: arm.weight })),
        },
      }),
      ...(decision.cascade !== undefined && { cascade: describeCascade(decision.cascade) }),
      ...(decision.shadow !== undefined && { shadow: describeShadow(decision.shadow) }),
      ...(choice !== undefined && { choice: choice.verdicts }),
      ...(decision.fallbacks !== undefined && { fallbacks: decision.fallbacks }),
      ...(decision.droppedFallbacks !== undefined && { dropped_fallbacks: decision.droppedFallbacks }),
      ...(choice?.warning !== undefined && { warning: choice.warning }),
      ...(input.verdict !== undefined && { classification: input.verdict }),
      reject: decision.reject,
      trace,
      fields,
      body: decision.reject ? undefined : decision.body,
      body_changed: decision.bodyChanged,
      upstream_headers: decision.upstreamHeaders ?? {},
    };
  }
}

/** What replaces a header value in an explanation served over HTTP. */
const REDACTED_VALUE = '[redacted]';

function namesOnly(headers: Readonly<Record<string, string>>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const name in headers) out[name] = REDACTED_VALUE;
  return out;
}

/**
 * An explanation as any client of POST /v1/routing/explain may see it: a rule's upstream header
 * values (which may hold a provider secret) become `[redacted]`, and the rules file is named by
 * its base name, not the absolute path of the server's filesystem. The CLI (`check`, `test`)
 * runs locally and uses the whole explanation.
 */
export function explanationForClient(explanation: Explanation): Explanation {
  const routeHeaders = explanation.route?.headers as Readonly<Record<string, string>> | undefined;
  return {
    ...explanation,
    rules_file: basename(explanation.rules_file),
    ...(routeHeaders && { route: { ...explanation.route, headers: namesOnly(routeHeaders) } }),
    upstream_headers: namesOnly(explanation.upstream_headers),
  };
}

function rewritten(rule: string, route: RewriteRoute, context: RequestContext, retry: RetryOverride | undefined): RouteDecision {
  // Fallbacks that cannot serve this request are not sent (only with a catalog, and only when it says so).
  const api = context.api ?? 'chat';
  // What the request needs (images, tools, JSON, its size), read in the chat shape whatever the client's.
  const fallbacks = servingFallbacks(route.fallbacks, chatView(api, context.body), context.catalog);
  const kept = fallbacks.dropped.length === 0 ? route : { ...route, fallbacks: fallbacks.kept };
  const applied = applyRewrite(kept, context.body, api);
  return {
    rule,
    tier: route.tier,
    model: route.model,
    body: applied.body,
    bodyChanged: applied.changed,
    retry,
    // Shapes without OpenRouter's `models` list: the fallbacks are the proxy's to try.
    ...(api !== 'chat' && kept.fallbacks.length > 0 && { fallbacks: kept.fallbacks }),
    ...(route.headers && { upstreamHeaders: route.headers }),
    ...(fallbacks.dropped.length > 0 && { droppedFallbacks: fallbacks.dropped }),
  };
}

function unchanged(context: RequestContext, rule: string): RouteDecision {
  return { rule, model: context.requestedModel, body: context.body, bodyChanged: false };
}

function describeRoute(route: Extract<CompiledRoute, { kind: 'rewrite' }>): Record<string, unknown> {
  const out: Record<string, unknown> = { model: route.model };
  if (route.tier) out.tier = route.tier;
  if (route.fallbacks.length) out.fallbacks = route.fallbacks;
  if (route.provider) out.provider = route.provider;
  if (route.maxTokens !== undefined) out.max_tokens = route.maxTokens;
  if (route.params) out.params = route.params;
  if (route.systemPrompt) out.system_prompt = route.systemPrompt;
  if (route.headers) out.headers = route.headers;
  if (route.retry) out.retry = describeRetry(route.retry);
  return out;
}

/** A cascade's plan as explain shows it: the rules file's words. */
function describeCascade(plan: CascadePlan): Record<string, unknown> {
  const checks: Record<string, unknown> = { json: plan.checks.json };
  if (plan.checks.minLength !== undefined) checks.min_length = plan.checks.minLength;
  if (plan.checks.refusalPhrases.length > 0) checks.refusal_phrases = plan.checks.refusalPhrases;
  if (plan.checks.uncertaintyPhrases.length > 0) checks.uncertainty_phrases = plan.checks.uncertaintyPhrases;
  return {
    tiers: plan.steps.map((step) => ({ tier: step.tier, model: step.route.model })),
    checks,
    max_escalations: plan.maxEscalations,
    stream_hold: { chars: plan.streamHold.chars, ms: plan.streamHold.ms },
  };
}

/** A shadow as explain shows it. */
function describeShadow(plan: ShadowPlan): Record<string, unknown> {
  return {
    model: plan.route.model, ...(plan.route.tier !== undefined && { tier: plan.route.tier }),
    sample: plan.sample, max_concurrency: plan.maxConcurrency, ...(plan.judge !== undefined && { judge: plan.judge.model }),
  };
}

/**
 * The decision for a cascade's step `index` (its first is the rule's decision): the step's tier
 * applied to the client's request, as a rule routing to that tier would. Built by the server only
 * when an answer fails its checks.
 */
export function cascadeStep(plan: CascadePlan, index: number, context: RequestContext, retry: RetryOverride | undefined = plan.retry): RouteDecision {
  const step = plan.steps[index]!;
  return { ...rewritten(plan.rule, step.route, context, retry ?? step.route.retry), tier: step.tier };
}

/** A rule's retry settings as the rules file writes them. */
function describeRetry(retry: RetryOverride): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  if (retry.maxAttempts !== undefined) out.max_attempts = retry.maxAttempts;
  if (retry.statuses !== undefined) out.statuses = [...retry.statuses];
  if (retry.budgetMs !== undefined) out.budget_ms = retry.budgetMs;
  return out;
}
