/**
 * Every server setting, in one place: its path in the config file, the environment variable
 * that overrides it, its JSON schema, its default, the unit, and why the default is what it is.
 *
 * The ajv schema of the config file and the README's configuration table are both derived from
 * this list, so a setting cannot exist in one and be missing from the other.
 */

export type SettingType = 'string' | 'integer' | 'number' | 'boolean' | 'string[]' | 'number[]' | 'url' | 'log-level' | 'log-format' | 'redis-failure-mode';

export interface SettingSpec {
  /** Dotted path in the config file (snake_case, like the rest of the YAML). */
  readonly path: string;
  /** Environment variable that overrides the file. */
  readonly env: string;
  readonly type: SettingType;
  readonly default: string | number | boolean | readonly string[] | readonly number[] | undefined;
  readonly unit: string;
  readonly reason: string;
  readonly minimum?: number;
  readonly maximum?: number;
  /** Never printed: neither in logs nor in error messages. */
  readonly secret?: boolean;
}

const MiB = 1024 * 1024;

export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
export const LOG_FORMATS = ['json', 'pretty'] as const;
export const REDIS_FAILURE_MODES = ['open', 'closed'] as const;

// `as const` keeps each entry's literal path, type and default: SignalboxConfig (config/load.ts)
// is computed from them, so a setting added here is typed everywhere without a second list.
export const SETTINGS = Object.freeze([
  {
    path: 'server.host', env: 'HOST', type: 'string', default: '127.0.0.1', unit: 'address',
    reason: 'loopback unless asked otherwise: a proxy holding an API key must not be reachable by accident (the container sets 0.0.0.0)',
  },
  {
    path: 'server.port', env: 'PORT', type: 'integer', default: 8080, unit: 'TCP port', minimum: 0, maximum: 65535,
    reason: 'the usual unprivileged HTTP port; 0 picks a free port (tests)',
  },
  {
    path: 'server.body_limit_bytes', env: 'BODY_LIMIT_BYTES', type: 'integer', default: 20 * MiB, unit: 'bytes', minimum: 1024,
    reason: 'large enough for several base64 images in one chat request (OpenAI accepts 20 MB images), small enough to bound memory',
  },
  {
    path: 'server.max_header_bytes', env: 'MAX_HEADER_BYTES', type: 'integer', default: 16 * 1024, unit: 'bytes', minimum: 1024, maximum: 1024 * 1024,
    reason: "Node's own default (maxHeaderSize): the request line and every header together; an OpenAI request's headers are well under 4 KiB, and a bigger head is refused with 431 headers_too_large before any of it is buffered further",
  },
  {
    path: 'server.lingering_close_max_bytes', env: 'LINGERING_CLOSE_MAX_BYTES', type: 'integer', default: 64 * MiB, unit: 'bytes (0: off)', minimum: 0,
    reason: 'a request refused before its body was read (413 and others) has the rest of its body read and thrown away, so the client can finish sending and read the refusal instead of a reset connection; a body up to about three times the default body limit still gets its answer, a bigger one has its connection cut',
  },
  {
    path: 'server.lingering_close_max_ms', env: 'LINGERING_CLOSE_MAX_MS', type: 'integer', default: 30_000, unit: 'milliseconds', minimum: 1,
    reason: "nginx's lingering_time: however steadily a refused client keeps sending, its connection closes this long after the refusal",
  },
  {
    path: 'server.lingering_close_idle_ms', env: 'LINGERING_CLOSE_IDLE_MS', type: 'integer', default: 5000, unit: 'milliseconds', minimum: 1,
    reason: "nginx's lingering_timeout: a refused client that stops sending (one that waited for 100 Continue and got the refusal instead) is closed after this silence",
  },
  {
    path: 'server.request_timeout_ms', env: 'REQUEST_TIMEOUT_MS', type: 'integer', default: 60_000, unit: 'milliseconds', minimum: 1000,
    reason: "the whole request, head and body, must arrive within this time, or it gets a 408 (when no answer has started) and its connection is closed: a client trickling its body must not hold a connection, or its 401, for minutes. A minute carries the body limit at about 3 Mbit/s. Checked every quarter of it (at most every 30 s; Node's connectionsCheckingInterval), so a request is cut between 1 and 1.25 times this after it started",
  },
  {
    path: 'server.client_write_timeout_ms', env: 'CLIENT_WRITE_TIMEOUT_MS', type: 'integer', default: 60_000, unit: 'milliseconds', minimum: 1,
    reason: "a relayed response whose client has read nothing (its socket buffer full) for this long is ended and its upstream call aborted: while the relay waits the upstream is paused, so its idle timeout cannot fire, and a client that stops reading would otherwise pin a billed stream forever. A reading client empties the buffer in milliseconds",
  },
  {
    path: 'server.keep_alive_timeout_ms', env: 'KEEP_ALIVE_TIMEOUT_MS', type: 'integer', default: 65_000, unit: 'milliseconds', minimum: 1000,
    reason: 'longer than the 60 s idle timeout of common load balancers, so the proxy never closes a connection the balancer still uses',
  },
  {
    path: 'server.shutdown_grace_ms', env: 'SHUTDOWN_GRACE_MS', type: 'integer', default: 25_000, unit: 'milliseconds', minimum: 0,
    reason: "lets most in-flight streams finish on SIGTERM, and still ends before Kubernetes' default 30 s terminationGracePeriodSeconds kills the pod",
  },
  {
    path: 'upstream.base_url', env: 'OPENROUTER_BASE_URL', type: 'url', default: 'https://openrouter.ai/api/v1', unit: 'URL',
    reason: "OpenRouter's OpenAI-compatible API; any OpenAI-compatible base URL works",
  },
  {
    path: 'upstream.api_key', env: 'OPENROUTER_API_KEY', type: 'string', default: undefined, unit: 'secret', secret: true,
    reason: "unset means pass-through mode: each client's own bearer token is forwarded",
  },
  {
    path: 'upstream.connect_timeout_ms', env: 'UPSTREAM_CONNECT_TIMEOUT_MS', type: 'integer', default: 10_000, unit: 'milliseconds', minimum: 1,
    reason: 'TCP and TLS setup to a healthy upstream takes well under a second; 10 s tolerates a congested path without hanging clients',
  },
  {
    path: 'upstream.headers_timeout_ms', env: 'UPSTREAM_HEADERS_TIMEOUT_MS', type: 'integer', default: 300_000, unit: 'milliseconds', minimum: 1,
    reason: 'a non-streaming call to a reasoning model can think for minutes before the first response byte',
  },
  {
    path: 'upstream.idle_timeout_ms', env: 'UPSTREAM_IDLE_TIMEOUT_MS', type: 'integer', default: 120_000, unit: 'milliseconds', minimum: 1,
    reason: 'the longest silence allowed between two body chunks; OpenRouter sends keep-alive comments far more often, so two minutes of silence means a dead stream. There is deliberately no overall timeout: it would cut live streams',
  },
  {
    path: 'upstream.first_token_timeout_ms', env: 'UPSTREAM_FIRST_TOKEN_TIMEOUT_MS', type: 'integer', default: 0, unit: 'milliseconds (0: off)', minimum: 0,
    reason: 'off by default: to retry a stream that was accepted but yields no token, its first bytes must be held back until a token comes, which only latency-sensitive routes want; when set, such a stream counts as a failed attempt. At most 1 MiB is held (MAX_FIRST_TOKEN_HOLD_BYTES): a stream that sends more without a token (a flood of comments) is relayed from then on, without the option to retry',
  },
  {
    path: 'upstream.keep_alive_timeout_ms', env: 'UPSTREAM_KEEP_ALIVE_TIMEOUT_MS', type: 'integer', default: 30_000, unit: 'milliseconds', minimum: 1,
    reason: 'how long an idle upstream connection is kept for reuse (a server hint, when sent, wins); saves a TLS handshake per request',
  },
  {
    path: 'upstream.http_referer', env: 'OPENROUTER_HTTP_REFERER', type: 'string', default: undefined, unit: 'URL',
    reason: "OpenRouter's app attribution; unset means the client's own HTTP-Referer is forwarded",
  },
  {
    path: 'upstream.app_title', env: 'OPENROUTER_APP_TITLE', type: 'string', default: undefined, unit: 'text',
    reason: "OpenRouter's app attribution (sent as X-Title and X-OpenRouter-Title); unset means the client's own is forwarded",
  },
  {
    path: 'upstream.strip_headers', env: 'STRIP_HEADERS', type: 'string[]', default: ['x-signalbox-*'],
    unit: 'header names (comma-separated; a trailing * matches a prefix)',
    reason: "headers meant for the rules (`x-user-tier`, `x-team`) are removed before forwarding, and rules still see them; `x-signalbox-*` are Signalbox's own and none of OpenRouter's business. Setting this replaces the default: list `x-signalbox-*` too to keep it",
  },
  {
    path: 'retry.max_attempts', env: 'RETRY_MAX_ATTEMPTS', type: 'integer', default: 3, unit: 'attempts (1: never retry)', minimum: 1, maximum: 10,
    reason: 'the routed model and two more tries (the next fallbacks, or the same model after a backoff) cover a failing provider without making a client wait for long',
  },
  {
    path: 'retry.statuses', env: 'RETRY_STATUSES', type: 'number[]', default: [429, 500, 502, 503, 504], unit: 'HTTP statuses (comma-separated)',
    reason: 'rate limits and server errors are worth another attempt; 400, 401, 403, 404 and 422 are the request\'s fault and never are (402 only with Retry-After)',
  },
  {
    path: 'retry.budget_ms', env: 'RETRY_BUDGET_MS', type: 'integer', default: 30_000, unit: 'milliseconds', minimum: 0,
    reason: 'no new attempt starts later than this after the request arrived: past it a client is better served by the error than by more waiting',
  },
  {
    path: 'retry.retry_after_cap_ms', env: 'RETRY_AFTER_CAP_MS', type: 'integer', default: 60_000, unit: 'milliseconds', minimum: 0,
    reason: 'a Retry-After up to a minute is waited for; a longer one goes to the client at once, with its header, so it can decide',
  },
  {
    path: 'retry.on_network_errors', env: 'RETRY_ON_NETWORK_ERRORS', type: 'boolean', default: true, unit: 'true | false',
    reason: 'a refused or reset connection, or a connect or response-headers timeout, got no answer at all: another attempt is safe before any byte reached the client',
  },
  {
    path: 'cooldown.failures', env: 'COOLDOWN_FAILURES', type: 'integer', default: 5, unit: 'failures (0: off)', minimum: 0, maximum: 100,
    reason: 'five failed attempts within the window mark a model as failing, not a passing blip; it is then skipped while another model of the route can serve: for every client after a 5xx or no answer, for the API key that was sent after a 429. At most 100: each breaker entry keeps that many failure times',
  },
  {
    path: 'cooldown.window_ms', env: 'COOLDOWN_WINDOW_MS', type: 'integer', default: 60_000, unit: 'milliseconds', minimum: 1,
    reason: 'failures older than a minute no longer say much about a provider now',
  },
  {
    path: 'cooldown.duration_ms', env: 'COOLDOWN_DURATION_MS', type: 'integer', default: 30_000, unit: 'milliseconds', minimum: 1,
    reason: 'long enough for a provider to recover from an overload, short enough to notice it did: then one request probes the model before it takes traffic again',
  },
  {
    path: 'cooldown.max_entries', env: 'COOLDOWN_MAX_ENTRIES', type: 'integer', default: 10_000, unit: 'breaker entries', minimum: 1,
    reason: 'one entry per failing model (and per failing model and API key after a 429), far more than the models times keys of a real deployment; the cap bounds the breaker to a few MB when clients send random failing model names: past it the least recently failed entry is dropped, and entries whose window and cooldown are over are dropped anyway',
  },
  {
    path: 'client_auth.keys', env: 'SIGNALBOX_API_KEYS', type: 'string[]', default: [], unit: 'comma-separated secrets', secret: true,
    reason: 'empty means clients are not authenticated; when set, clients must send one of these as their bearer token, and it is never forwarded',
  },
  {
    path: 'keys_file', env: 'KEYS_FILE', type: 'string', default: undefined, unit: 'path',
    reason: 'unset: SIGNALBOX_API_KEYS (or no client authentication); set: the client keys with their names, tiers, teams, model allow-lists, rate limits and budgets (docs/keys-and-budgets.md), hot-reloaded like the rules file (RULES_DEBOUNCE_MS, RULES_POLL_INTERVAL_MS), so a key is created or revoked without a restart',
  },
  {
    path: 'rules_file', env: 'RULES_FILE', type: 'string', default: './rules.yaml', unit: 'path',
    reason: 'the routing rules beside the working directory; relative paths resolve against the working directory',
  },
  {
    path: 'rules_debounce_ms', env: 'RULES_DEBOUNCE_MS', type: 'integer', default: 100, unit: 'milliseconds', minimum: 0,
    reason: 'editors and ConfigMap updates touch the directory several times within a few milliseconds; one reload once they settle, well within a second of saving',
  },
  {
    path: 'rules_poll_interval_ms', env: 'RULES_POLL_INTERVAL_MS', type: 'integer', default: 2000, unit: 'milliseconds (0: off)', minimum: 0,
    reason: 'a stat() of the rules file backs up change events, which some filesystems (network mounts, some container bind mounts) lose; cheap enough to run every 2 s',
  },
  {
    path: 'catalog.refresh_ms', env: 'CATALOG_REFRESH_MS', type: 'integer', default: 3_600_000, unit: 'milliseconds', minimum: 1000,
    reason: "OpenRouter's prices and models change a few times a day at most; one fetch of the model list an hour (jittered by ±10%, so the replicas of a deployment do not fetch together) keeps prices current at no cost. A failed refresh keeps the catalog in force until the next one",
  },
  {
    path: 'catalog.generation_costs', env: 'GENERATION_COSTS', type: 'boolean', default: true, unit: 'true | false',
    reason: 'a stream cut before its usage chunk (or an answer without usage) reported no cost, yet was billed: with a server key, its cost is looked up afterwards at GET /generation?id= (retried for about a minute while OpenRouter stores it) and counted with source="generation". Off: such requests stay without a cost',
  },
  {
    path: 'catalog.file', env: 'CATALOG_FILE', type: 'string', default: undefined, unit: 'path',
    reason: 'unset means the catalog is fetched from the upstream (`GET {OPENROUTER_BASE_URL}/models`); set, this Models API response file is read instead, at start and at every refresh, and nothing is fetched (air-gapped deployments, tests)',
  },
  {
    path: 'data_dir', env: 'DATA_DIR', type: 'string', default: './data', unit: 'path',
    reason: 'the last good model catalog is kept here (`catalog.json`), so a restart without network starts with it, the embedding classifier\'s example vectors (`embeddings-*.f32`), so a restart does not pay to embed them again, and without REDIS_URL the spend snapshot (`spend.json`); relative paths resolve against the working directory (the container uses its volume /var/lib/signalbox)',
  },
  {
    path: 'redis.url', env: 'REDIS_URL', type: 'string', default: undefined, unit: 'redis:// or rediss:// URL', secret: true,
    reason: 'unset keeps rate-limit and spend state in process memory (spend snapshotted to DATA_DIR), so each replica counts alone; set, every replica takes from the same buckets and reserves against the same budgets in this Redis, one Lua script per request (docs/keys-and-budgets.md, State stores). Secret: the URL may hold a password',
  },
  {
    path: 'redis.failure_mode', env: 'REDIS_FAILURE_MODE', type: 'redis-failure-mode', default: 'open', unit: REDIS_FAILURE_MODES.join(' | '),
    reason: 'what a request gets while Redis is unreachable: open admits it under this replica\'s own in-memory limits (limits then hold per replica only; logged once per outage and counted), closed refuses it with 503 rate_limit_store_unavailable. Open by default: an outage of the limiter should not become an outage of the proxy',
  },
  {
    path: 'redis.command_timeout_ms', env: 'REDIS_COMMAND_TIMEOUT_MS', type: 'integer', default: 200, unit: 'milliseconds', minimum: 1,
    reason: 'the longest a request waits for Redis before the failure mode applies: one script is well under a millisecond on a healthy link, so 200 ms means Redis is stuck or gone, and bounds what an outage adds to every request',
  },
  {
    path: 'budget.timezone', env: 'BUDGET_TIMEZONE', type: 'string', default: 'UTC', unit: 'IANA time zone',
    reason: 'where a day and a month of spend begin and end (daily_usd, monthly_usd, the admin API\'s days): UTC, as OpenRouter\'s own accounting; a team that thinks in its office hours sets its zone (Europe/Paris)',
  },
  {
    path: 'budget.user_source', env: 'USER_SOURCE', type: 'string', default: undefined, unit: 'body.user | header.<name>',
    reason: 'unset: no end users (spend, budgets and limits per key and team only); set, the end user a request is for is read from the body\'s `user` field (OpenAI\'s; `metadata.user_id` in Messages) or this header, under its key only, and gets its own spend, the keys file\'s `users:` budgets and limits (docs/keys-and-budgets.md)',
  },
  {
    path: 'budget.max_users_per_key', env: 'MAX_USERS_PER_KEY', type: 'integer', default: 1000, unit: 'end users', minimum: 1,
    reason: 'end users are named by the client, so each key keeps at most this many (the least recently seen is forgotten with its spend): a client cannot mint unlimited fresh per-user budgets, and the state stays bounded (the key\'s own budget still caps them all)',
  },
  {
    path: 'budget.unpriced_reserve_usd', env: 'UNPRICED_RESERVE_USD', type: 'number', default: 0.5, unit: 'USD', minimum: 0.000001,
    reason: 'what a request reserves against its budgets when the catalog has no price for its model (no catalog yet, a model it does not list), since reserving nothing would let any number through: about a 16,000-token answer of a frontier model at $30 per million',
  },
  {
    path: 'budget.history_days', env: 'SPEND_HISTORY_DAYS', type: 'integer', default: 35, unit: 'days', minimum: 0,
    reason: 'how long spend counters are kept after their day or month has ended, for GET /admin/spend and `signalbox spend` (a month of days, and last month until its bill is checked); end users\' counters are not kept past their period',
  },
  {
    path: 'budget.snapshot_interval_ms', env: 'SPEND_SNAPSHOT_INTERVAL_MS', type: 'integer', default: 10_000, unit: 'milliseconds', minimum: 100,
    reason: 'without REDIS_URL, spend lives in memory and is written to DATA_DIR/spend.json this often (and on shutdown), atomically; a crash loses at most this much spend, and a snapshot every 10 s costs nothing a request would notice',
  },
  {
    path: 'shadow.timeout_ms', env: 'SHADOW_TIMEOUT_MS', type: 'integer', default: 60_000, unit: 'milliseconds', minimum: 1,
    reason: 'the longest a shadow copy (route.shadow) and its judge call may each take before they are aborted and counted as timeout: a copy runs after the real answer has ended and nobody waits for it, so this only bounds what a slow candidate holds (a slot of its max_concurrency, a connection); a minute covers a long non-streamed answer',
  },
  {
    path: 'shadow.account', env: 'SHADOW_ACCOUNT', type: 'string', default: 'shadow', unit: 'account name ([A-Za-z0-9_.-], 1-64)',
    reason: 'the spend account whose counters (sp:key:<account>:d:/m:, GET /admin/spend) take what shadow copies and their judge calls cost, never the caller\'s: an experiment is the operator\'s expense, not the client\'s budget. Name it apart from every client key, or that key\'s counters get the shadows\' cost too',
  },
  {
    path: 'admin.key', env: 'ADMIN_KEY', type: 'string', default: undefined, unit: 'secret', secret: true,
    reason: 'unset, the admin API (/admin/spend, /admin/keys, spend resets) is off; set, it answers requests that present this key, which is never a client key (a request to /v1 presenting it is refused), so a leaked client key cannot read or reset spend',
  },
  {
    path: 'feedback.secret', env: 'FEEDBACK_SECRET', type: 'string', default: undefined, unit: 'secret (at least 32 characters)', secret: true,
    reason: 'unset, no feedback tokens are issued and POST /v1/feedback answers 404; set, every routed chat answer carries x-signalbox-feedback-token, signed with this key (HMAC-SHA256), which POST /v1/feedback verifies without any lookup: every replica given the same secret accepts the others\' tokens (docs/experiments.md). 32 characters: an HMAC key shorter than its 256-bit output weakens it',
  },
  {
    path: 'feedback.labels', env: 'FEEDBACK_LABELS', type: 'string[]', default: ['good', 'bad'], unit: 'labels (comma-separated)',
    reason: 'the labels a client may send to POST /v1/feedback (any other is a 400): they are a label of signalbox_feedback_total, so the client must not choose them freely; `signalbox report --by variant` shows the share of `good`',
  },
  {
    path: 'feedback.token_ttl_ms', env: 'FEEDBACK_TOKEN_TTL_MS', type: 'integer', default: 7 * 24 * 3_600_000, unit: 'milliseconds', minimum: 1000,
    reason: 'a week: long enough for a user to rate an answer they come back to, short enough that a leaked token cannot be replayed for ever (each replay counts once more)',
  },
  {
    path: 'metrics.enabled', env: 'METRICS_ENABLED', type: 'boolean', default: true, unit: 'true | false',
    reason: 'GET /metrics in the Prometheus text format; cost and latency are half of what the proxy is for',
  },
  {
    path: 'metrics.models', env: 'METRICS_MODELS', type: 'string[]', default: [], unit: 'comma-separated model names',
    reason: 'model names a client may ask for that get their own label value besides those the rules and tiers name; every other requested model is labelled `other`, so clients cannot grow the number of series',
  },
  {
    path: 'metrics.max_served_models', env: 'METRICS_MAX_SERVED_MODELS', type: 'integer', default: 100, unit: 'label values', minimum: 0,
    reason: 'served models (reported by a successful upstream response: OpenRouter may pick a fallback or a dated variant) beyond those the rules name are labelled as they come, up to this many; later ones, and names only asked for or routed to, are `other`, so clients cannot use up the slots',
  },
  {
    path: 'metrics.duration_buckets_seconds', env: 'METRICS_DURATION_BUCKETS_SECONDS', type: 'number[]',
    default: [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60, 120, 300, 600], unit: 'seconds (comma-separated)',
    reason: 'LLM requests last from tens of milliseconds (errors, cache hits) to minutes (long reasoning streams)',
  },
  {
    path: 'metrics.ttft_buckets_seconds', env: 'METRICS_TTFT_BUCKETS_SECONDS', type: 'number[]',
    default: [0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1, 1.5, 2, 3, 5, 10, 20, 60], unit: 'seconds (comma-separated)',
    reason: 'time to first token is usually 0.2 to 2 s, and minutes for reasoning models that think first',
  },
  {
    path: 'metrics.overhead_buckets_seconds', env: 'METRICS_OVERHEAD_BUCKETS_SECONDS', type: 'number[]',
    default: [0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.1], unit: 'seconds (comma-separated)',
    reason: "the proxy's own time is tens of microseconds to a few milliseconds; buckets from 50 µs resolve it",
  },
  {
    path: 'log.prompts', env: 'LOG_PROMPTS', type: 'boolean', default: false, unit: 'true | false',
    reason: 'the request log carries a hash of the last user message, never its text, unless this is true (prompts are often personal data); then its first 4096 characters',
  },
  {
    path: 'log.level', env: 'LOG_LEVEL', type: 'log-level', default: 'info', unit: LOG_LEVELS.join(' | '),
    reason: 'info writes one line per request, which is what operators need; debug adds the lines of health and readiness probes and one line per upstream attempt',
  },
  {
    path: 'log.format', env: 'LOG_FORMAT', type: 'log-format', default: 'json', unit: LOG_FORMATS.join(' | '),
    reason: 'one JSON object per line is what log shippers read; pretty is for a person at a terminal in a checkout (it needs the dev dependency pino-pretty, which the container image does not install)',
  },
] as const satisfies readonly SettingSpec[]);

/** The TypeScript type a setting's values have once validated. */
type ValueOfType<T extends SettingType> = T extends 'integer' ? number
  : T extends 'number' ? number
  : T extends 'boolean' ? boolean
  : T extends 'string[]' ? readonly string[]
  : T extends 'number[]' ? readonly number[]
  : T extends 'log-level' ? (typeof LOG_LEVELS)[number]
  : T extends 'log-format' ? (typeof LOG_FORMATS)[number]
  : T extends 'redis-failure-mode' ? (typeof REDIS_FAILURE_MODES)[number]
  : string;

type Spec = (typeof SETTINGS)[number];
type TopKey<P extends string> = P extends `${infer Head}.${string}` ? Head : never;
/** The settings under `head`, with `head.` taken off their paths. */
type Under<S extends { readonly path: string }, Head extends string> =
  S extends { readonly path: `${Head}.${infer Rest}` } ? Omit<S, 'path'> & { readonly path: Rest } : never;
type Leaf<S> = S extends { readonly path: `${string}.${string}` } ? never : S;
type AnySpec = { readonly path: string; readonly type: SettingType; readonly default: unknown };

/**
 * The nested object the settings describe: path 'server.port' of type 'integer' becomes
 * `{ server: { port: number } }`; a setting without a default is optional (unset).
 */
export type SettingsTree<S extends AnySpec> = {
  readonly [Head in TopKey<S['path']>]: SettingsTree<Under<S, Head>>;
} & {
  readonly [L in Leaf<S> as L['default'] extends undefined ? never : L['path']]: ValueOfType<L['type']>;
} & {
  readonly [L in Leaf<S> as L['default'] extends undefined ? L['path'] : never]?: ValueOfType<L['type']> | undefined;
};

/** Every setting, validated: the shape of the config file with all defaults filled in. */
export type Settings = SettingsTree<Spec>;

/** The config file is optional; this is where it is looked for when CONFIG_FILE is not set. */
export const DEFAULT_CONFIG_FILE = './config/signalbox.yaml';
export const CONFIG_FILE_ENV = 'CONFIG_FILE';
