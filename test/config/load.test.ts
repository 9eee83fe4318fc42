import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { test } from 'node:test';
import { loadConfig, type SignalboxConfig } from '../../src/config/load.js';
import { CONFIG_FILE_ENV, DEFAULT_CONFIG_FILE, SETTINGS } from '../../src/config/settings.js';
import { ConfigError } from '../../src/errors.js';

const FILE = 'test-signalbox.yaml';

interface Loaded {
  readonly config: SignalboxConfig;
  /** Every path loadConfig asked to read. */
  readonly reads: string[];
}

/** loadConfig with only `files` on disk (path -> text); every other path is ENOENT. */
function load(env: Record<string, string> = {}, files: Record<string, string> = {}): Loaded {
  const reads: string[] = [];
  const config = loadConfig({
    env,
    readFile: (path) => {
      reads.push(path);
      const text = files[path];
      if (text === undefined) throw Object.assign(new Error(`ENOENT: no such file, open '${path}'`), { code: 'ENOENT' });
      return text;
    },
  });
  return { config, reads };
}

/** `FILE` with `yaml` in it, chosen by CONFIG_FILE. */
function loadFile(yaml: string, env: Record<string, string> = {}): SignalboxConfig {
  return load({ [CONFIG_FILE_ENV]: FILE, ...env }, { [FILE]: yaml }).config;
}

function configError(fn: () => unknown): ConfigError {
  try {
    fn();
  } catch (err) {
    assert.ok(err instanceof ConfigError, `expected a ConfigError, got ${String(err)}`);
    return err;
  }
  assert.fail('expected a ConfigError');
}

/** `line:col` (1-based) of the first (or last) occurrence of `needle` in `text`, found independently of the YAML parser. */
function positionOf(text: string, needle: string, last = false): string {
  const index = last ? text.lastIndexOf(needle) : text.indexOf(needle);
  assert.notEqual(index, -1, `${needle} not in the YAML`);
  const before = text.slice(0, index).split('\n');
  return `${before.length}:${before[before.length - 1]!.length + 1}`;
}

/** The one problem that starts with `prefix`. */
function problemAt(err: ConfigError, prefix: string): string {
  const matches = err.problems.filter((p) => p.startsWith(prefix));
  assert.equal(matches.length, 1, `one problem starting with ${prefix} in ${JSON.stringify(err.problems)}`);
  assert.ok(err.message.includes(matches[0]!), 'the message lists the problem');
  return matches[0]!;
}

function assertDeepFrozen(value: unknown, path = 'config'): void {
  if (value === null || typeof value !== 'object') return;
  assert.ok(Object.isFrozen(value), `${path} is frozen`);
  for (const [key, v] of Object.entries(value)) assertDeepFrozen(v, `${path}.${key}`);
}

test('defaults apply when nothing is set', () => {
  const { config } = load();
  assert.equal(config.server.port, 8080);
  assert.equal(config.server.host, '127.0.0.1');
  assert.equal(config.server.body_limit_bytes, 20 * 1024 * 1024);
  assert.equal(config.upstream.base_url, 'https://openrouter.ai/api/v1');
  assert.equal(config.upstream.api_key, undefined);
  assert.equal(config.upstream.http_referer, undefined);
  assert.equal(config.upstream.app_title, undefined);
  assert.deepEqual(config.client_auth.keys, []);
  assert.equal(config.rules_file, './rules.yaml');
  assert.equal(config.log.level, 'info');
  assert.equal(config.config_file, undefined);
  // A group whose only setting has no default (admin: ADMIN_KEY) is still there, empty.
  assert.equal(config.admin.key, undefined);
});

test('the config is deeply frozen', () => {
  const { config } = load();
  assertDeepFrozen(config);
  assert.throws(() => {
    (config.server as { port: number }).port = 1;
  }, TypeError);
  assert.throws(() => {
    (config.client_auth.keys as string[]).push('x');
  }, TypeError);
});

test('the retry policy and the strip-header matcher are built once at load, from the settings, and frozen', () => {
  const { config } = load({ RETRY_STATUSES: '429,503', RETRY_MAX_ATTEMPTS: '4', STRIP_HEADERS: 'x-team,x-internal-*' });
  const { retry, stripHeaders } = config.policies;
  assert.deepEqual([...retry.statuses], [429, 503]);
  assert.equal(retry.maxAttempts, 4);
  assert.equal(retry.budgetMs, config.retry.budget_ms);
  assert.equal(retry.retryAfterCapMs, config.retry.retry_after_cap_ms);
  assert.equal(retry.onNetworkErrors, config.retry.on_network_errors);
  assert.ok(stripHeaders.matches('x-team') && stripHeaders.matches('x-internal-id') && !stripHeaders.matches('x-user-tier'));
  assert.ok(Object.isFrozen(config.policies) && Object.isFrozen(retry) && Object.isFrozen(stripHeaders));
  // The same objects for every reader: nothing is rebuilt per request.
  assert.equal(config.policies.retry, retry);
});

test('the config type is computed from SETTINGS: paths, value types and unset defaults', () => {
  const { config } = load();
  // Compile-time checks (npm run typecheck / the build fail if the derivation drifts).
  const port: number = config.server.port;
  const statuses: readonly number[] = config.retry.statuses;
  const level: 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent' = config.log.level;
  // @ts-expect-error: no default, so it may be unset
  const apiKey: string = config.upstream.api_key;
  // @ts-expect-error: not a setting
  void config.server.no_such_setting;
  assert.deepEqual([port, statuses.length, level, apiKey], [8080, 5, 'info', undefined]);
});

test('each environment variable overrides its default', () => {
  const { config } = load({
    PORT: '9090',
    HOST: '0.0.0.0',
    OPENROUTER_BASE_URL: 'http://localhost:9999/api/v1',
    OPENROUTER_API_KEY: 'sk-or-env',
    RULES_FILE: '/etc/signalbox/rules.yaml',
    LOG_LEVEL: 'debug',
  });
  assert.equal(config.server.port, 9090);
  assert.equal(config.server.host, '0.0.0.0');
  assert.equal(config.upstream.base_url, 'http://localhost:9999/api/v1');
  assert.equal(config.upstream.api_key, 'sk-or-env');
  assert.equal(config.rules_file, '/etc/signalbox/rules.yaml');
  assert.equal(config.log.level, 'debug');
});

test('SIGNALBOX_API_KEYS is a comma-separated list', () => {
  const { config } = load({ OPENROUTER_API_KEY: 'sk-or-env', SIGNALBOX_API_KEYS: ' sy-a , sy-b,,' });
  assert.deepEqual(config.client_auth.keys, ['sy-a', 'sy-b']);
});

test('the environment overrides the file, the file overrides the defaults', () => {
  const config = loadFile('server:\n  port: 7000\n  host: 0.0.0.0\nlog:\n  level: warn\n', { PORT: '9090' });
  assert.equal(config.server.port, 9090);
  assert.equal(config.server.host, '0.0.0.0');
  assert.equal(config.log.level, 'warn');
  assert.equal(config.rules_file, './rules.yaml');
});

test('an empty environment value counts as unset', () => {
  const config = loadFile('server:\n  port: 7000\n', { PORT: '', HOST: '  ', OPENROUTER_API_KEY: '', LOG_LEVEL: '' });
  assert.equal(config.server.port, 7000);
  assert.equal(config.server.host, '127.0.0.1');
  assert.equal(config.upstream.api_key, undefined);
  assert.equal(config.log.level, 'info');
});

test('CONFIG_FILE picks the file that is read', () => {
  const { config, reads } = load({ [CONFIG_FILE_ENV]: '/etc/signalbox/custom.yaml' }, { '/etc/signalbox/custom.yaml': 'server:\n  port: 7123\n' });
  assert.deepEqual(reads, ['/etc/signalbox/custom.yaml']);
  assert.equal(config.server.port, 7123);
  assert.equal(config.config_file, '/etc/signalbox/custom.yaml');
});

test('the default file is read when CONFIG_FILE is not set', () => {
  const { config, reads } = load({}, { [DEFAULT_CONFIG_FILE]: 'server:\n  port: 7456\n' });
  assert.deepEqual(reads, [DEFAULT_CONFIG_FILE]);
  assert.equal(config.server.port, 7456);
  assert.equal(config.config_file, DEFAULT_CONFIG_FILE);
});

test('a missing default file is fine', () => {
  const { config, reads } = load();
  assert.deepEqual(reads, [DEFAULT_CONFIG_FILE]);
  assert.equal(config.config_file, undefined);
});

test('a missing explicit CONFIG_FILE is an error', () => {
  const err = configError(() => load({ [CONFIG_FILE_ENV]: '/nowhere/signalbox.yaml' }));
  assert.equal(err.problems.length, 1);
  const problem = problemAt(err, `${CONFIG_FILE_ENV}=/nowhere/signalbox.yaml`);
  assert.match(problem, /ENOENT/);
});

test('one ConfigError lists every problem, each naming its origin', () => {
  const yaml = 'server:\n  port: 99999\n  bogus: true\nupstream:\n  idle_timeout_ms: -5\n';
  const err = configError(() => loadFile(yaml, { PORT: 'abc', LOG_LEVEL: 'loud' }));
  assert.equal(err.problems.length, 5, JSON.stringify(err.problems));
  assert.match(problemAt(err, `${FILE}:${positionOf(yaml, '99999')}:`), /server\.port.*65535/);
  assert.match(problemAt(err, `${FILE}:${positionOf(yaml, 'bogus')}:`), /unknown setting "server\.bogus"/);
  assert.match(problemAt(err, `${FILE}:${positionOf(yaml, '-5')}:`), /upstream\.idle_timeout_ms.*>= 1/);
  assert.match(problemAt(err, 'PORT'), /integer.*"abc"/);
  assert.match(problemAt(err, 'LOG_LEVEL'), /log\.level.*one of/);
});

test('a YAML syntax error is positioned', () => {
  const yaml = 'server:\n  port: 8080\n  host: a: b\n';
  const err = configError(() => loadFile(yaml));
  assert.equal(err.problems.length, 1, JSON.stringify(err.problems));
  problemAt(err, `${FILE}:${positionOf(yaml, 'a: b')}:`);
});

test('a duplicate key is an error at the second occurrence', () => {
  const yaml = 'server:\n  port: 8080\n  port: 9090\n';
  const err = configError(() => loadFile(yaml));
  assert.equal(err.problems.length, 1, JSON.stringify(err.problems));
  assert.match(problemAt(err, `${FILE}:${positionOf(yaml, 'port', true)}:`), /unique/i);
});

test('KEYS_FILE needs OPENROUTER_API_KEY, and cannot be set with SIGNALBOX_API_KEYS', () => {
  assert.match(problemAt(configError(() => load({ KEYS_FILE: 'keys.yaml' })), 'KEYS_FILE'), /OPENROUTER_API_KEY/);
  const both = configError(() => load({ OPENROUTER_API_KEY: 'sk-or-env', KEYS_FILE: 'keys.yaml', SIGNALBOX_API_KEYS: 'sy-TOPSECRET-1' }));
  assert.match(problemAt(both, 'KEYS_FILE'), /both set/);
  assert.equal(both.message.includes('TOPSECRET'), false);
  assert.equal(load({ OPENROUTER_API_KEY: 'sk-or-env', KEYS_FILE: 'keys.yaml' }).config.keys_file, 'keys.yaml');
});

test('SIGNALBOX_API_KEYS without OPENROUTER_API_KEY is an error that does not show the keys', () => {
  const err = configError(() => load({ SIGNALBOX_API_KEYS: 'sy-TOPSECRET-1' }));
  assert.equal(err.problems.length, 1, JSON.stringify(err.problems));
  assert.match(problemAt(err, 'SIGNALBOX_API_KEYS'), /OPENROUTER_API_KEY/);
  assert.equal(err.message.includes('TOPSECRET'), false, err.message);
});

test('a secret never appears in an error message', () => {
  const err = configError(() =>
    load({ OPENROUTER_API_KEY: 'sk-or-TOPSECRET-2', SIGNALBOX_API_KEYS: 'sy-TOPSECRET-3', PORT: 'abc', LOG_LEVEL: 'loud' }),
  );
  assert.equal(err.problems.length, 2, JSON.stringify(err.problems));
  assert.equal(err.message.includes('TOPSECRET'), false, err.message);
});

test('a secret in the config file is not shown when it is invalid', () => {
  const yaml = 'upstream:\n  api_key: 987654321987\n';
  const err = configError(() => loadFile(yaml));
  problemAt(err, `${FILE}:${positionOf(yaml, '987654321987')}:`);
  assert.equal(err.message.includes('987654321987'), false, err.message);
});

test("the repository's config/signalbox.yaml loads and shows the defaults", () => {
  const config = loadConfig({ env: {}, readFile: (p) => readFileSync(p, 'utf8') });
  assert.equal(config.config_file, DEFAULT_CONFIG_FILE);
  assert.deepEqual({ ...config, config_file: undefined }, load().config);
});

test('README.md names the environment variable of every setting', () => {
  assert.ok(existsSync('README.md'), 'README.md is missing');
  const readme = readFileSync('README.md', 'utf8');
  const missing = [...SETTINGS.map((spec) => spec.env), CONFIG_FILE_ENV].filter((env) => !new RegExp(`\\b${env}\\b`).test(readme));
  assert.deepEqual(missing, [], `README.md does not mention ${missing.join(', ')}`);
});

test('STRIP_HEADERS defaults to x-signalbox-* and is a comma-separated list of names and prefixes', () => {
  assert.deepEqual(load().config.upstream.strip_headers, ['x-signalbox-*']);
  const { config } = load({ STRIP_HEADERS: ' x-signalbox-* , X-User-Tier,,x-team' });
  assert.deepEqual(config.upstream.strip_headers, ['x-signalbox-*', 'X-User-Tier', 'x-team']);
  assert.deepEqual(loadFile('upstream:\n  strip_headers: [x-user-tier, "x-org-*"]\n').upstream.strip_headers, ['x-user-tier', 'x-org-*']);
});

test('STRIP_HEADERS entries that are not header names are refused at load, each named', () => {
  const err = configError(() => load({ STRIP_HEADERS: 'x-ok, x user, *, x-*-y, x-tier:' }));
  const problem = problemAt(err, 'STRIP_HEADERS:');
  for (const bad of ['"x user"', '"*"', '"x-*-y"', '"x-tier:"']) assert.ok(problem.includes(bad), `${bad} in ${problem}`);
  assert.equal(problem.includes('"x-ok"'), false, problem);
  assert.match(problem, /not a header name/);

  const yaml = 'upstream:\n  strip_headers: ["x-user tier"]\n';
  problemAt(configError(() => loadFile(yaml)), `${FILE}:${positionOf(yaml, '["x-user tier"]')}:`);
});

test('a YAML alias bomb in the config file is a positioned ConfigError, not a thrown ReferenceError', () => {
  const yaml = 'a: &a [x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]\nc: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]\nd: [*c, *c, *c, *c, *c, *c, *c, *c, *c]\n';
  const err = configError(() => loadFile(yaml));
  assert.equal(err.problems.length, 1, JSON.stringify(err.problems));
  problemAt(err, `${FILE}:${positionOf(yaml, '*a')}: Excessive alias count`);
});

test('header values from config with a line break or a control character are refused at load, positioned, the value never printed', () => {
  const err = configError(() => load({ OPENROUTER_APP_TITLE: 'Signalbox\nx-injected: 1', OPENROUTER_API_KEY: 'sk-or-secret\r\nx-also: 1' }));
  assert.match(problemAt(err, 'OPENROUTER_APP_TITLE:'), /upstream\.app_title must be visible ASCII/);
  assert.match(problemAt(err, 'OPENROUTER_API_KEY:'), /upstream\.api_key must be visible ASCII/);
  assert.equal(err.message.includes('sk-or-secret'), false, err.message);
  assert.equal(err.message.includes('x-injected'), false, err.message);

  const yaml = 'upstream:\n  http_referer: "https://example.test/\\u0000"\n';
  problemAt(configError(() => loadFile(yaml)), `${FILE}:${positionOf(yaml, '"https://example.test/')}:`);
  assert.equal(loadFile('upstream:\n  app_title: "My app\\tv2"\n').upstream.app_title, 'My app\tv2');
});

test('a settings group whose settings all default to unset exists: without ADMIN_KEY, config.admin.key is undefined', () => {
  const config = loadConfig({ env: {}, readFile: () => { throw Object.assign(new Error('none'), { code: 'ENOENT' }); } });
  assert.deepEqual(config.admin, {});
  assert.equal(loadConfig({ env: { ADMIN_KEY: 'sk-sb-admin-0123456789' }, readFile: () => { throw Object.assign(new Error('none'), { code: 'ENOENT' }); } }).admin.key, 'sk-sb-admin-0123456789');
});

test('FEEDBACK_SECRET shorter than 32 characters is refused without being printed; unset, feedback is off', () => {
  const err = configError(() => load({ FEEDBACK_SECRET: 'short-feedback-SECRET' }));
  assert.match(problemAt(err, 'FEEDBACK_SECRET'), /at least 32 characters/);
  assert.equal(err.message.includes('short-feedback-SECRET'), false, err.message);
  const secret = 'f'.repeat(32);
  assert.equal(load({ FEEDBACK_SECRET: secret }).config.feedback.secret, secret);
  const { config } = load();
  assert.equal(config.feedback.secret, undefined);
  assert.deepEqual(config.feedback.labels, ['good', 'bad']);
  assert.equal(config.feedback.token_ttl_ms, 7 * 86_400_000);
});
