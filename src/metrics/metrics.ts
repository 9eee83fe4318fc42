import { Counter, Gauge, Registry, collectDefaultMetrics } from 'prom-client';
import type { SignalboxConfig } from '../config/load.js';
import type { ReloadEvent } from '../rules-file/live-rules.js';
import { NO_VARIANT, UNROUTED } from '../rules/decision.js';
import type { Cost } from '../catalog/cost.js';
import type { ClassifierOutcome, RemoteMethod } from '../classify/remote.js';
import type { RedisLimitStoreStats } from '../accounts/redis-limit-store.js';
import type { ExchangeRecord } from '../server/record.js';
import type { Endpoint } from './endpoints.js';
import { ModelLabels, type CatalogLookup } from './labels.js';
import { FastCounter, FastHistogram } from './series.js';

/**
 * Signalbox's Prometheus metrics (documented, with PromQL, in docs/metrics.md). One registry per
 * app, so that several apps (tests) never share counters. `model` labels mean the model that
 * served the request when the upstream said so, else the model routed to.
 */

export type StreamErrorKind = 'upstream_inband' | 'upstream_cut' | 'idle_timeout' | 'client_write_timeout' | 'shutdown';

export class SignalboxMetrics {
  readonly registry = new Registry();
  readonly labels: ModelLabels;
  private readonly requests: FastCounter;
  private readonly duration: FastHistogram;
  private readonly ttft: FastHistogram;
  private readonly overhead: FastHistogram;
  private readonly upstreamRequests: FastCounter;
  private readonly tokens: FastCounter;
  private readonly cost: FastCounter;
  private readonly baselineCost: FastCounter;
  private readonly substitutions: FastCounter;
  private readonly streamErrors: FastCounter;
  private readonly clientDisconnects: FastCounter;
  private readonly ruleMatches: FastCounter;
  private readonly classifications: FastCounter;
  private readonly classifierRequests: FastCounter;
  private readonly escalations: FastCounter;
  private readonly classifierCost: FastCounter;
  private readonly classifierDuration: FastHistogram;
  private readonly fallbacks: FastCounter;
  private readonly cooldowns: FastCounter;
  private readonly rejections: FastCounter;
  private readonly spend: FastCounter;
  private readonly splitAssignments: FastCounter;
  private readonly shadowRequests: FastCounter;
  private readonly shadowDuration: FastHistogram;
  private readonly shadowTokens: FastCounter;
  private readonly shadowCost: FastCounter;
  private readonly shadowDrops: FastCounter;
  private readonly shadowJudgements: FastCounter;
  private readonly shadowJudgeScore: FastHistogram;
  private readonly shadowJudgeCost: FastCounter;
  private readonly feedback: FastCounter;
  private readonly reloads: Counter<'result'>;
  private readonly lastReload: Gauge;
  private readonly lastReloadSuccessful: Gauge;
  private readonly rulesInfo: Gauge<'hash'>;
  private readonly catalogRefreshFailures: Counter;

  constructor(config: SignalboxConfig['metrics'], gauges: LiveGauges) {
    const registers = [this.registry];
    this.labels = new ModelLabels(config.models, config.max_served_models, gauges.inCatalog);
    collectDefaultMetrics({ register: this.registry });
    // prom-client exports these three gauges with a `_total` suffix, which `promtool check
    // metrics` rejects (the suffix is for counters); the same values remain, unsuffixed, as
    // nodejs_active_handles, nodejs_active_requests and nodejs_active_resources.
    for (const name of ['nodejs_active_handles_total', 'nodejs_active_requests_total', 'nodejs_active_resources_total']) {
      this.registry.removeSingleMetric(name);
    }
    const r = this.registry;
    // Per-request series: label values positional, in the order of the label names given here.
    // `variant`: the arm of the rule's split (issue 17), `none` without one; arm names come from the rules file.
    this.requests = new FastCounter(r, 'signalbox_requests_total', 'Responses to /v1 requests, by endpoint, rule, requested model, serving model, HTTP status, stream and split arm',
      ['endpoint', 'rule', 'requested_model', 'model', 'status', 'stream', 'variant']);
    this.duration = new FastHistogram(r, 'signalbox_request_duration_seconds', 'Time from request arrival to the last response byte',
      ['endpoint', 'rule', 'model', 'stream', 'variant'], config.duration_buckets_seconds);
    this.ttft = new FastHistogram(r, 'signalbox_time_to_first_token_seconds', 'Time from request arrival to the first streamed event carrying content or a tool call',
      ['rule', 'model', 'variant'], config.ttft_buckets_seconds);
    this.overhead = new FastHistogram(r, 'signalbox_overhead_seconds', 'Time spent inside the proxy (before the upstream call and writing the response head), not waiting on upstream',
      [], config.overhead_buckets_seconds);
    this.upstreamRequests = new FastCounter(r, 'signalbox_upstream_requests_total', 'Upstream attempts, by model and HTTP status (or error code when there was no response)',
      ['model', 'status']);
    this.tokens = new FastCounter(r, 'signalbox_tokens_total', 'Tokens reported by the upstream, by model and type (prompt, completion, reasoning, cached)',
      ['model', 'type']);
    this.baselineCost = new FastCounter(r, 'signalbox_baseline_cost_usd_total', 'What the same token counts would have cost on the rules\' baseline model (catalog prices), by rule: beside signalbox_cost_usd_total, what routing saved', ['rule']);
    this.cost = new FastCounter(r, 'signalbox_cost_usd_total', 'Cost in USD: the upstream\'s usage.cost, else the catalog\'s price of the reported tokens; by rule, model, where it came from (escalation: an answer a cascade discarded) and split arm', ['rule', 'model', 'source', 'variant']);
    this.splitAssignments = new FastCounter(r, 'signalbox_split_assignments_total', 'Requests of split rules by arm and how the arm was chosen: sticky (by the subject), random (no sticky field) or missing (the request had no value there, so it was drawn at random)', ['rule', 'variant', 'assignment']);
    this.substitutions = new FastCounter(r, 'signalbox_model_substitutions_total', 'Responses served by another model than the one routed to (a fallback of the list)',
      ['routed_model', 'served_model']);
    this.streamErrors = new FastCounter(r, 'signalbox_stream_errors_total', 'Responses that ended in an error after their head was sent, by kind', ['kind']);
    this.clientDisconnects = new FastCounter(r, 'signalbox_client_disconnects_total', 'Clients that went away before their response was complete', []);
    this.ruleMatches = new FastCounter(r, 'signalbox_rule_matches_total', 'Chat requests decided by each rule (none: no rule matched)', ['rule']);
    // Labels are the classifier's fixed label sets and a confidence decile: at most 4 + 12 + 10 values per method.
    this.classifications = new FastCounter(r, 'signalbox_classifications_total', 'Classifier verdicts the rules read, by field (complexity, task, confidence as a decile 0.0-0.9), label and the method that made them',
      ['field', 'label', 'method']);
    // method: llm or embedding (a hybrid's calls are llm's); outcome: five values.
    // Tier names come from the rules file (a cascade has at most MAX_CASCADE_TIERS), reasons are a fixed set.
    this.escalations = new FastCounter(r, 'signalbox_escalations_total', 'Cascade escalations: a tier\'s answer failed a check (short, refusal, uncertain, invalid_json) or the tier failed outright (error), and the next tier was asked', ['from', 'to', 'reason']);
    this.classifierRequests = new FastCounter(r, 'signalbox_classifier_requests_total', 'Classifications by the llm and embedding methods, by outcome: ok, cached, timeout, error, unparseable (all but ok and cached fell back to the local verdict)',
      ['method', 'outcome']);
    this.classifierCost = new FastCounter(r, 'signalbox_classifier_cost_usd_total', 'What the classifiers\' upstream calls cost in USD (usage.cost, else the catalog\'s price), examples\' embeddings included', ['method']);
    this.classifierDuration = new FastHistogram(r, 'signalbox_classifier_duration_seconds', 'Time a request waited for the llm or embedding classifier (cache hits included)',
      ['method'], CLASSIFIER_BUCKETS_SECONDS);
    this.cooldowns = new FastCounter(r, 'signalbox_model_cooldowns_total', 'Cooldowns started: a model that kept failing is skipped for a while', ['model']);
    new Gauge({
      name: 'signalbox_models_in_cooldown', help: 'Models being skipped (cooling down, or waiting for the probe that ends it)', registers: [r],
      collect() {
        this.set(gauges.coolingModels());
      },
    });
    this.rejections = new FastCounter(r, 'signalbox_rejections_total', 'Requests the proxy refused for the caller: rate_limit (429 rate_limit_exceeded), budget (429 insufficient_quota), auth (401 invalid_api_key)', ['reason']);
    // One series per configured key that spent (the keys file bounds them, MAX_KEYS).
    // Rule and variant come from tokens this proxy signed (the rules' names), the model through
    // ModelLabels and the label from FEEDBACK_LABELS: a client can grow none of them.
    this.feedback = new FastCounter(r, 'signalbox_feedback_total', 'Quality feedback clients sent (POST /v1/feedback), by the rule, split arm (none: no split) and model its token names, and label', ['rule', 'variant', 'model', 'label']);
    this.spend = new FastCounter(r, 'signalbox_spend_usd_total', 'What each client key spent, USD: the cost of its requests (BYOK: usage.cost plus upstream_inference_cost) and of their classifier calls; a cost reconciled later is counted then', ['key']);
    new Gauge({
      name: 'signalbox_budget_remaining_usd', help: 'USD left of each key\'s own daily and monthly budget (daily_usd, monthly_usd), reservations of requests in flight counted; keys with a budget only',
      labelNames: ['key', 'period'], registers: [r],
      async collect() {
        if (gauges.budgetsRemaining === undefined) return;
        let rows: readonly BudgetRemaining[];
        try {
          rows = await gauges.budgetsRemaining();
        } catch {
          // The store did not answer (Redis down): the scrape goes on without these series.
          this.reset();
          return;
        }
        this.reset();
        for (const row of rows) this.set({ key: row.key, period: row.period }, row.usd);
      },
    });
    // Shadow copies (src/experiments/shadow.ts): rule names come from the rules file, models
    // through ModelLabels, status, reason and agreement from fixed sets (docs/metrics.md).
    this.shadowRequests = new FastCounter(r, 'signalbox_shadow_requests_total', 'Shadow copies sent (route.shadow), by rule, shadow model and how they ended: the upstream\'s HTTP status, timeout or error', ['rule', 'model', 'status']);
    this.shadowDuration = new FastHistogram(r, 'signalbox_shadow_duration_seconds', 'Time a shadow copy took, from sending it to its whole answer', ['rule', 'model'], SHADOW_BUCKETS_SECONDS);
    this.shadowTokens = new FastCounter(r, 'signalbox_shadow_tokens_total', 'Tokens shadow copies used, by rule, shadow model and type (prompt, completion)', ['rule', 'model', 'type']);
    this.shadowCost = new FastCounter(r, 'signalbox_shadow_cost_usd_total', 'What shadow copies cost in USD (usage.cost, else the catalog\'s price), counted to SHADOW_ACCOUNT, never to the caller', ['rule', 'model']);
    this.shadowDrops = new FastCounter(r, 'signalbox_shadow_dropped_total', 'Sampled shadow copies that gave no answer, by reason: concurrency, no_server_key, data_policy, unanswered (the real request failed), error, timeout, shutdown', ['rule', 'reason']);
    this.shadowJudgements = new FastCounter(r, 'signalbox_shadow_judgements_total', 'Judge verdicts on shadow answers, by rule, shadow model and agreement: agree, disagree, unparseable, error, timeout, data_policy, no_answer (the real answer\'s text was not captured)', ['rule', 'model', 'agreement']);
    this.shadowJudgeScore = new FastHistogram(r, 'signalbox_shadow_judge_score', 'The judge\'s score of shadow answers against the real ones, 0 to 1', ['rule'], JUDGE_SCORE_BUCKETS);
    this.shadowJudgeCost = new FastCounter(r, 'signalbox_shadow_judge_cost_usd_total', 'What judge calls on shadow answers cost in USD, counted to SHADOW_ACCOUNT', ['rule']);
    this.fallbacks = new FastCounter(r, 'signalbox_fallbacks_total', 'Proxy-side retries: an attempt failed before any byte reached the client and the next one went to `to`',
      ['from', 'to', 'reason']);
    this.reloads = new Counter({
      name: 'signalbox_rules_reloads_total', help: 'Rules reload attempts, by result (success, unchanged, failure)', labelNames: ['result'], registers,
    });
    this.lastReload = new Gauge({
      name: 'signalbox_rules_last_reload_timestamp_seconds', help: 'Unix time of the last successful rules load', registers,
    });
    // Named like Prometheus' own prometheus_config_last_reload_successful, so the usual alert fits.
    this.lastReloadSuccessful = new Gauge({
      name: 'signalbox_rules_last_reload_successful', help: '1 when the last rules load succeeded or found the rules in force, 0 while the file on disk is refused', registers,
    });
    this.rulesInfo = new Gauge({
      name: 'signalbox_rules_info', help: 'The rules in force: 1 for the hash of the current rules file', labelNames: ['hash'], registers,
    });
    this.catalogRefreshFailures = new Counter({
      name: 'signalbox_catalog_refresh_failures_total', help: 'Model catalog refreshes that failed (the catalog in force was kept)', registers,
    });
    new Gauge({
      name: 'signalbox_catalog_age_seconds', help: 'Seconds since the model catalog in force was fetched; +Inf while there is none', registers,
      collect() {
        this.set(gauges.catalogAgeSeconds?.() ?? Number.POSITIVE_INFINITY);
      },
    });
    new Gauge({
      name: 'signalbox_inflight_requests', help: 'Requests waiting on or streaming from the upstream', registers,
      collect() {
        this.set(gauges.inflight());
      },
    });
    new Gauge({
      name: 'signalbox_active_streams', help: 'SSE responses being relayed', registers,
      collect() {
        this.set(gauges.activeStreams());
      },
    });
  }

  /** The rules in force changed (startup or a reload). */
  rulesLoaded(hash: string, models: readonly string[]): void {
    this.labels.addKnown(models);
    this.rulesInfo.reset();
    this.rulesInfo.set({ hash }, 1);
    this.lastReload.set(Date.now() / 1000);
    this.lastReloadSuccessful.set(1);
  }

  reloadAttempted(event: ReloadEvent): void {
    this.reloads.inc({ result: event.result });
    this.lastReloadSuccessful.set(event.result === 'failure' ? 0 : 1);
  }

  /**
   * The Redis limit store's health, read from its own counters when Prometheus scrapes: nothing
   * per request. Registered only with REDIS_URL (the in-memory store cannot fail).
   */
  limitStoreWatched(store: LimitStoreHealth): void {
    const registers = [this.registry];
    new Counter({
      name: 'signalbox_limit_store_failures_total', help: 'Rate-limit checks Redis did not answer, by what the request got: open (admitted under this replica\'s limits), closed (503)',
      labelNames: ['mode'], registers,
      collect() {
        this.reset();
        this.inc({ mode: 'open' }, store.stats.failedOpen);
        this.inc({ mode: 'closed' }, store.stats.failedClosed);
      },
    });
    new Gauge({
      name: 'signalbox_limit_store_up', help: '1 while the rate-limit store (Redis) answers, 0 during an outage (limits then hold per replica, or requests get 503)', registers,
      collect() {
        this.set(store.up ? 1 : 0);
      },
    });
  }

  catalogRefreshFailed(): void {
    this.catalogRefreshFailures.inc();
  }

  /** One llm or embedding classification (or an examples batch): src/classify/remote.ts. */
  classifierCalled(method: RemoteMethod, outcome: ClassifierOutcome, seconds: number, costUsd: number | undefined): void {
    this.classifierRequests.inc([method, outcome]);
    this.classifierDuration.observe([method], seconds);
    if (costUsd !== undefined) this.classifierCost.inc([method], costUsd);
  }

  cooldownStarted(model: string): void {
    this.cooldowns.inc([this.labels.model(model)]);
  }

  /**
   * Meters one finished exchange from its record, the only input: its upstream attempts and the
   * proxy-side retries between them, then the response. `endpoint` is the record's URL as a label.
   */
  /** A client key's spend (a settled or reconciled request). */
  spendRecorded(key: string, usd: number): void {
    if (usd > 0) this.spend.inc([key], usd);
  }

  /** One shadow copy that was sent and ended (an answer, an error status, a timeout or an error). */
  shadowFinished(rule: string, model: string, status: string, seconds: number, tokens: { prompt: number; completion: number } | undefined, costUsd: number | undefined): void {
    const label = this.labels.model(model);
    this.shadowRequests.inc([rule, label, status]);
    this.shadowDuration.observe([rule, label], seconds);
    if (tokens !== undefined) {
      this.shadowTokens.inc([rule, label, 'prompt'], tokens.prompt);
      this.shadowTokens.inc([rule, label, 'completion'], tokens.completion);
    }
    if (costUsd !== undefined) this.shadowCost.inc([rule, label], costUsd);
  }

  shadowDropped(rule: string, reason: string): void {
    this.shadowDrops.inc([rule, reason]);
  }

  /** A judge's verdict (or why there is none) on one shadow answer, its score and what judging cost. */
  shadowJudged(rule: string, model: string, agreement: string, score: number | undefined, costUsd: number | undefined): void {
    this.shadowJudgements.inc([rule, this.labels.model(model), agreement]);
    if (score !== undefined) this.shadowJudgeScore.observe([rule], score);
    if (costUsd !== undefined) this.shadowJudgeCost.inc([rule], costUsd);
  }

  /** One accepted POST /v1/feedback; `label` is one of FEEDBACK_LABELS. */
  feedbackReceived(rule: string, variant: string | undefined, model: string | undefined, label: string): void {
    this.feedback.inc([rule, variant ?? NO_VARIANT, this.labels.model(model), label]);
  }

  /** A cost looked up afterwards from the upstream's generation stats (a cut stream's). */
  costReconciled(rule: string, model: string | undefined, usd: number, variant: string | undefined): void {
    this.cost.inc([rule, this.labels.model(model), 'generation', variant ?? NO_VARIANT], usd);
  }

  exchangeFinished(r: ExchangeRecord, endpoint: Endpoint, cost?: Cost, baselineCost?: number): void {
    const labels = this.labels;
    const attempts = r.attempts;
    for (let i = 0; i < attempts.length; i++) {
      const attempt = attempts[i]!;
      const from = labels.model(attempt.model);
      const outcome = attempt.outcome;
      this.upstreamRequests.inc([from, typeof outcome === 'number' ? statusLabel(outcome) : outcome ?? 'unknown']);
      if (attempt.retry !== undefined) this.fallbacks.inc([from, labels.model(attempt.retry.to), attempt.retry.reason]);
    }
    const upstreamStatus = r.upstreamStatus;
    const upstreamSucceeded = upstreamStatus !== undefined && upstreamStatus >= 200 && upstreamStatus < 300;
    const servedModel = r.facts?.model;
    // Only a model that served a 2xx may take a label slot of its own.
    const served = servedModel === undefined ? undefined : upstreamSucceeded ? labels.served(servedModel) : labels.model(servedModel);
    const model = served ?? labels.model(r.routedModel);
    const stream = r.stream ? 'true' : 'false';
    // Routed: a chat request that went through the rules; `unrouted` when the rules never saw it.
    const rule = r.rule ?? UNROUTED;
    const variant = r.variant ?? NO_VARIANT;
    this.requests.inc([endpoint, rule, labels.requested(r.requestedModel), model, statusLabel(r.status), stream, variant]);
    if (r.splitAssignment !== undefined) this.splitAssignments.inc([rule, variant, r.splitAssignment]);
    if (r.rule !== undefined) this.ruleMatches.inc([rule]);
    const verdict = r.classification;
    if (verdict !== undefined) {
      this.classifications.inc(['complexity', verdict.complexity, verdict.method]);
      this.classifications.inc(['task', verdict.task, verdict.method]);
      this.classifications.inc(['confidence', confidenceDecile(verdict.confidence), verdict.method]);
    }
    this.duration.observe([endpoint, rule, model, stream, variant], r.durationMs / 1000);
    this.overhead.observe(NO_LABELS, r.overheadMs / 1000);
    if (r.ttftMs !== undefined) this.ttft.observe([rule, model, variant], r.ttftMs / 1000);
    const u = r.facts?.usage;
    if (u) {
      if (u.prompt > 0) this.tokens.inc([model, 'prompt'], u.prompt);
      if (u.completion > 0) this.tokens.inc([model, 'completion'], u.completion);
      if (u.reasoning > 0) this.tokens.inc([model, 'reasoning'], u.reasoning);
      if (u.cached > 0) this.tokens.inc([model, 'cached'], u.cached);
      if (cost !== undefined) this.cost.inc([rule, model, cost.source, variant], cost.usd);
      if (baselineCost !== undefined) this.baselineCost.inc([rule], baselineCost);
    }
    if (servedModel !== undefined && r.routedModel !== undefined && servedModel !== r.routedModel) {
      this.substitutions.inc([labels.model(r.routedModel), model]);
    }
    const escalations = r.escalations;
    if (escalations !== undefined) {
      for (const e of escalations) {
        this.escalations.inc([e.from, e.to, e.reason]);
        // A discarded answer's cost: beside the answer's own, told apart by its source.
        if (e.costUsd !== undefined) this.cost.inc([rule, labels.model(e.model), 'escalation', variant], e.costUsd);
      }
    }
    const rejection = r.error === undefined ? undefined : REJECTION_REASONS[r.error.code];
    if (rejection !== undefined) this.rejections.inc([rejection]);
    if (r.streamErrorKind) this.streamErrors.inc([r.streamErrorKind]);
    if (r.clientClosed) this.clientDisconnects.inc(NO_LABELS);
  }
}

/** Gauges read from live state when Prometheus scrapes, and the catalog the model labels consult. */
export interface LiveGauges {
  /** Whether the catalog in force lists a model; undefined while there is none (ModelLabels.served). */
  readonly inCatalog?: CatalogLookup;
  /** Upstream calls in flight. */
  readonly inflight: () => number;
  /** SSE responses being relayed. */
  readonly activeStreams: () => number;
  /** Models in cooldown. */
  readonly coolingModels: () => number;
  /** Age of the model catalog in force, in seconds (+Inf: none). */
  readonly catalogAgeSeconds?: () => number;
  /** What is left of each configured key's own budgets, read from the account store at scrape time. */
  readonly budgetsRemaining?: () => Promise<readonly BudgetRemaining[]>;
}

/** One key's budget for one period (`day`, `month`) and what is left of it. */
export interface BudgetRemaining {
  readonly key: string;
  readonly period: 'day' | 'month';
  readonly usd: number;
}

/** What signalbox_limit_store_* read from the Redis limit store (RedisLimitStore). */
export interface LimitStoreHealth {
  readonly stats: Readonly<RedisLimitStoreStats>;
  readonly up: boolean;
}

const NO_LABELS: readonly string[] = [];


/** `signalbox_rejections_total`'s reasons: a fixed label set, by the code of the refusal. */
const REJECTION_REASONS: Partial<Record<string, string>> = { rate_limit_exceeded: 'rate_limit', insufficient_quota: 'budget', invalid_api_key: 'auth' };

/** 10 ms (a cache hit is faster) to 5 s (past the llm's default 1.5 s timeout: a longer configured one). */
const CLASSIFIER_BUCKETS_SECONDS: readonly number[] = [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 1.5, 2.5, 5];

/** 250 ms to 60 s (SHADOW_TIMEOUT_MS's default): a whole non-streamed answer. */
const SHADOW_BUCKETS_SECONDS: readonly number[] = [0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60];
/** Tenths of the judge's 0-1 score. */
const JUDGE_SCORE_BUCKETS: readonly number[] = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1];

/** Statuses whose label string is made once, at load: up to the end of RFC 9110 §15's range. */
const MAX_CACHED_STATUS = 599;
const STATUS_LABELS: readonly string[] = Array.from({ length: MAX_CACHED_STATUS + 1 }, (_, status) => String(status));

/** `String(status)`, without building the same string for every response. */
function statusLabel(status: number): string {
  return STATUS_LABELS[status] ?? String(status);
}

/** `0.0` ... `0.9`: a confidence as a label of ten values (1 counts as 0.9). */
export function confidenceDecile(confidence: number): string {
  const decile = Math.min(9, Math.max(0, Math.floor(confidence * 10)));
  return `0.${decile}`;
}
