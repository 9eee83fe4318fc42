import { readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { Ajv, type ErrorObject } from 'ajv';
import { AJV_STARTUP_OPTIONS } from './ajv-options.js';
import { ConfigError } from '../errors.js';
import { FIELD_VALUE_RULE, HeaderNameMatcher, isFieldValue, isHeaderPattern } from '../upstream/headers.js';
import type { RetryPolicy } from '../upstream/retry.js';
import { CONFIG_FILE_ENV, DEFAULT_CONFIG_FILE, LOG_FORMATS, LOG_LEVELS, REDIS_FAILURE_MODES, SETTINGS, type SettingSpec, type Settings } from './settings.js';
import { YamlSource, pointerToPath } from './yaml-source.js';

export type LogLevel = (typeof LOG_LEVELS)[number];
export type LogFormat = (typeof LOG_FORMATS)[number];

/** What is built from the settings once, at load, instead of on each request. */
export interface DerivedPolicies {
  readonly retry: RetryPolicy;
  /** upstream.strip_headers, compiled. */
  readonly stripHeaders: HeaderNameMatcher;
}

/**
 * The validated, frozen server configuration. Keys mirror the config file; the type is computed
 * from SETTINGS (config/settings.ts), so it cannot drift from the schema or the README table.
 */
export type SignalboxConfig = Settings & {
  /** The config file that was read, if any. */
  readonly config_file: string | undefined;
  readonly policies: DerivedPolicies;
};

type Json = Record<string, unknown>;

function settingSchema(spec: SettingSpec): Json {
  switch (spec.type) {
    case 'integer':
      return { type: 'integer', ...(spec.minimum !== undefined && { minimum: spec.minimum }), ...(spec.maximum !== undefined && { maximum: spec.maximum }) };
    case 'number':
      return { type: 'number', ...(spec.minimum !== undefined && { minimum: spec.minimum }), ...(spec.maximum !== undefined && { maximum: spec.maximum }) };
    case 'string':
      return { type: 'string', minLength: 1 };
    case 'url':
      return { type: 'string', pattern: '^https?://[^\\s]+$' };
    case 'log-level':
      return { type: 'string', enum: [...LOG_LEVELS] };
    case 'log-format':
      return { type: 'string', enum: [...LOG_FORMATS] };
    case 'redis-failure-mode':
      return { type: 'string', enum: [...REDIS_FAILURE_MODES] };
    case 'string[]':
      return { type: 'array', items: { type: 'string', minLength: 1 } };
    case 'number[]':
      return { type: 'array', minItems: 1, items: { type: 'number', exclusiveMinimum: 0 } };
    case 'boolean':
      return { type: 'boolean' };
  }
}

/** The config file's JSON schema, derived from SETTINGS: nested objects, no unknown keys. */
export function buildSchema(): Json {
  const root: Json = { type: 'object', additionalProperties: false, properties: {} };
  for (const spec of SETTINGS) {
    const parts = spec.path.split('.');
    let node = root;
    for (const part of parts.slice(0, -1)) {
      const props = node.properties as Record<string, Json>;
      node = props[part] ??= { type: 'object', additionalProperties: false, properties: {} };
    }
    (node.properties as Record<string, Json>)[parts[parts.length - 1]!] = settingSchema(spec);
  }
  return root;
}

// Compiled once, at module load.
const ajv = new Ajv({ allErrors: true, strict: true, ...AJV_STARTUP_OPTIONS });
// A type guard: once the schema (which holds every constraint) passes, the merged object is Settings.
const validateConfig = ajv.compile<Settings>(buildSchema());

/** The object holding the setting at `path`, made (with its parents) when missing. */
function groupOf(obj: Json, path: readonly string[]): Json {
  let cur = obj;
  for (const part of path.slice(0, -1)) {
    const next = cur[part];
    cur = next !== null && typeof next === 'object' && !Array.isArray(next) ? (next as Json) : (cur[part] = {});
  }
  return cur;
}

function setPath(obj: Json, path: readonly string[], value: unknown): void {
  groupOf(obj, path)[path[path.length - 1]!] = value;
}

function deepFreeze<T>(value: T): T {
  if (value && typeof value === 'object') {
    for (const v of Object.values(value)) deepFreeze(v);
    Object.freeze(value);
  }
  return value;
}

/** Turns one environment value into the setting's type, or explains why it cannot. */
function coerceEnv(spec: SettingSpec, raw: string): { value: unknown } | { problem: string } {
  const shown = spec.secret ? '(secret, not shown)' : JSON.stringify(raw);
  switch (spec.type) {
    case 'integer':
      if (!/^-?\d+$/.test(raw.trim())) return { problem: `must be an integer, got ${shown}` };
      return { value: Number(raw.trim()) };
    case 'number':
      if (!/^\d+(\.\d+)?(e-?\d+)?$/i.test(raw.trim())) return { problem: `must be a number, got ${shown}` };
      return { value: Number(raw.trim()) };
    case 'string[]':
      return { value: raw.split(',').map((s) => s.trim()).filter((s) => s.length > 0) };
    case 'number[]': {
      const parts = raw.split(',').map((s) => s.trim()).filter((s) => s.length > 0);
      if (parts.some((p) => !/^\d+(\.\d+)?(e-?\d+)?$/i.test(p))) return { problem: `must be comma-separated numbers, got ${shown}` };
      return { value: parts.map(Number) };
    }
    case 'boolean': {
      const v = raw.trim().toLowerCase();
      if (v === 'true' || v === '1') return { value: true };
      if (v === 'false' || v === '0') return { value: false };
      return { problem: `must be true or false, got ${shown}` };
    }
    default:
      return { value: raw.trim() };
  }
}

export interface LoadConfigOptions {
  readonly env?: NodeJS.ProcessEnv;
  /** Read a file; injectable for tests. */
  readonly readFile?: (path: string) => string;
}

/**
 * Defaults <- config file (optional) <- environment, validated once. Throws a ConfigError that
 * lists every problem, each naming where the bad value came from (file:line:col or the variable).
 */
export function loadConfig(options: LoadConfigOptions = {}): SignalboxConfig {
  const env = options.env ?? process.env;
  const readFile = options.readFile ?? ((p: string) => readFileSync(p, 'utf8'));
  const problems: string[] = [];
  const merged: Json = {};
  /** Where each setting's value came from, for error messages. */
  const origin = new Map<string, string>();

  for (const spec of SETTINGS) {
    // A setting without a default still gets its group (`admin: {}` when ADMIN_KEY is unset), so code reads config.admin.key, not config.admin?.key.
    if (spec.default !== undefined) setPath(merged, spec.path.split('.'), Array.isArray(spec.default) ? [...spec.default] : spec.default);
    else groupOf(merged, spec.path.split('.'));
  }

  const explicitFile = nonEmpty(env[CONFIG_FILE_ENV]);
  const configFile = explicitFile ?? DEFAULT_CONFIG_FILE;
  let source: YamlSource | undefined;
  let fileRead = false;
  try {
    source = new YamlSource(configFile, readFile(configFile));
    fileRead = true;
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    // The default file is optional; a file the operator named explicitly must exist.
    if (explicitFile !== undefined || code !== 'ENOENT') {
      problems.push(`${CONFIG_FILE_ENV}=${configFile}: cannot read the config file (${code ?? (err as Error).message})`);
    }
  }

  if (source) {
    problems.push(...source.syntaxErrors);
    const data = source.data;
    if (source.syntaxErrors.length === 0 && data !== null && data !== undefined) {
      if (typeof data !== 'object' || Array.isArray(data)) {
        problems.push(`${source.where([])}: the config file must be a mapping of settings`);
      } else {
        mergeFile(merged, data as Json, [], source, origin);
      }
    }
  }

  for (const spec of SETTINGS) {
    const raw = nonEmpty(env[spec.env]);
    if (raw === undefined) continue;
    const coerced = coerceEnv(spec, raw);
    if ('problem' in coerced) {
      problems.push(`${spec.env} (${spec.path}): ${coerced.problem}`);
      continue;
    }
    setPath(merged, spec.path.split('.'), coerced.value);
    origin.set(spec.path, spec.env);
  }

  if (!validateConfig(merged)) {
    for (const error of validateConfig.errors ?? []) problems.push(describeSchemaError(error, source, origin));
    throw new ConfigError('invalid configuration', problems);
  }

  if (problems.length === 0) problems.push(...semanticProblems(merged, origin));
  if (problems.length > 0) throw new ConfigError('invalid configuration', problems);

  return deepFreeze({ ...merged, config_file: fileRead ? configFile : undefined, policies: derivePolicies(merged) });
}

/** Built once here, so no request compiles a header matcher or a status set. */
export function derivePolicies(settings: Settings): DerivedPolicies {
  return {
    retry: {
      maxAttempts: settings.retry.max_attempts,
      statuses: new Set(settings.retry.statuses),
      budgetMs: settings.retry.budget_ms,
      retryAfterCapMs: settings.retry.retry_after_cap_ms,
      onNetworkErrors: settings.retry.on_network_errors,
    },
    stripHeaders: new HeaderNameMatcher(settings.upstream.strip_headers),
  };
}

function nonEmpty(v: string | undefined): string | undefined {
  return v === undefined || v.trim() === '' ? undefined : v;
}

/** Copies file values over the defaults, recording each leaf's position. */
function mergeFile(target: Json, data: Json, path: string[], source: YamlSource, origin: Map<string, string>): void {
  for (const [key, value] of Object.entries(data)) {
    const here = [...path, key];
    const existing = target[key];
    if (value !== null && typeof value === 'object' && !Array.isArray(value) && existing !== null && typeof existing === 'object' && !Array.isArray(existing)) {
      mergeFile(existing as Json, value as Json, here, source, origin);
    } else {
      // null in YAML means "use the default"
      if (value === null) continue;
      target[key] = value;
      origin.set(here.join('.'), source.where(here));
    }
  }
}

function describeSchemaError(error: ErrorObject, source: YamlSource | undefined, origin: Map<string, string>): string {
  const path = pointerToPath(error.instancePath).map(String);
  if (error.keyword === 'additionalProperty' || error.keyword === 'additionalProperties') {
    const extra = String((error.params as { additionalProperty: string }).additionalProperty);
    const full = [...path, extra];
    const where = source ? source.where(full, { key: true }) : 'config';
    return `${where}: unknown setting "${full.join('.')}"`;
  }
  const dotted = path.join('.');
  const where = origin.get(dotted) ?? (source ? source.where(path) : 'config');
  const spec = SETTINGS.find((s) => s.path === dotted);
  const envHint = spec && where === spec.env ? '' : spec ? ` (env ${spec.env})` : '';
  let message = error.message ?? 'is invalid';
  if (error.keyword === 'pattern' && spec?.type === 'url') message = 'must be an http:// or https:// URL';
  if (error.keyword === 'enum') message = `must be one of: ${(error.params as { allowedValues: unknown[] }).allowedValues.join(', ')}`;
  return `${where}: ${dotted || '(root)'}${envHint} ${message}`;
}

function semanticProblems(config: Settings, origin: Map<string, string>): string[] {
  const problems: string[] = [];
  const baseUrl = config.upstream.base_url;
  try {
    const url = new URL(baseUrl);
    if (url.search || url.hash) problems.push(`${origin.get('upstream.base_url') ?? 'upstream.base_url'}: upstream.base_url must not have a query or fragment`);
  } catch {
    problems.push(`${origin.get('upstream.base_url') ?? 'upstream.base_url'}: upstream.base_url is not a valid URL`);
  }
  const host = config.server.host;
  if (host !== 'localhost' && isIP(host) === 0 && !/^[a-zA-Z0-9.-]+$/.test(host)) {
    problems.push(`${origin.get('server.host') ?? 'server.host'}: server.host must be an IP address or a host name`);
  }
  for (const name of ['duration_buckets_seconds', 'ttft_buckets_seconds', 'overhead_buckets_seconds'] as const) {
    const buckets = config.metrics[name];
    if (buckets.some((b, i) => i > 0 && b <= buckets[i - 1]!)) {
      problems.push(`${origin.get(`metrics.${name}`) ?? `metrics.${name}`}: metrics.${name} must be in increasing order`);
    }
  }
  const statuses = config.retry.statuses;
  if (statuses.some((st) => !Number.isInteger(st) || st < 400 || st > 599)) {
    problems.push(`${origin.get('retry.statuses') ?? 'retry.statuses'}: retry.statuses must be HTTP error statuses (400 to 599)`);
  }
  const badHeaders = config.upstream.strip_headers.filter((h) => !isHeaderPattern(h));
  if (badHeaders.length > 0) {
    problems.push(
      `${origin.get('upstream.strip_headers') ?? 'upstream.strip_headers'}: upstream.strip_headers has ${badHeaders.map((h) => JSON.stringify(h)).join(', ')}, ` +
        "which is not a header name (letters, digits and !#$%&'+-.^_`|~), optionally ending in * for a prefix",
    );
  }
  // Sent as header values on every upstream request: undici would refuse a bad one each time.
  for (const name of ['api_key', 'http_referer', 'app_title'] as const) {
    const value = config.upstream[name];
    if (typeof value === 'string' && !isFieldValue(value)) {
      // Not quoted: the API key is a secret.
      problems.push(`${origin.get(`upstream.${name}`) ?? `upstream.${name}`}: upstream.${name} must be ${FIELD_VALUE_RULE}`);
    }
  }
  const clientKeys = config.client_auth.keys;
  const apiKey = config.upstream.api_key;
  if (clientKeys.length > 0 && config.keys_file !== undefined) {
    // Two sources of keys: which one admits a request would be a surprise either way.
    problems.push(`${origin.get('keys_file') ?? 'keys_file'}: keys_file and client_auth.keys are both set: move the flat keys into the keys file (docs/keys-and-budgets.md)`);
  }
  if (config.keys_file !== undefined && apiKey === undefined) {
    problems.push(`${origin.get('keys_file') ?? 'keys_file'}: keys_file needs a server-side key (OPENROUTER_API_KEY): clients then present Signalbox keys, which must never be forwarded upstream`);
  }
  if (clientKeys.length > 0 && apiKey === undefined) {
    problems.push(
      `${origin.get('client_auth.keys') ?? 'client_auth.keys'}: client_auth.keys needs a server-side key (OPENROUTER_API_KEY): ` +
        'clients then present Signalbox keys, which must never be forwarded upstream',
    );
  }
  try {
    new Intl.DateTimeFormat('en-US', { timeZone: config.budget.timezone });
  } catch {
    problems.push(`${origin.get('budget.timezone') ?? 'budget.timezone'}: unknown time zone ${JSON.stringify(config.budget.timezone)} (an IANA name such as Europe/Paris)`);
  }
  const userSource = config.budget.user_source;
  if (userSource !== undefined && userSource !== 'body.user' && !/^header\.[A-Za-z0-9!#$%&'*+.^_`|~-]+$/.test(userSource)) {
    problems.push(`${origin.get('budget.user_source') ?? 'budget.user_source'}: budget.user_source must be body.user or header.<name>, got ${JSON.stringify(userSource)}`);
  }
  if (!/^[A-Za-z0-9_.-]{1,64}$/.test(config.shadow.account)) {
    problems.push(`${origin.get('shadow.account') ?? 'shadow.account'}: shadow.account must be 1 to 64 of A-Z a-z 0-9 _ . - (a spend account name, as key names), got ${JSON.stringify(config.shadow.account)}`);
  }
  const adminKey = config.admin.key;
  if (adminKey !== undefined && adminKey.length < 16) {
    // Not quoted: a secret.
    problems.push(`${origin.get('admin.key') ?? 'admin.key'}: admin.key must be at least 16 characters (signalbox keys new makes one)`);
  }
  const feedbackSecret = config.feedback.secret;
  if (feedbackSecret !== undefined && feedbackSecret.length < 32) {
    // Not quoted: a secret.
    problems.push(`${origin.get('feedback.secret') ?? 'feedback.secret'}: feedback.secret must be at least 32 characters (openssl rand -base64 32 makes one)`);
  }
  return problems;
}
