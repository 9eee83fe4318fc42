import type { FastifyBaseLogger } from 'fastify';
import type { Catalog } from '../catalog/catalog.js';
import { requestCost } from '../catalog/cost.js';
import { answerCost, MAX_CLASSIFIER_ANSWER_BYTES } from '../classify/remote.js';
import type { SignalboxMetrics } from '../metrics/metrics.js';
import { applyRewrite } from '../rules/actions.js';
import type { JsonObject } from '../rules/decision.js';
import type { ShadowPlan } from '../rules/shadow.js';
import { UPSTREAM_PATHS, type Api } from '../rules/shapes.js';
import type { ExchangeRecord } from '../server/record.js';
import type { UpstreamClient } from '../upstream/client.js';
import { answerOfBody } from '../upstream/answer-text.js';
import { usageOf, type TokenUsage } from '../upstream/response-tap.js';
import { shapeBodyFacts } from '../upstream/shape-facts.js';

/**
 * Scored shadow traffic (issue 17, item 2): a sample of a rule's requests is copied, non-streaming,
 * to a candidate model once the real response has ended, and the candidate's answer is optionally
 * compared with the real one by a judge model. docs/experiments.md, "Shadow".
 *
 * The real response never waits for, fails on or changes with a shadow: the copy is prepared at
 * decision time (a sample draw, a slot, the body: cheap, and only for a rule with a shadow) and
 * sent from the recorder's processing of the finished exchange, off the request path. Every
 * failure in it is caught and counted.
 */

/**
 * How much of the real answer's text a judged shadow keeps (the response tap's capture), and of
 * the shadow's text the judge is sent: 16 Ki characters, a long answer's worth (about 4,000
 * tokens), so that a judge call stays cheap and bounded whatever the answers' size.
 */
export const MAX_JUDGED_ANSWER_CHARS = 16 * 1024;
/**
 * A shadow's whole answer is read into memory (fetchWhole's cap): 1 MiB holds a non-streamed
 * completion of any usual length (16,000 tokens are about 64 KB) with tool calls or reasoning; a
 * larger one is aborted and counted as an error. At most max_concurrency answers per rule are held.
 */
export const MAX_SHADOW_ANSWER_BYTES = 1024 * 1024;
/** The judge answers one line of JSON: a few tokens are enough, more is a model that rambles. */
const JUDGE_MAX_TOKENS = 100;
/** A judge verdict is under 100 characters: a longer answer is no verdict. */
const MAX_VERDICT_CHARS = 4096;

/** Why a sampled copy gave no answer (`signalbox_shadow_dropped_total{reason}`). */
export type ShadowDropReason = 'concurrency' | 'no_server_key' | 'data_policy' | 'unanswered' | 'error' | 'timeout' | 'shutdown';

/** The request's data policy (`provider.data_collection`, `provider.zdr` of the routed body): the copy and its judge keep it. */
export interface DataPolicy {
  readonly data_collection?: unknown;
  readonly zdr?: unknown;
}

/** A copy decided at decision time and sent when the real exchange is recorded (`Shadows.finished`). */
export interface PreparedShadow {
  readonly plan: ShadowPlan;
  /** The copy's body, serialised: the exchange lets go of the client's body once the head is written. */
  readonly body: string;
  /** The request's shape: the copy is sent in it, to its endpoint, and its answer read in it. */
  readonly api: Api;
  readonly policy: DataPolicy;
  /** Whether a judge compares the answers: the real answer's text is then captured (MAX_JUDGED_ANSWER_CHARS). */
  readonly judged: boolean;
}

export interface ShadowDeps {
  readonly upstream: Pick<UpstreamClient, 'fetchWhole'>;
  /** `Bearer <OPENROUTER_API_KEY>`; undefined: no copy is made (a client's own key must not pay for an experiment). */
  readonly serverAuthorization: string | undefined;
  readonly catalog: () => Catalog | undefined;
  readonly metrics: SignalboxMetrics | undefined;
  /** SHADOW_TIMEOUT_MS: each call (the copy, the judge) is aborted past it. */
  readonly timeoutMs: number;
  /** Adds a cost (USD) to SHADOW_ACCOUNT's spend, never the caller's. */
  readonly charge: (usd: number, model: string, log: FastifyBaseLogger) => void;
  /** The sample's draw, in [0, 1); Math.random when absent (tests inject one). */
  readonly random?: () => number;
  /** Monotonic milliseconds; performance.now when absent. */
  readonly now?: () => number;
}

/** One call's end: its answer as JSON, or why there is none. */
type CallEnd =
  | { readonly status: number; readonly json: unknown }
  | { readonly status: 'timeout' | 'error' | 'shutdown'; readonly json?: undefined };

/** A shadow's log line and judge fields. */
interface Judgement {
  readonly agreement: 'agree' | 'disagree' | 'unparseable' | 'error' | 'timeout' | 'data_policy' | 'no_answer' | 'shutdown';
  readonly score?: number;
  readonly costUsd?: number;
}

export class Shadows {
  /**
   * Copies in flight per plan. Keyed by the plan object, one per rule and rules load: a reload
   * starts afresh, and the old rules' counts go with them. Bounded by the plans' max_concurrency.
   */
  private readonly inFlight = new WeakMap<ShadowPlan, number>();
  /** The calls in flight, aborted by `close`; at most the sum of the plans' max_concurrency. */
  private readonly controllers = new Set<AbortController>();
  private closed = false;

  constructor(private readonly deps: ShadowDeps) {}

  /**
   * At decision time, for a decision with a shadow: the sample's draw, the server key, the data
   * policy and a slot of the plan's concurrency; the copy's body when all allow one, else
   * undefined (a drop is counted). `clientBody`: the body as the client sent it; `routedBody`:
   * the decision's, whose data policy the copy inherits; `api`: the request's shape, the copy's.
   */
  prepare(plan: ShadowPlan, clientBody: Readonly<JsonObject>, routedBody: Readonly<JsonObject>, api: Api = 'chat'): PreparedShadow | undefined {
    if ((this.deps.random ?? Math.random)() >= plan.sample) return undefined;
    if (this.deps.serverAuthorization === undefined) return this.drop(plan, 'no_server_key');
    const policy = dataPolicyOf(routedBody);
    if (!this.policyAllows(plan.route.model, policy) || (plan.judge !== undefined && !this.policyAllows(plan.judge.model, policy))) {
      return this.drop(plan, 'data_policy');
    }
    const taken = this.inFlight.get(plan) ?? 0;
    if (taken >= plan.maxConcurrency) return this.drop(plan, 'concurrency');
    const copy: JsonObject = { ...applyRewrite(plan.route, clientBody, api).body, stream: false };
    // Streaming options mean nothing without a stream (chat's and Responses' alike), and an API may refuse them then.
    delete copy.stream_options;
    if (api === 'chat') {
      // OpenRouter reports the call's cost in usage.cost (https://openrouter.ai/docs/use-cases/usage-accounting).
      // A chat parameter: the other shapes' bodies get no field their APIs do not define; their cost is
      // read where reported, else priced from the catalog.
      copy.usage = { include: true };
    }
    const provider = withPolicy(copy.provider, policy);
    if (provider !== undefined) copy.provider = provider;
    this.inFlight.set(plan, taken + 1);
    return { plan, body: JSON.stringify(copy), api, policy, judged: plan.judge !== undefined };
  }

  /**
   * The real exchange was recorded (its response has ended): its shadow, if it has one, is sent
   * now, off the request path. Only a request the upstream answered (2xx) is copied: a refused or
   * failed one has no answer to compare, and a refused caller must not cause an experiment's spend.
   */
  finished(record: ExchangeRecord, log: FastifyBaseLogger): void {
    const prepared = record.shadow;
    if (prepared === undefined) return;
    const answered = record.upstreamStatus !== undefined && record.upstreamStatus >= 200 && record.upstreamStatus <= 299;
    if (this.closed || !answered) {
      this.release(prepared.plan);
      this.drop(prepared.plan, this.closed ? 'shutdown' : 'unanswered');
      return;
    }
    this.run(prepared, record, log)
      .catch((err: unknown) => {
        // Nothing in a shadow may escape: a bug here costs its line and metrics, nothing else.
        this.deps.metrics?.shadowDropped(prepared.plan.rule, 'error');
        log.error({ err }, 'shadow copy failed');
      })
      .finally(() => this.release(prepared.plan));
  }

  /** Aborts every call in flight (the app's close): nothing waits for a shadow; no copy starts after. */
  close(): void {
    this.closed = true;
    for (const controller of this.controllers) controller.abort(new ShadowShutdown());
    this.controllers.clear();
  }

  private async run(prepared: PreparedShadow, record: ExchangeRecord, log: FastifyBaseLogger): Promise<void> {
    const { plan } = prepared;
    const model = plan.route.model;
    const now = this.deps.now ?? (() => performance.now());
    const started = now();
    const end = await this.call(UPSTREAM_PATHS[prepared.api], prepared.body, MAX_SHADOW_ANSWER_BYTES);
    const durationMs = now() - started;
    const usage = end.json === undefined ? undefined : usageOfAnswer(prepared.api, end.json);
    const costUsd = usage === undefined ? undefined : requestCost(usage.cost, this.deps.catalog(), model, usage, new Date())?.usd;
    const status = typeof end.status === 'number' ? String(end.status) : end.status;
    this.deps.metrics?.shadowFinished(plan.rule, model, status, durationMs / 1000, usage, costUsd);
    if (costUsd !== undefined && costUsd > 0) this.deps.charge(costUsd, model, log);
    const answer = typeof end.status === 'number' && end.status >= 200 && end.status <= 299 ? answerOfBody(prepared.api, end.json).text : undefined;
    if (answer === undefined) this.drop(plan, dropReasonOf(end.status));
    let judgement: Judgement | undefined;
    if (plan.judge !== undefined && answer !== undefined) {
      // A real answer cut short (the client left, the stream failed) is no fair comparison.
      const realText = record.clientClosed || record.streamErrorKind !== undefined ? undefined : record.facts?.answerText;
      judgement = await this.judge(prepared, realText, answer);
      this.deps.metrics?.shadowJudged(plan.rule, plan.judge.model, judgement.agreement, judgement.score, judgement.costUsd);
      if (judgement.costUsd !== undefined && judgement.costUsd > 0) this.deps.charge(judgement.costUsd, plan.judge.model, log);
    }
    log.info(shadowLine(plan, record, status, durationMs, usage, costUsd, judgement), 'shadow');
  }

  /** One judge call on the two answers: agreement, score and cost, or why there is none. */
  private async judge(prepared: PreparedShadow, realText: string | undefined, shadowText: string): Promise<Judgement> {
    const judge = prepared.plan.judge!;
    if (realText === undefined) return { agreement: 'no_answer' };
    const body: JsonObject = {
      model: judge.model,
      messages: [
        { role: 'system', content: judge.prompt },
        // Both answers as one JSON object: an answer cannot pose as the other, or as the instructions' end.
        { role: 'user', content: JSON.stringify({ answer_a: realText, answer_b: shadowText.slice(0, MAX_JUDGED_ANSWER_CHARS) }) },
      ],
      temperature: 0,
      max_tokens: JUDGE_MAX_TOKENS,
      stream: false,
      usage: { include: true },
    };
    const provider = withPolicy(undefined, prepared.policy);
    if (provider !== undefined) body.provider = provider;
    const end = await this.call(UPSTREAM_PATHS.chat, JSON.stringify(body), MAX_CLASSIFIER_ANSWER_BYTES);
    if (typeof end.status !== 'number') return { agreement: end.status };
    if (end.status === NO_ENDPOINT_MATCHES) return { agreement: 'data_policy' };
    if (end.status < 200 || end.status > 299) return { agreement: 'error' };
    const costUsd = answerCost(end.json, judge.model, this.deps.catalog());
    const content = answerOfBody('chat', end.json).text;
    const verdict = content === undefined ? undefined : parseVerdict(content);
    if (verdict === undefined) return { agreement: 'unparseable', ...(costUsd !== undefined && { costUsd }) };
    return { agreement: verdict.agree ? 'agree' : 'disagree', score: verdict.score, ...(costUsd !== undefined && { costUsd }) };
  }

  /** POSTs `body` to `path` with the server key, aborted after SHADOW_TIMEOUT_MS or by `close`. Never rejects. */
  private async call(path: string, body: string, maxBytes: number): Promise<CallEnd> {
    const controller = new AbortController();
    this.controllers.add(controller);
    const timer = setTimeout(() => controller.abort(new ShadowTimeout()), this.deps.timeoutMs);
    timer.unref();
    try {
      const headers = { 'content-type': 'application/json', 'accept-encoding': 'identity', authorization: this.deps.serverAuthorization! };
      const answer = await this.deps.upstream.fetchWhole({ method: 'POST', path, headers, body }, maxBytes, controller.signal);
      let json: unknown;
      try {
        json = JSON.parse(answer.body.toString('utf8'));
      } catch {
        json = undefined;
      }
      return { status: answer.status, json };
    } catch {
      const reason: unknown = controller.signal.reason;
      return { status: reason instanceof ShadowTimeout ? 'timeout' : reason instanceof ShadowShutdown ? 'shutdown' : 'error' };
    } finally {
      clearTimeout(timer);
      this.controllers.delete(controller);
    }
  }

  /**
   * Whether `model` may be asked under `policy`, as far as the catalog can tell: the catalog lists
   * no endpoint's retention terms, so the one thing known up front is that a model it does not
   * list cannot be shown to honour `zdr: true`. Everything else is OpenRouter's to refuse (404).
   */
  private policyAllows(model: string, policy: DataPolicy): boolean {
    if (policy.zdr !== true) return true;
    const catalog = this.deps.catalog();
    return catalog === undefined || catalog.get(model) !== undefined;
  }

  private release(plan: ShadowPlan): void {
    const taken = this.inFlight.get(plan) ?? 0;
    this.inFlight.set(plan, taken > 0 ? taken - 1 : 0);
  }

  private drop(plan: ShadowPlan, reason: ShadowDropReason): undefined {
    this.deps.metrics?.shadowDropped(plan.rule, reason);
    return undefined;
  }
}

/** The abort reasons of a shadow's call: its timeout, the app's close. */
class ShadowTimeout extends Error {}
class ShadowShutdown extends Error {}

/**
 * OpenRouter's answer when no endpoint of a model matches the request's provider preferences
 * (`data_collection: deny`, `zdr: true`): 404 "No endpoints found matching your data policy". How
 * a shadow learns its model cannot honour the request's data policy.
 */
const NO_ENDPOINT_MATCHES = 404;

function dropReasonOf(status: CallEnd['status']): ShadowDropReason {
  if (status === NO_ENDPOINT_MATCHES) return 'data_policy';
  return typeof status === 'number' ? 'error' : status;
}

function isObject(v: unknown): v is JsonObject {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

function dataPolicyOf(body: Readonly<JsonObject>): DataPolicy {
  const provider = body.provider;
  if (!isObject(provider)) return {};
  return {
    ...(provider.data_collection !== undefined && { data_collection: provider.data_collection }),
    ...(provider.zdr !== undefined && { zdr: provider.zdr }),
  };
}

/** `provider` with the request's data policy over it; undefined when there is neither. */
function withPolicy(provider: unknown, policy: DataPolicy): JsonObject | undefined {
  if (policy.data_collection === undefined && policy.zdr === undefined) return isObject(provider) ? provider : undefined;
  return { ...(isObject(provider) ? provider : {}), ...policy };
}

/** A whole answer's usage in its shape's terms (src/upstream/shape-facts.ts for the other shapes). */
function usageOfAnswer(api: Api, json: unknown): TokenUsage | undefined {
  return api === 'chat' ? usageOf((json as { usage?: unknown } | null)?.usage) : shapeBodyFacts(api, json).usage;
}

/** `{"agree": boolean, "score": 0..1}` and nothing else, or undefined. */
export function parseVerdict(content: string): { agree: boolean; score: number } | undefined {
  if (content.length > MAX_VERDICT_CHARS) return undefined;
  let value: unknown;
  try {
    value = JSON.parse(content);
  } catch {
    return undefined;
  }
  if (!isObject(value) || Object.keys(value).length !== 2) return undefined;
  const { agree, score } = value;
  if (typeof agree !== 'boolean' || typeof score !== 'number' || !(score >= 0 && score <= 1)) return undefined;
  return { agree, score };
}

/** One log line per shadow sent; `signalbox report --by variant` reads these names. */
function shadowLine(plan: ShadowPlan, record: ExchangeRecord, status: string, durationMs: number, usage: TokenUsage | undefined, costUsd: number | undefined, judgement: Judgement | undefined): Record<string, unknown> {
  const line: Record<string, unknown> = { rule: plan.rule };
  if (record.variant !== undefined) line.variant = record.variant;
  line.shadow_model = plan.route.model;
  line.status = status;
  line.duration_ms = Math.round(durationMs * 1000) / 1000;
  if (usage !== undefined) {
    line.prompt_tokens = usage.prompt;
    line.completion_tokens = usage.completion;
  }
  if (costUsd !== undefined) line.cost_usd = costUsd;
  if (judgement !== undefined) {
    if (judgement.agreement === 'agree' || judgement.agreement === 'disagree') {
      line.judge_agreement = judgement.agreement === 'agree';
      line.judge_score = judgement.score;
    } else {
      line.judge_error = judgement.agreement;
    }
    if (judgement.costUsd !== undefined) line.judge_cost_usd = judgement.costUsd;
  }
  return line;
}
