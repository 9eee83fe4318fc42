import { join, resolve } from 'node:path';
import Fastify, { LogController, type FastifyBaseLogger, type FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import type { LimitStore } from '../accounts/limit-store.js';
import { MemoryLimitStore } from '../accounts/memory-limit-store.js';
import { SPEND_SNAPSHOT_FILE, SpendSnapshots } from '../accounts/spend-snapshots.js';
import { Accounts } from '../accounts/accounts.js';
import { compileUserSource } from '../accounts/budget.js';
import { LiveCatalog, type CatalogRefreshEvent } from '../catalog/refresher.js';
import type { SignalboxConfig } from '../config/load.js';
import { InternalError, InvalidRequestError, RouteNotFoundError, ShuttingDownError } from '../errors.js';
import { SignalboxMetrics } from '../metrics/metrics.js';
import { emptyRuleSet } from '../rules/compile.js';
import type { RulesSource } from '../rules/ruleset.js';
import { LiveRules, type ReloadEvent } from '../rules-file/live-rules.js';
import { UpstreamClient } from '../upstream/client.js';
import { flatKeyRing, sha256 } from '../accounts/keys-file.js';
import { PeriodClock } from '../accounts/spend.js';
import { clientAuthHook, type KeysSource } from './client-auth.js';
import { clientErrorHandler, connectHandler, frameworkErrorHandler } from './client-error.js';
import { envelopeOf, toClientError } from './error-envelope.js';
import { proxyHeaders } from './response-head.js';
import { Lifecycle } from './lifecycle.js';
import { answeredBeforeBody, inviteBodiesWithinLimit } from './lingering-close.js';
import { ExchangeRecorder } from './recorder.js';
import { StickyTiers } from './sticky-tiers.js';
import { requestTimeoutOptions } from './request-timeout.js';
import { ModelCooldowns } from '../upstream/cooldown.js';
import { GenerationCosts } from '../upstream/generation-costs.js';
import { upstreamAuthorization, upstreamHeaderOptions } from '../upstream/headers.js';
import { ClassifierResolver } from '../classify/resolver.js';
import { Shadows } from '../experiments/shadow.js';
import { toNano } from '../accounts/spend.js';
import exchangePlugin, { requestIdFrom } from './plugins/exchange.js';
import type { ForwardDeps } from './forward.js';
import { adminRoutes } from './routes/admin.js';
import { routedRoutes } from './routes/routed.js';
import { healthRoutes } from './routes/health.js';
import { modelsRoute } from './routes/models.js';
import { passthroughRoutes } from './routes/passthrough.js';
import { feedbackRoutes } from './routes/feedback.js';
import { FeedbackTokens } from '../experiments/feedback.js';

/** How long closing waits for the 'close' events of the responses still open once the server closed. */
const LAST_RESPONSES_CLOSE_MS = 1000;

export interface AppOptions {
  readonly config: SignalboxConfig;
  readonly logger: Logger;
  /** The routing rules in force (a `LiveRules` when the file is reloaded); no rules when absent: all forwarded unchanged. */
  readonly rules?: RulesSource;
  /** The model catalog in force (kept current by a `CatalogRefresher`); none loaded when absent. */
  readonly catalog?: LiveCatalog;
  readonly lifecycle?: Lifecycle;
  /** The client keys in force (a `LiveKeys` when KEYS_FILE is reloaded); absent: SIGNALBOX_API_KEYS, else no client authentication. */
  readonly keys?: KeysSource;
  /** Where rate-limit and spend state lives (in memory when absent) and its clock (Date.now when absent). */
  readonly limits?: { readonly store?: LimitStore; readonly clock?: () => number };
  /** The shadow copies' sample draw (route.shadow), in [0, 1); Math.random when absent (tests inject one). */
  readonly shadowRandom?: () => number;
}

export interface SignalboxApp {
  readonly app: FastifyInstance;
  readonly lifecycle: Lifecycle;
  readonly upstream: UpstreamClient;
  /** Undefined when metrics are disabled. */
  readonly metrics: SignalboxMetrics | undefined;
  /** The model catalog in force. */
  readonly catalog: LiveCatalog;
  /** The later cost lookups of cut streams; undefined without a server key or with GENERATION_COSTS=false. */
  readonly generationCosts: GenerationCosts | undefined;
}

const ORIGIN_FORM_ONLY = 'Only origin-form request targets (/v1/...) are served';

/** Builds the Fastify application; `listen` is the caller's. */
export async function buildApp(options: AppOptions): Promise<SignalboxApp> {
  const { config } = options;
  const lifecycle = options.lifecycle ?? new Lifecycle();
  const upstream = new UpstreamClient({
    baseUrl: config.upstream.base_url,
    connectTimeoutMs: config.upstream.connect_timeout_ms,
    headersTimeoutMs: config.upstream.headers_timeout_ms,
    idleTimeoutMs: config.upstream.idle_timeout_ms,
    keepAliveTimeoutMs: config.upstream.keep_alive_timeout_ms,
  });
  const rules = options.rules ?? { current: emptyRuleSet() };
  const keys = options.keys ?? (config.client_auth.keys.length > 0 ? { current: flatKeyRing(config.client_auth.keys) } : undefined);
  /** The account step (rate limits, budgets, spend), built once its store is; the metrics read it at scrape time. */
  let accounts: Accounts | undefined;
  const catalog = options.catalog ?? new LiveCatalog();
  // Created before the metrics that count it; the callback reads them when a cooldown starts.
  let metrics: SignalboxMetrics | undefined;
  const cooldowns = new ModelCooldowns(
    {
      failures: config.cooldown.failures, windowMs: config.cooldown.window_ms, durationMs: config.cooldown.duration_ms,
      maxEntries: config.cooldown.max_entries,
    },
    (model, scope) => {
      metrics?.cooldownStarted(model);
      options.logger.warn({ model, scope, cooldown_ms: config.cooldown.duration_ms }, 'model cooling down: skipped while another model of the route can serve');
    },
  );
  if (config.metrics.enabled) {
    metrics = new SignalboxMetrics(config.metrics, {
      inflight: () => lifecycle.inflightCount,
      activeStreams: () => lifecycle.activeStreams,
      coolingModels: () => Object.keys(cooldowns.cooling()).length,
      catalogAgeSeconds: () => catalog.ageSeconds(Date.now()),
      inCatalog: (model) => (catalog.current === undefined ? undefined : catalog.current.get(model) !== undefined),
      // Built below; read at scrape time only.
      budgetsRemaining: () => (accounts === undefined || keys === undefined ? Promise.resolve([]) : accounts.budgetsRemaining(keys.current.callers)),
    });
  }
  let onReload: ((event: ReloadEvent) => void) | undefined;
  let onCatalogRefresh: ((event: CatalogRefreshEvent) => void) | undefined;
  // Models the rules name that the catalog does not list: one warning per rules load, when both are known.
  const warnedRules = new WeakSet<object>();
  const warnUnknownModels = (): void => {
    const current = rules.current;
    const known = catalog.current;
    if (known === undefined || warnedRules.has(current)) return;
    warnedRules.add(current);
    // Names without a `/` are no model ids (`auto`, values compared in conditions).
    const unknown = current.models.filter((m) => m.includes('/') && known.get(m) === undefined);
    if (unknown.length > 0) options.logger.warn({ rules_hash: current.hash, models: unknown.slice(0, 50), count: unknown.length }, 'models named by the rules are not in the model catalog: as fallbacks they are not sent, and choose drops them');
  };
  // From event listeners: nothing thrown there may escape (issue 12, defect 1).
  const warnSafely = (loaded: boolean): void => {
    try {
      if (loaded) warnUnknownModels();
    } catch (err) {
      options.logger.error({ err }, 'checking the rules\' models against the catalog failed');
    }
  };
  const onCatalogLoaded = (event: CatalogRefreshEvent): void => warnSafely(event.result === 'success');
  catalog.on('refresh', onCatalogLoaded);
  const onRulesLoaded = (event: ReloadEvent): void => warnSafely(event.result === 'success');
  if (rules instanceof LiveRules) rules.on('reload', onRulesLoaded);
  warnUnknownModels();
  if (metrics) {
    const m = metrics;
    onCatalogRefresh = (event) => {
      if (event.result === 'failure') m.catalogRefreshFailed();
    };
    catalog.on('refresh', onCatalogRefresh);
    m.rulesLoaded(rules.current.hash, rules.current.models);
    if (rules instanceof LiveRules) {
      onReload = (event) => {
        m.reloadAttempted(event);
        if (event.result === 'success') m.rulesLoaded(event.hash, rules.current.models);
      };
      rules.on('reload', onReload);
    }
  }
  const proxy: ForwardDeps = {
    upstream,
    lifecycle,
    cooldowns,
    firstTokenTimeoutMs: config.upstream.first_token_timeout_ms,
    clientWriteTimeoutMs: config.server.client_write_timeout_ms,
    feedbackTokens: config.feedback.secret === undefined ? undefined : new FeedbackTokens(config.feedback.secret, config.feedback.token_ttl_ms),
    retry: config.policies.retry,
    headerOptions: upstreamHeaderOptions({
      apiKey: config.upstream.api_key,
      httpReferer: config.upstream.http_referer,
      appTitle: config.upstream.app_title,
      strip: config.policies.stripHeaders,
    }),
  };

  const app: FastifyInstance = Fastify({
    loggerInstance: options.logger as FastifyBaseLogger,
    // One line per request is written by the exchange plugin, with what Fastify cannot know.
    logController: new LogController({ disableRequestLogging: true }),
    bodyLimit: config.server.body_limit_bytes,
    keepAliveTimeout: config.server.keep_alive_timeout_ms,
    requestTimeout: config.server.request_timeout_ms,
    http: { ...requestTimeoutOptions(config.server.request_timeout_ms), maxHeaderSize: config.server.max_header_bytes },
    requestIdHeader: false,
    genReqId: (req) => requestIdFrom(req.headers['x-request-id']),
    onProtoPoisoning: 'error',
    onConstructorPoisoning: 'error',
    // Closing keeps in-flight responses (streams) alive; draining is Signalbox's to manage:
    // requests that arrive meanwhile get the OpenAI envelope from the v1 gate below, not
    // Fastify's plain 503, and probes keep answering.
    forceCloseConnections: 'idle',
    return503OnClosing: false,
    // Requests Node's parser or Fastify's router refuse get the envelope too, logged and counted.
    clientErrorHandler: (err, socket) => refuseClient(err, socket),
    frameworkErrors: frameworkErrorHandler(() => recorder),
  });

  inviteBodiesWithinLimit(app.server, config.server.body_limit_bytes);
  const closeAfterBody = answeredBeforeBody({
    maxBytes: config.server.lingering_close_max_bytes,
    maxMs: config.server.lingering_close_max_ms,
    idleMs: config.server.lingering_close_idle_ms,
  });

  // With a server key, a response that reported no cost (a stream cut before its usage) is priced
  // afterwards from GET /generation; a client's own key is never kept for that.
  const serverKey = config.upstream.api_key;
  const generationCosts = serverKey === undefined || !config.catalog.generation_costs ? undefined : new GenerationCosts(upstream, `Bearer ${serverKey}`, ({ lookup, usd }) => {
    metrics?.costReconciled(lookup.rule, lookup.model, usd, lookup.variant);
    lookup.reconcileSpend?.(usd);
    options.logger.info({ reqId: lookup.requestId, generation_id: lookup.id, rule: lookup.rule, cost_usd: usd, cost_source: 'generation' }, 'generation cost');
  });
  // Classifier calls are paid with the server key, else the client's own (the caller pays); the key is never logged.
  const classifiers = new ClassifierResolver({
    upstream,
    catalog: () => catalog.current,
    dataDir: resolve(config.data_dir),
    credential: (headers) => upstreamAuthorization(headers, proxy.headerOptions),
    observe: (method, outcome, seconds, costUsd) => metrics?.classifierCalled(method, outcome, seconds, costUsd),
    onCacheWriteError: (err) => options.logger.warn({ err: String(err) }, 'the embedding classifier could not write its vectors to DATA_DIR: they are embedded again after a restart'),
  });
  // Rate limits per key and team; the store is closed with the app.
  // With REDIS_URL the limits hold across replicas; while Redis is unreachable the in-memory store
  // takes over (fail open: limits per replica) or requests get 503 (fail closed).
  // The Redis client is loaded only then: a proxy without REDIS_URL does not pay for it at start.
  let limitStore = options.limits?.store;
  if (limitStore === undefined && config.redis.url !== undefined) {
    const redisStore = new (await import('../accounts/redis-limit-store.js')).RedisLimitStore({
      url: config.redis.url, failureMode: config.redis.failure_mode, commandTimeoutMs: config.redis.command_timeout_ms,
      logger: options.logger, fallback: new MemoryLimitStore(),
    });
    metrics?.limitStoreWatched(redisStore);
    limitStore = redisStore;
  }
  // Without Redis, spend lives in this process: snapshotted to DATA_DIR and read back at start.
  let snapshots: SpendSnapshots | undefined;
  if (limitStore === undefined) {
    const memoryStore = new MemoryLimitStore();
    snapshots = new SpendSnapshots({
      store: memoryStore, file: join(resolve(config.data_dir), SPEND_SNAPSHOT_FILE), intervalMs: config.budget.snapshot_interval_ms, logger: options.logger,
      ...(options.limits?.clock && { clock: options.limits.clock }),
    });
    snapshots.load();
    snapshots.start();
    limitStore = memoryStore;
  }
  const budget = config.budget;
  // One clock of days and months for budgets and the admin API (BUDGET_TIMEZONE).
  const periods = new PeriodClock(budget.timezone);
  accounts = new Accounts(limitStore, {
    periods, userSource: compileUserSource(budget.user_source),
    historyDays: budget.history_days, maxUsersPerKey: budget.max_users_per_key, unpricedReserveUsd: budget.unpriced_reserve_usd,
  }, options.limits?.clock);
  // Shadow copies and their judge are paid with the server key only, and counted to SHADOW_ACCOUNT.
  const shadowAccount = config.shadow.account;
  const shadows = new Shadows({
    upstream, serverAuthorization: serverKey === undefined ? undefined : `Bearer ${serverKey}`, catalog: () => catalog.current, metrics,
    timeoutMs: config.shadow.timeout_ms, ...(options.shadowRandom && { random: options.shadowRandom }),
    charge: (usd, model, log) => {
      accounts!.charge(shadowAccount, toNano(usd), model, (err) => log.warn({ err: String(err) }, 'counting a shadow\'s spend failed'));
      metrics?.spendRecorded(shadowAccount, usd);
    },
  });
  const recorder = new ExchangeRecorder({ metrics, logPrompts: config.log.prompts, catalog, generationCosts, shadows });
  await app.register(exchangePlugin, { recorder, lifecycle });
  const refusals = { recorder, log: app.log, maxHeaderBytes: config.server.max_header_bytes, requestTimeoutMs: config.server.request_timeout_ms };
  const refuseClient = clientErrorHandler(refusals);
  // Only origin-form targets (`/v1/...`, RFC 9112 §3.2.1) are served. Signalbox is not a forward
  // proxy: an absolute-form target (`GET http://evil/v1/models`) would otherwise be routed by its
  // path and forwarded with a mangled path and the server key; a server that is not a proxy may
  // refuse it (RFC 9112 §3.2.2). Asterisk-form (`OPTIONS *`) has nothing to serve either.
  app.addHook('onRequest', (request, _reply, done) => {
    done(request.raw.url?.startsWith('/') ? undefined : new InvalidRequestError(ORIGIN_FORM_ONLY, 'invalid_request_target'));
  });
  app.server.on('connect', connectHandler(refusals, ORIGIN_FORM_ONLY));

  app.setErrorHandler((err, request, reply) => {
    const exchange = request.exchange;
    const call = exchange.upstream;
    const attempts = call?.attempts.length ?? 0;
    const { status, body, error, headers } = toClientError(err, {
      contentType: request.headers['content-type'],
      bodyLimitBytes: request.routeOptions.bodyLimit,
      upstreamAttempts: attempts,
      envelope: envelopeOf(request.url),
    });
    exchange.error = error;
    // The routing headers from their values: the rule, and the attempts made before giving up.
    reply.headers(proxyHeaders({
      requestId: request.id, rule: exchange.rule, model: call?.routed === true ? call.model : undefined, attempts, overheadMs: exchange.proxyMs(),
    }));
    closeAfterBody(request, reply);
    // Upstream failures are the request line's business (error_code, error); only a bug gets a stack.
    if (error instanceof InternalError) request.log.error({ err: error.cause ?? error }, error.message);
    if (error instanceof ShuttingDownError) reply.header('connection', 'close');
    void reply.code(status).headers(headers).send(body);
  });
  app.setNotFoundHandler((request, reply) => {
    const { status, body, headers } = toClientError(new RouteNotFoundError(request.method, request.url.split('?')[0] ?? ''));
    closeAfterBody(request, reply);
    void reply.code(status).headers(headers).send(body);
  });

  await app.register(healthRoutes, { lifecycle });
  if (metrics) {
    app.get('/metrics', async (_request, reply) => {
      // Exchanges that finished before this scrape are in it.
      recorder.flush();
      reply.header('content-type', metrics.registry.contentType);
      return metrics.registry.metrics();
    });
  }

  // The admin API exists only with ADMIN_KEY (otherwise /admin/* is the usual 404); its key is never a client key.
  const adminDigest = config.admin.key === undefined ? undefined : sha256(config.admin.key);
  if (adminDigest !== undefined) {
    await app.register(adminRoutes, {
      adminDigest, keys, store: limitStore, periods,
      clock: options.limits?.clock ?? Date.now, historyDays: config.budget.history_days,
    });
  }

  await app.register(async (v1) => {
    v1.addHook('onRequest', (_request, _reply, done) => {
      done(lifecycle.draining ? new ShuttingDownError() : undefined);
    });
    if (keys !== undefined || adminDigest !== undefined) v1.addHook('onRequest', clientAuthHook(keys, adminDigest));
    // The request log line hashes the last user message: the body is kept for it only when such lines are written.
    // The tiers conversations keep (`tier_from.stick_by`): bounded, no timer (expired on read).
    await v1.register(routedRoutes, { rules, proxy, keepPrompt: options.logger.isLevelEnabled('warn'), catalog, classifiers, stickyTiers: new StickyTiers(), accounts, shadows });
    await v1.register(modelsRoute, { rules, proxy });
    await v1.register(feedbackRoutes, { tokens: proxy.feedbackTokens, labels: config.feedback.labels, metrics });
    await v1.register(passthroughRoutes, { proxy });
  });

  app.addHook('onClose', async () => {
    // The server has closed, but the 'close' events of the responses its last connections carried
    // (each records its exchange) can come a tick later: a line recorded after this flush would
    // be lost on exit (issue 12, defect 13). Every connection is gone, so they come at once; the
    // bound only guards against a response that never closes.
    await lifecycle.waitForIdle(LAST_RESPONSES_CLOSE_MS);
    // Shadows in flight are aborted, and the exchanges flushed below start none: nothing waits for them.
    shadows.close();
    recorder.flush();
    // After the last flush: the spend it settled is in the last snapshot.
    await snapshots?.close();
    // The live rules may outlive this app (tests build several apps on one LiveRules).
    if (onReload && rules instanceof LiveRules) rules.off('reload', onReload);
    if (onCatalogRefresh) catalog.off('refresh', onCatalogRefresh);
    catalog.off('refresh', onCatalogLoaded);
    generationCosts?.close();
    await accounts.store.close();
    if (rules instanceof LiveRules) rules.off('reload', onRulesLoaded);
    await upstream.close();
  });

  return { app, lifecycle, upstream, metrics, catalog, generationCosts };
}
