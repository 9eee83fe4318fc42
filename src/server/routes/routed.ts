import type { FastifyBaseLogger, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import sjson from 'secure-json-parse';
import type { AccountOutcome, AccountRequest, Accounts } from '../../accounts/accounts.js';
import { clipText } from '../../bounded-text.js';
import type { Catalog } from '../../catalog/catalog.js';
import type { Caller } from '../../accounts/caller.js';
import { modelAllowed } from '../../accounts/keys-file.js';
import { InvalidJsonError, InvalidRequestError, ModelNotAllowedError, NoModelFitsError, RuleRejectedError } from '../../errors.js';
import { invalidMessages, type JsonObject, type RequestContext, type RouteDecision } from '../../rules/decision.js';
import { APIS, chatView, UPSTREAM_PATHS, type Api } from '../../rules/shapes.js';
import { explanationForClient, type RuleSet, type RulesSource } from '../../rules/ruleset.js';
import type { ClassifierResolver, Resolution } from '../../classify/resolver.js';
import type { Exchange } from '../exchange.js';
import { MAX_JUDGED_ANSWER_CHARS, type Shadows } from '../../experiments/shadow.js';
import { attemptModels } from '../../upstream/cooldown.js';
import type { AttemptPlan } from '../../upstream/attempts.js';
import { buildUpstreamHeaders } from '../../upstream/headers.js';
import { withRetryOverride } from '../../upstream/retry.js';
import { scanJsonBody } from '../json-body.js';
import { forward, type ForwardDeps, type ForwardTarget } from '../forward.js';
import { runCascade } from '../../experiments/cascade.js';
import type { StickyTiers } from '../sticky-tiers.js';

const EXPLAIN_PATH = '/v1/routing/explain';
/** The routed endpoint of each request shape (src/rules/shapes.ts; sent upstream to UPSTREAM_PATHS). */
const CLIENT_PATHS: Readonly<Record<Api, string>> = { chat: '/v1/chat/completions', responses: '/v1/responses', messages: '/v1/messages' };
/**
 * The paths whose requests the rules see, and the proxy's own POST /v1/feedback (routes/feedback.ts):
 * the pass-through route refuses every other spelling of them.
 */
export const ROUTED_V1_PATHS: readonly string[] = [...APIS.map((api) => CLIENT_PATHS[api]), EXPLAIN_PATH, '/v1/feedback'];

/** A routed request's body (any shape) as parsed once: the value for the router, the bytes for a body nobody rewrote. */
export interface ParsedJsonBody {
  readonly value: unknown;
  readonly raw: Buffer;
  /** Where the first number JSON.stringify would change is (src/server/json-body.ts), if any. */
  readonly unsafeNumberPath: string | undefined;
}

/**
 * Parses JSON once, rejecting `__proto__` and `constructor.prototype` keys (prototype poisoning
 * of whatever later merges the body, https://github.com/fastify/secure-json-parse), then scans it
 * once for what JSON.parse accepts but the proxy refuses (too deep, unpaired surrogates, repeated
 * keys; scanJsonBody).
 */
export function parseJsonBody(request: FastifyRequest, raw: Buffer, done: (err: Error | null, body?: ParsedJsonBody) => void): void {
  request.exchange.bytesIn = raw.length;
  const text = raw.toString('utf8');
  let value: unknown;
  try {
    value = sjson.parse(text, undefined, { protoAction: 'error', constructorAction: 'error' });
  } catch (err) {
    const message = err instanceof Error ? err.message : String(err);
    if (/prototype/i.test(message)) {
      done(new InvalidRequestError('Request body contains a forbidden key (__proto__ or constructor.prototype)', 'forbidden_json_key'));
    } else {
      done(new InvalidJsonError(message));
    }
    return;
  }
  let unsafeNumberPath: string | undefined;
  try {
    ({ unsafeNumberPath } = scanJsonBody(text));
  } catch (err) {
    done(err as Error);
    return;
  }
  done(null, { value, raw, unsafeNumberPath });
}

/**
 * The refusal of a body a rule rewrote (so it must be re-serialised) while it holds a number
 * JSON.stringify would change: the upstream would get another `seed` than the client sent, or
 * `null` for `1e400`. The client's own bytes keep them.
 */
function unsafeNumberError(path: string): InvalidRequestError {
  return new InvalidRequestError(
    `The number at ${path} cannot be forwarded exactly once the body is rewritten ` +
    '(it is beyond what a double holds: integers past 2^53, overflow, underflow); send it as a string or a smaller number',
    'unsafe_number',
  );
}

function isJsonObject(value: unknown): value is JsonObject {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}

/**
 * The proxy's attempts for a routed request. In chat, OpenRouter's own fallback (`models`) is used
 * first: attempt 1 sends the routed model with the whole list, and OpenRouter moves along it inside
 * that one call. Only when the whole call fails (a retryable status, no answer) does the proxy try
 * again, with the next model of the list first and the rest behind it; with a single model, the
 * same model again. The Responses and Messages shapes have no `models` list: each attempt sends one
 * model, and the proxy's retries walk the route's fallbacks (RouteDecision.fallbacks).
 */
export function attemptPlan(decision: Pick<RouteDecision, 'body' | 'model' | 'fallbacks'>, firstBody: Buffer | string, exactBytesOnly = false, api: Api = 'chat'): AttemptPlan {
  const { body } = decision;
  const models = routeModels(decision);
  return {
    models,
    bodyFor(attemptModels) {
      // The routed list as it is (also a retry of a single model): the body already decided. A body
      // whose numbers JSON.stringify would change is resent as it is: OpenRouter still walks its
      // `models` inside the call, and the client's numbers reach the upstream unchanged.
      if (sameModels(attemptModels, models) || exactBytesOnly) return firstBody;
      return JSON.stringify(api === 'chat' ? withModels(body, attemptModels) : { ...body, model: attemptModels[0] });
    },
  };
}

/**
 * The route's models, without repeats: the routed model, then OpenRouter's fallback list (`models`
 * of the body: chat's, or one a client wrote into another shape), then the fallbacks the proxy
 * tries itself in the shapes without that list. Every one of them may run: the allow-list checks
 * them all and the budget reserves for the dearest.
 */
function routeModels(decision: Pick<RouteDecision, 'body' | 'model' | 'fallbacks'>): string[] {
  const { body, model } = decision;
  const listed = Array.isArray(body.models) && body.models.every((m) => typeof m === 'string') ? (body.models as string[]) : [];
  const all = model !== undefined ? [model, ...listed] : [...listed];
  if (decision.fallbacks !== undefined) all.push(...decision.fallbacks);
  return [...new Set(all)];
}

function sameModels(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((m, i) => m === b[i]);
}

/** The body of an attempt that sends `models[0]`, with `models` as OpenRouter's fallback list when there are more. */
function withModels(body: Readonly<JsonObject>, models: readonly string[]): JsonObject {
  const next: JsonObject = { ...body, model: models[0] };
  if (models.length > 1) next.models = [...models];
  else delete next.models;
  return next;
}

/** Rules files already warned about (choose without a catalog): one line per rules load, not per request. */
const warned = new WeakSet<RuleSet>();

function warnOnce(ruleSet: RuleSet, warning: string, log: FastifyBaseLogger): void {
  if (warned.has(ruleSet)) return;
  warned.add(ruleSet);
  log.warn({ rules_hash: ruleSet.hash }, warning);
}

/** The query string of a request target, `?` included (empty when there is none). */
export function queryOf(url: string): string {
  const q = url.indexOf('?');
  return q === -1 ? '' : url.slice(q);
}

function routedContext(request: FastifyRequest, catalog: Catalog | undefined, stickyTiers: StickyTiers | undefined, api: Api = 'chat'): RequestContext {
  const parsed = request.body as ParsedJsonBody | undefined;
  if (parsed === undefined || !isJsonObject(parsed.value)) {
    throw new InvalidRequestError('The request body must be a JSON object', 'invalid_body');
  }
  const body = parsed.value;
  // The chat shape's own check; the other shapes are read through their view (src/rules/shapes.ts).
  if (api === 'chat') {
    const refused = invalidMessages(body);
    if (refused) throw refused;
  }
  return { headers: request.headers, body, requestedModel: typeof body.model === 'string' ? body.model : undefined, catalog, stickyTiers, caller: request.exchange.caller, api };
}

/** `?api=responses` or `?api=messages` on explain: the body is in that shape (chat by default). */
function explainApi(url: string): Api {
  const api = new URLSearchParams(queryOf(url)).get('api') ?? 'chat';
  if (!(APIS as readonly string[]).includes(api)) throw new InvalidRequestError(`api must be one of ${APIS.join(', ')}`, 'bad_request');
  return api as Api;
}

/**
 * The caller's model allow-list, before routing: the model the client asked for (a tier name
 * under `aliases: true` is no model: what it routes to is checked after routing). Before the
 * classifier, so a refused request costs nothing.
 */
function checkRequestedModel(caller: Caller | undefined, context: RequestContext, ruleSet: RuleSet): void {
  if (caller?.models === undefined) return;
  const model = context.requestedModel;
  if (model !== undefined && !ruleSet.aliasTiers.has(model) && !modelAllowed(caller, model)) throw new ModelNotAllowedError(clipText(model));
}

/**
 * The allow-list after routing: every model the upstream may run, the routed one and the
 * fallbacks the body hands OpenRouter (`models`, which a client could otherwise use to reach any
 * model). No model at all would be the account's default: refused too.
 */
function checkRoutedModels(caller: Caller | undefined, decision: Pick<RouteDecision, 'body' | 'model' | 'fallbacks'>): void {
  const refused = routedModelRefusal(caller, decision);
  if (refused !== undefined) throw refused;
}

/** Why the caller may not send this route (a model off its allow-list, or no model at all), or undefined. */
function routedModelRefusal(caller: Caller | undefined, decision: Pick<RouteDecision, 'body' | 'model' | 'fallbacks'>): ModelNotAllowedError | undefined {
  if (caller?.models === undefined) return undefined;
  const models = routeModels(decision);
  if (models.length === 0) return new ModelNotAllowedError(undefined);
  for (const m of models) if (!modelAllowed(caller, m)) return new ModelNotAllowedError(clipText(m));
  return undefined;
}

/** The upstream call of a routed decision: the client's bytes when no rule rewrote the body. */
function routedTarget(request: FastifyRequest, api: Api, parsed: ParsedJsonBody, proxy: ForwardDeps, decision: RouteDecision, captureAnswerChars: number | undefined): ForwardTarget {
  let upstreamBody: Buffer | string = parsed.raw;
  let extraHeaders = decision.upstreamHeaders;
  if (decision.bodyChanged) {
    upstreamBody = JSON.stringify(decision.body);
    extraHeaders = { ...extraHeaders, 'content-type': 'application/json' };
  }
  const exactBytesOnly = parsed.unsafeNumberPath !== undefined;
  return {
    method: 'POST',
    path: `${UPSTREAM_PATHS[api]}${queryOf(request.url)}`,
    api,
    body: upstreamBody,
    model: decision.model,
    // Built only when an attempt needs the route's models: a retry, or a breaker holding state.
    plan: () => attemptPlan(decision, upstreamBody, exactBytesOnly, api),
    retry: decision.retry ? withRetryOverride(proxy.retry, decision.retry) : proxy.retry,
    firstTokenTimeoutMs: proxy.firstTokenTimeoutMs,
    extraHeaders,
    tap: true,
    captureAnswerChars,
  };
}

/**
 * POST /v1/chat/completions, /v1/responses and /v1/messages: parse once, route, forward, relay.
 * POST /v1/routing/explain: the same input, the routing decision and its reasons, nothing sent upstream.
 */
export interface RoutedRoutesOptions {
  readonly rules: RulesSource;
  readonly proxy: ForwardDeps;
  /** The request log will want the prompt's hash: keep the parsed body until the head is written. */
  readonly keepPrompt: boolean;
  /** The model catalog in force, read once per request by the rules' `model.*` fields. */
  readonly catalog: { readonly current: Catalog | undefined };
  /** The tiers conversations keep (`tier_from.stick_by`); none kept when absent. */
  readonly stickyTiers?: StickyTiers;
  /** The asynchronous step before `decide`: verdicts of the llm, hybrid and embedding classifiers. */
  readonly classifiers: ClassifierResolver;
  /** Rate limits, budgets and spend per key, team and end user (src/accounts/accounts.ts): asked for requests with a caller. */
  readonly accounts?: Accounts;
  /** Shadow copies of a sample of the requests of rules with `route.shadow` (src/experiments/shadow.ts). */
  readonly shadows?: Shadows;
}

/**
 * `context` with what the rules read that needs I/O (src/classify/resolver.ts), and that call's
 * cost on the exchange. Only called when there is something to fetch: other requests await nothing.
 */
async function resolvedContext(pending: Resolution | Promise<Resolution>, context: RequestContext, exchange: Exchange): Promise<RequestContext> {
  const resolution = await pending;
  exchange.classifierCostUsd = resolution.costUsd;
  return { ...context, resolved: { ...context.resolved, ...resolution.resolved } };
}

/** Whether the rules may ask a classifier over the network (llm, hybrid, embedding): a paid call. */
function asksRemoteClassifier(ruleSet: RuleSet): boolean {
  return ruleSet.readsClassification && ruleSet.classifier !== undefined && ruleSet.classifier.method !== 'local';
}

/**
 * An account step's outcome on the response: its rate-limit headers (on the raw response, so Node
 * merges them into whatever head is written, the relay's or an error's), the refusal thrown, the
 * token estimate to settle.
 */
function applyOutcome(outcome: AccountOutcome, request: FastifyRequest, reply: FastifyReply): void {
  const res = reply.raw;
  for (const name in outcome.headers) res.setHeader(name, outcome.headers[name]!);
  if (outcome.tokenCharge !== undefined) request.exchange.tokenCharge = outcome.tokenCharge;
  if (outcome.refusal !== undefined) {
    if (outcome.retryAfterSeconds !== undefined) res.setHeader('retry-after', String(outcome.retryAfterSeconds));
    throw outcome.refusal;
  }
}

export async function routedRoutes(app: FastifyInstance, opts: RoutedRoutesOptions): Promise<void> {
  const { rules, proxy, keepPrompt, catalog, classifiers, stickyTiers, accounts, shadows } = opts;
  // Only JSON is a chat request: any other content type is a 415 (Fastify's answer when no parser matches).
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('application/json', { parseAs: 'buffer' }, parseJsonBody);

  // One handler for the three shapes: the same stages, the shape's paths and fields (src/rules/shapes.ts).
  const routed = (api: Api) => async (request: FastifyRequest, reply: FastifyReply): Promise<void> => {
    const context = routedContext(request, catalog.current, stickyTiers, api);
    const exchange = request.exchange;
    // The prompt's hash (and text) reads the chat shape's last user message.
    if (keepPrompt) exchange.chatBody = chatView(api, context.body);
    exchange.requestedModel = clipText(context.requestedModel);
    exchange.stream = context.body.stream === true;

    // One RuleSet for the whole request, even if the rules reload meanwhile. Authentication (an
    // onRequest hook) has passed: a refused caller never reaches the classifier's paid call. A
    // model the caller may not use is refused first: it takes nothing from the rate limits.
    const ruleSet = rules.current;
    checkRequestedModel(exchange.caller, context, ruleSet);

    // The caller's account (src/accounts/accounts.ts). Its rate limits are taken before anything
    // paid: before a network classifier, and together with the budget reservation otherwise.
    // Explain is not limited: it sends nothing upstream but a classifier call, and is the tool to
    // ask how a request would be routed while limited.
    const caller = exchange.caller;
    const account: AccountRequest | undefined = accounts !== undefined && caller !== undefined ? accounts.open(caller, chatView(api, context.body), request.headers) : undefined;
    let limitsTaken = false;
    let resolved = context;
    if (account !== undefined && (ruleSet.readsBudget || asksRemoteClassifier(ruleSet))) {
      // A second round trip only for these rules: the limits (and the balances the rules read) now, the reservation after the decision.
      const outcome = await accounts!.admit(account, { limits: true, reads: ruleSet.readsBudget });
      applyOutcome(outcome, request, reply);
      limitsTaken = true;
      if (outcome.fields !== undefined) resolved = { ...context, resolved: { budget: outcome.fields } };
    }

    const pending = classifiers.resolve(ruleSet, resolved);
    if (pending !== undefined) {
      resolved = await resolvedContext(pending, resolved, exchange);
      // The client may have left while the classifier was asked (up to its timeout): nothing is
      // sent upstream for it (a paid call nobody reads), and its record already says 499.
      if (request.raw.socket?.destroyed === true) {
        request.log.debug('client left while the classifier was asked: nothing sent upstream');
        reply.hijack();
        return;
      }
    }
    const decision = ruleSet.decide(resolved);
    // The conversation's later turns keep this tier (explain reads the store, never writes it).
    if (decision.stick !== undefined) stickyTiers?.set(decision.stick.key, decision.stick.tier, decision.stick.ttlMs);
    exchange.rule = decision.rule;
    exchange.routedModel = clipText(decision.model);
    exchange.baselineModel = decision.baseline;
    exchange.classification = decision.classification;
    exchange.variant = decision.split?.variant;
    exchange.splitAssignment = decision.split?.assignment;
    if (decision.reject) {
      if (decision.reject.code === 'no_model_fits') throw new NoModelFitsError(decision.reject.message);
      throw new RuleRejectedError(decision.reject.status, decision.reject.message);
    }
    checkRoutedModels(exchange.caller, decision);
    if (decision.warning !== undefined) warnOnce(rules.current, decision.warning, request.log);

    const parsed = request.body as ParsedJsonBody;
    if (decision.bodyChanged && parsed.unsafeNumberPath !== undefined) throw unsafeNumberError(parsed.unsafeNumberPath);
    if (account !== undefined) {
      // Last before sending: the rate limits (unless taken above) and the reservation of the routed
      // models' worst case against every budget, in one atomic step; a budget that cannot hold it
      // refuses the request before it costs anything (429 insufficient_quota).
      // A cascade may pay for every tier it escalates to: their worst cases are reserved too.
      const laterSteps = decision.cascade?.steps.slice(1, 1 + decision.cascade.maxEscalations).map((step) => [step.route.model, ...step.route.fallbacks]);
      const outcome = await accounts!.admit(account, {
        limits: !limitsTaken, reads: false, reserveFor: { models: routeModels(decision), laterSteps, catalog: catalog.current },
      });
      applyOutcome(outcome, request, reply);
      exchange.spendSettlement = outcome.settlement;
    }
    // Sent once the response has ended (the recorder), from the client's body as it is now.
    if (decision.shadow !== undefined) exchange.shadow = shadows?.prepare(decision.shadow, context.body, decision.body, api);
    const captureAnswerChars = exchange.shadow?.judged === true ? MAX_JUDGED_ANSWER_CHARS : undefined;
    const target = (d: RouteDecision): ForwardTarget => routedTarget(request, api, parsed, proxy, d, captureAnswerChars);
    if (decision.cascade !== undefined) {
      // Later tiers the caller may not use, or whose rewrite would change the client's numbers, are not escalated to.
      const targetFor = (d: RouteDecision) => (d.bodyChanged && parsed.unsafeNumberPath !== undefined) || routedModelRefusal(exchange.caller, d) !== undefined ? undefined : target(d);
      await runCascade(request, reply, proxy, { decision, context: resolved, targetFor, catalog: catalog.current });
      return;
    }
    await forward(request, reply, proxy, target(decision));
  };
  for (const api of APIS) app.post(CLIENT_PATHS[api], routed(api));

  app.post(EXPLAIN_PATH, async (request) => {
    const api = explainApi(request.url);
    const context = routedContext(request, catalog.current, stickyTiers, api);
    const now = Date.now();
    // The credential a chat request with these headers would send: cooldowns after a 429 are its own.
    const authorization = buildUpstreamHeaders(request.headers, proxy.headerOptions, request.id).authorization;
    const credential = proxy.cooldowns.credentialOf(authorization);
    // Models the proxy is skipping now (see docs/reliability.md), with the end of their cooldown.
    const cooling = Object.entries(proxy.cooldowns.cooling(now, credential)).map(([model, until]) => ({ model, until: new Date(until).toISOString() }));
    // Explain asks the llm or embedding classifier as a request would (cached alike), so that it
    // shows what a request would get: docs/classifiers.md, "Explain".
    const ruleSet = rules.current;
    const caller = request.exchange.caller;
    checkRequestedModel(caller, context, ruleSet);
    // The spend fields as a request would read them; nothing is taken or reserved.
    let resolved = context;
    if (ruleSet.readsBudget && accounts !== undefined && caller !== undefined) {
      resolved = { ...context, resolved: { budget: await accounts.read(accounts.open(caller, chatView(api, context.body), request.headers)) } };
    }
    const pending = classifiers.resolve(ruleSet, resolved);
    const explanation = explanationForClient(ruleSet.explain(pending === undefined ? resolved : await resolvedContext(pending, resolved, request.exchange)));
    // A request the chat route would refuse is refused here too, for the same reason.
    if (explanation.reject === undefined) {
      checkRoutedModels(request.exchange.caller, { body: (explanation.body ?? context.body) as Readonly<JsonObject>, model: explanation.model, fallbacks: explanation.fallbacks });
    }
    // The other shapes have no `models` list to leave cooling models out of.
    if (explanation.body === undefined || context.api !== 'chat') return { ...explanation, cooling_models: cooling };
    // The body as the first attempt would send it: cooling models left out, the probe not taken.
    const body = explanation.body as Readonly<JsonObject>;
    const route = routeModels({ body, model: explanation.model });
    // As the chat route does: refused when rewritten, never re-serialised for the cooling models.
    const { unsafeNumberPath } = request.body as ParsedJsonBody;
    if (unsafeNumberPath !== undefined && explanation.body_changed) throw unsafeNumberError(unsafeNumberPath);
    const first = attemptModels(route, undefined, proxy.cooldowns, credential, now);
    if (sameModels(first, route) || unsafeNumberPath !== undefined) return { ...explanation, cooling_models: cooling };
    return { ...explanation, body: withModels(body, first), body_changed: true, cooling_models: cooling };
  });
}
