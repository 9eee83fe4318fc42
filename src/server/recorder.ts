import { hash } from 'node:crypto';
import type { FastifyBaseLogger } from 'fastify';
import type { Logger } from 'pino';
import { endpointOf, type Endpoint } from '../metrics/endpoints.js';
import type { SignalboxMetrics } from '../metrics/metrics.js';
import { MAX_CLIENT_TEXT_CHARS, clipText } from '../bounded-text.js';
import type { Catalog } from '../catalog/catalog.js';
import { catalogCost, requestCost, spentUsd, type Cost } from '../catalog/cost.js';
import { fromNano, toNano } from '../accounts/spend.js';
import type { AttemptRecord } from '../upstream/attempts.js';
import type { GenerationCosts } from '../upstream/generation-costs.js';
import type { Shadows } from '../experiments/shadow.js';
import type { ExchangeRecord } from './record.js';
import { writeLine } from './logger.js';
import { TimedBatch } from './timed-batch.js';

/** Finished exchanges wait at most this long for their log line and metrics... */
const FLUSH_INTERVAL_MS = 50;
/** ...or until this many are waiting. */
const MAX_PENDING = 512;

/** Probes are logged at debug: a kubelet polling every few seconds would drown the request log. */
const PROBE_PATHS = new Set(['/healthz', '/readyz', '/metrics']);

/*
 * The longest value, in characters, of each log field a client or the upstream chooses; a longer
 * one is cut and marked (see `clipText`), so that one request cannot write megabytes into the log
 * pipeline. Real values are far shorter: model ids and provider names under 100 characters, user
 * agents under 300.
 */
/**
 * user_agent. The model names, provider, finish reason and in-band error code come cut already
 * (clipText where the Exchange and the response tap take them, for the metric labels too).
 */
const MAX_NAME_CHARS = MAX_CLIENT_TEXT_CHARS;
/** path (without its query string) and error (the proxy's message, which can quote upstream text). */
const MAX_TEXT_CHARS = 1024;
/** prompt (LOG_PROMPTS=true): enough to recognise a prompt; prompt_hash is of the whole text. */
const MAX_PROMPT_CHARS = 4096;

interface Finished {
  readonly record: ExchangeRecord;
  readonly log: FastifyBaseLogger;
  /** The endpoint label when the URL cannot say (a request the HTTP parser refused). */
  readonly endpoint: Endpoint | undefined;
}

export interface ExchangeRecorderOptions {
  readonly metrics: SignalboxMetrics | undefined;
  /** Put the last user message's text on the log line (otherwise only its hash). */
  readonly logPrompts: boolean;
  /** The model catalog in force: prices a response whose upstream reported no cost. */
  readonly catalog?: { readonly current: Catalog | undefined };
  /** Looks up later the cost of a response that reported none (a cut stream); absent without a server key. */
  readonly generationCosts?: GenerationCosts;
  /** Sends the shadow copy of a recorded exchange that has one (route.shadow), off the request path. */
  readonly shadows?: Pick<Shadows, 'finished'>;
}

/**
 * Writes each finished exchange's log line and records its metrics, in batches off the request
 * path: the response's close only queues the exchange, and a timer (50 ms) or a full queue
 * processes the batch. Measured in place, building and writing the line and updating the series
 * cost several times more per request when done one at a time between other work than in one
 * tight loop over a batch (the code and its data stay in the CPU's caches).
 *
 * Nothing is lost or late where it matters: a scrape of /metrics and the app's close flush first.
 */
export class ExchangeRecorder {
  private readonly metrics: SignalboxMetrics | undefined;
  private readonly logPrompts: boolean;
  private readonly catalog: { readonly current: Catalog | undefined } | undefined;
  private readonly generationCosts: GenerationCosts | undefined;
  private readonly batch: TimedBatch<Finished>;
  private readonly shadows: Pick<Shadows, 'finished'> | undefined;

  constructor(options: ExchangeRecorderOptions) {
    this.metrics = options.metrics;
    this.logPrompts = options.logPrompts;
    this.catalog = options.catalog;
    this.generationCosts = options.generationCosts;
    this.shadows = options.shadows;
    this.batch = new TimedBatch<Finished>({ intervalMs: FLUSH_INTERVAL_MS, maxWeight: MAX_PENDING, flush: (batch) => this.process(batch) });
  }

  /** Queues the record of a finished exchange. */
  record(record: ExchangeRecord, log: FastifyBaseLogger, endpoint?: Endpoint): void {
    this.batch.add({ record, log, endpoint });
  }

  /** Logs and meters everything queued. */
  flush(): void {
    this.batch.flush();
  }

  private process(batch: Finished[]): void {
    for (const finished of batch) {
      // Runs from a timer: an exception would kill the process (issue 12, defect 1). One exchange
      // that cannot be recorded loses its own line and metrics, not the rest of the batch.
      try {
        // Prices are read at one instant, and only for a response that reported usage.
        const now = finished.record.facts?.usage === undefined ? undefined : new Date();
        const cost = now === undefined ? undefined : this.costOf(finished.record, now);
        const baselineCost = now === undefined ? undefined : this.baselineCostOf(finished.record, now);
        const reconcileSpend = this.settleSpend(finished, cost);
        if (cost === undefined) this.reconcileLater(finished, reconcileSpend);
        settleTokens(finished);
        const endpoint = finished.endpoint ?? endpointOf(finished.record.url);
        this.log(finished, endpoint, cost, baselineCost);
        if (finished.record.shadow !== undefined) this.shadows?.finished(finished.record, finished.log);
        // Every response to /v1 is counted, the proxy's own refusals included; probes and /metrics are not.
        if (this.metrics && endpoint !== undefined) this.metrics.exchangeFinished(finished.record, endpoint, cost, baselineCost);
      } catch (err) {
        finished.log.error({ err }, 'recording the finished request failed');
      }
    }
  }

  /** The upstream's `usage.cost`, else the catalog's price of the reported tokens on the model that served them. */
  private costOf(x: ExchangeRecord, now: Date): Cost | undefined {
    const usage = x.facts?.usage;
    if (usage === undefined) return undefined;
    return requestCost(usage.cost, this.catalog?.current, x.facts?.model ?? x.routedModel, usage, now);
  }

  /**
   * A response that reported no cost and cannot be priced (a stream cut before its usage chunk, an
   * answer without usage) is looked up later by its generation id, when the upstream gave one.
   */
  private reconcileLater(finished: Finished, reconcileSpend: ((usd: number) => void) | undefined): void {
    const x = finished.record;
    const id = x.facts?.id;
    if (this.generationCosts === undefined || id === undefined) return;
    if (x.facts?.usage !== undefined && x.streamErrorKind === undefined && !x.clientClosed) return;
    const requestId = (finished.log as unknown as Logger).bindings?.().reqId;
    this.generationCosts.add({ id, rule: x.rule ?? 'unrouted', variant: x.variant, model: x.facts?.model ?? x.routedModel, requestId: typeof requestId === 'string' ? requestId : '-', reconcileSpend });
  }

  /**
   * Settles the caller's spend (issue 16, item 2): gives its budget reservation back and adds what
   * the request cost to its key's, team's, end user's and model's counters, with what its
   * classifier call cost. The cost is the upstream's `usage.cost` (plus
   * `cost_details.upstream_inference_cost` when it ran on the account's own provider key: `cost` is
   * then only OpenRouter's fee), else the catalog's price of the reported tokens. A request that
   * was refused, or not sent, cost nothing. One whose cost cannot be known now (a stream cut or
   * cancelled before its usage, an answer the catalog cannot price) counts its reservation, the
   * catalog's price of its worst case, and is corrected when its generation's cost arrives: the
   * returned function takes that cost.
   */
  private settleSpend(finished: Finished, cost: Cost | undefined): ((usd: number) => void) | undefined {
    const x = finished.record;
    const settlement = x.spendSettlement;
    if (settlement === undefined) return undefined;
    const usage = x.facts?.usage;
    const status = x.upstreamStatus;
    const refused = x.attempts.length === 0 || (status !== undefined && (status < 200 || status > 299));
    // Beside the answer: the classifier's call and the answers a cascade discarded (issue 17: every attempt's cost counts).
    const besideAnswerNano = toNano(x.classifierCostUsd ?? 0) + toNano(x.escalationCostUsd ?? 0);
    const spent = usage === undefined ? undefined : spentUsd(usage, cost);
    let requestNano: number;
    let provisional = false;
    if (spent !== undefined) {
      requestNano = toNano(spent);
    } else if (usage === undefined && refused) {
      requestNano = 0;
    } else {
      requestNano = settlement.reservedNano;
      provisional = true;
    }
    const model = this.spendModel(x.facts?.model ?? x.routedModel);
    const onError = (err: unknown) => finished.log.warn({ err: String(err) }, 'settling the caller\'s spend failed');
    settlement.settle(requestNano + besideAnswerNano, model, onError);
    // The metric is a counter: it takes known costs only, a provisional one when it is reconciled.
    this.metrics?.spendRecorded(settlement.keyName, fromNano((provisional ? 0 : requestNano) + besideAnswerNano));
    if (!provisional) return undefined;
    return (usd) => {
      settlement.reconcile(toNano(usd) - requestNano, model, onError);
      this.metrics?.spendRecorded(settlement.keyName, usd);
    };
  }

  /**
   * The model a spend is counted under (GET /admin/spend?by=model): the served model as the
   * catalog lists it, else `other`, so that neither an upstream nor a client can grow the counters
   * with invented names; without a catalog, the name as routed (clipped).
   */
  private spendModel(model: string | undefined): string | undefined {
    if (model === undefined) return undefined;
    const catalog = this.catalog?.current;
    if (catalog === undefined) return model;
    return catalog.get(model) !== undefined ? model : 'other';
  }

  /** What the same token counts would have cost on the rules' baseline model, from the catalog. */
  private baselineCostOf(x: ExchangeRecord, now: Date): number | undefined {
    const usage = x.facts?.usage;
    const catalog = this.catalog?.current;
    if (usage === undefined || catalog === undefined || x.baselineModel === undefined) return undefined;
    return catalogCost(catalog, x.baselineModel, usage, now);
  }

  private log(finished: Finished, endpoint: Endpoint | undefined, cost: Cost | undefined, baselineCost: number | undefined): void {
    const x = finished.record;
    const status = x.status;
    const q = x.url.indexOf('?');
    const path = q === -1 ? x.url : x.url.slice(0, q);
    const log = finished.log as unknown as Logger;
    const level = PROBE_PATHS.has(path) ? 'debug' : status >= 500 && status !== 499 ? 'warn' : 'info';
    // Build nothing (and hash no prompt) for a line the level drops.
    if (!log.isLevelEnabled(level)) return;
    // Written before the line that sums them up.
    if (x.attempts.length > 0) logAttempts(log, x.attempts);
    const line: Record<string, unknown> = {
      method: x.method,
      path: clipText(path, MAX_TEXT_CHARS),
      status,
      duration_ms: round3(x.durationMs),
      bytes_in: x.bytesIn,
      bytes_out: x.bytesOut,
    };
    // The metrics' label: which API (chat, responses, messages...) the request spoke.
    if (endpoint !== undefined) line.endpoint = endpoint;
    if (x.clientAddress !== undefined) line.remote_addr = x.clientAddress;
    if (x.userAgent !== undefined) line.user_agent = clipText(x.userAgent, MAX_NAME_CHARS);
    if (x.clientKeyId !== undefined) line.client_key = x.clientKeyId;
    if (x.requestedModel !== undefined) line.model = x.requestedModel;
    if (x.rule !== undefined) line.rule = x.rule;
    if (x.variant !== undefined) line.variant = x.variant;
    if (x.classification !== undefined) {
      const v = x.classification;
      line.classify = { complexity: v.complexity, task: v.task, confidence: round3(v.confidence), method: v.method };
    }
    if (x.classifierCostUsd !== undefined) line.classifier_cost_usd = x.classifierCostUsd;
    if (x.escalations !== undefined) line.escalations = x.escalations.map((e) => ({ from: e.from, to: e.to, reason: e.reason }));
    if (x.escalationCostUsd !== undefined) line.escalation_cost_usd = x.escalationCostUsd;
    if (x.routedModel !== x.requestedModel) line.routed_model = x.routedModel;
    if (x.stream) line.stream = true;
    if (x.upstreamStatus !== undefined) line.upstream_status = x.upstreamStatus;
    if (x.attempts.length > 0) {
      line.upstream_attempts = x.attempts.length;
      line.overhead_ms = round3(x.overheadMs);
    }
    const facts = x.facts;
    if (facts) {
      if (facts.id !== undefined) line.generation_id = facts.id;
      if (facts.model !== undefined) line.served_model = facts.model;
      if (facts.provider !== undefined) line.provider = facts.provider;
      if (facts.finishReason !== undefined) line.finish_reason = facts.finishReason;
      if (facts.usage) {
        line.prompt_tokens = facts.usage.prompt;
        line.completion_tokens = facts.usage.completion;
        if (facts.usage.reasoning > 0) line.reasoning_tokens = facts.usage.reasoning;
        if (facts.usage.cached > 0) line.cached_tokens = facts.usage.cached;
        if (facts.usage.cacheWrite > 0) line.cache_write_tokens = facts.usage.cacheWrite;
        if (cost !== undefined) {
          line.cost_usd = cost.usd;
          line.cost_source = cost.source;
        }
        if (facts.usage.upstreamInferenceCost !== undefined) line.upstream_inference_cost_usd = facts.usage.upstreamInferenceCost;
        if (baselineCost !== undefined) line.baseline_cost_usd = baselineCost;
      }
      if (x.ttftMs !== undefined) line.ttft_ms = round3(x.ttftMs);
      if (facts.inbandError) line.upstream_error = facts.inbandError.code;
    }
    if (x.promptText !== undefined) {
      // A hash groups identical prompts (retries, loops) without writing personal data to logs.
      line.prompt_hash = hash('sha256', x.promptText, 'hex').slice(0, 16);
      if (this.logPrompts) line.prompt = clipText(x.promptText, MAX_PROMPT_CHARS);
    }
    if (x.clientClosed) line.client_closed = true;
    if (x.streamErrorKind) line.stream_error = x.streamErrorKind;
    if (x.error) {
      line.error_code = x.error.code;
      line.error = clipText(x.error.message, MAX_TEXT_CHARS);
    }
    writeLine(log, level, line, 'request');
  }
}

/** One debug line per upstream attempt of the exchange, in order. */
function logAttempts(log: Logger, attempts: readonly AttemptRecord[]): void {
  if (!log.isLevelEnabled('debug')) return;
  for (let i = 0; i < attempts.length; i++) {
    const attempt = attempts[i]!;
    const line: Record<string, unknown> = { attempt: attempt.attempt };
    if (attempt.model !== undefined) line.model = attempt.model;
    if (typeof attempt.outcome === 'number') line.status = attempt.outcome;
    else if (attempt.outcome !== undefined) line.error_code = attempt.outcome;
    line.duration_ms = round3(attempt.durationMs);
    if (attempt.retry !== undefined) line.wait_ms = attempt.retry.waitMs;
    writeLine(log, 'debug', line, 'upstream attempt');
  }
}

function round3(n: number): number {
  return Math.round(n * 1000) / 1000;
}

/**
 * Corrects the token buckets a request took its estimate from (src/accounts/rate-limit.ts): to the
 * reported prompt and completion tokens; to 0 when nothing was sent or the upstream refused it
 * without usage (nothing was generated); else (a stream cut before its usage, no answer) the
 * estimate stands, the conservative choice.
 */
function settleTokens(finished: Finished): void {
  const x = finished.record;
  const charge = x.tokenCharge;
  if (charge === undefined) return;
  const usage = x.facts?.usage;
  const status = x.upstreamStatus;
  const refused = x.attempts.length === 0 || (status !== undefined && (status < 200 || status > 299));
  const real = usage !== undefined ? usage.prompt + usage.completion : refused ? 0 : undefined;
  if (real !== undefined) charge.settle(real, (err) => finished.log.warn({ err: String(err) }, 'correcting the token rate limit failed'));
}
