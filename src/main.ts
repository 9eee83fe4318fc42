import { resolve } from 'node:path';
import type { Logger } from 'pino';
import type { SignalboxConfig } from './config/load.js';
import type { RulesReloader } from './rules-file/reloader.js';
import type { KeysReloader } from './accounts/keys-reloader.js';
import { enableCompileCache } from './compile-cache.js';

// First, before the modules below are compiled (see compile-cache.ts): hence the dynamic imports.
enableCompileCache();
const { ConfigError } = await import('./errors.js');
const { loadConfig } = await import('./config/load.js');
const { startRulesReloader } = await import('./rules-file/reloader.js');
const { startKeysReloader } = await import('./accounts/keys-reloader.js');
const { buildApp } = await import('./server/app.js');
const { CatalogRefresher } = await import('./catalog/refresher.js');
const { CatalogStore } = await import('./catalog/store.js');
const { createLogger, flushLogOnCrash, flushLogger } = await import('./server/logger.js');
const { gracefulShutdown } = await import('./server/shutdown.js');

function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(host);
}

/**
 * A URL for the log: credentials in it (`https://user:pass@host`) become `[redacted]`, so that a
 * base URL carrying a proxy or gateway password never reaches the log shipper.
 */
function withoutCredentials(url: string): string {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    return '(not a URL)';
  }
  if (parsed.username === '' && parsed.password === '') return url;
  return `${parsed.protocol}//[redacted]@${parsed.host}${parsed.pathname}`;
}

/** What the operator should know about the configuration; never a secret's value. */
function startupSummary(config: SignalboxConfig): Record<string, unknown> {
  return {
    config_file: config.config_file ?? null,
    upstream: withoutCredentials(config.upstream.base_url),
    auth_mode: config.upstream.api_key ? 'server-key' : 'pass-through',
    client_auth: config.keys_file !== undefined ? `keys file ${config.keys_file}` : config.client_auth.keys.length > 0 ? `${config.client_auth.keys.length} key(s), named key-1... by position` : 'off',
    rules_file: config.rules_file,
  };
}

async function main(): Promise<void> {
  let config: SignalboxConfig;
  let logger: Logger;
  try {
    config = loadConfig();
    logger = createLogger(config.log.level, undefined, config.log.format);
    flushLogOnCrash(logger);
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`signalbox: ${err.message}\n`);
      process.exit(1);
    }
    throw err;
  }

  const rulesFile = resolve(config.rules_file);
  let reloader: RulesReloader;
  try {
    reloader = startRulesReloader(rulesFile, logger, { debounceMs: config.rules_debounce_ms, pollIntervalMs: config.rules_poll_interval_ms });
  } catch (err) {
    // Same positioned messages as a refused reload; nothing starts on a broken rules file.
    if (err instanceof ConfigError) {
      process.stderr.write(`signalbox: ${err.message}\n`);
      process.exit(1);
    }
    throw err;
  }
  let keysReloader: KeysReloader | undefined;
  try {
    const watch = { debounceMs: config.rules_debounce_ms, pollIntervalMs: config.rules_poll_interval_ms };
    if (config.keys_file !== undefined) keysReloader = startKeysReloader(resolve(config.keys_file), logger, watch);
  } catch (err) {
    // Nothing starts on a broken keys file: serving without the keys would serve everyone.
    if (err instanceof ConfigError) {
      process.stderr.write(`signalbox: ${err.message}\n`);
      process.exit(1);
    }
    throw err;
  }
  const catalogFile = config.catalog.file;
  const catalogRefresher = new CatalogRefresher({
    source: catalogFile !== undefined
      ? { kind: 'file', path: resolve(catalogFile) }
      : { kind: 'upstream', baseUrl: config.upstream.base_url, authorization: config.upstream.api_key === undefined ? undefined : `Bearer ${config.upstream.api_key}` },
    store: catalogFile !== undefined ? undefined : new CatalogStore(resolve(config.data_dir)),
    refreshMs: config.catalog.refresh_ms,
    logger,
  });
  const { app, lifecycle } = await buildApp({ config, logger, rules: reloader.rules, catalog: catalogRefresher.catalog, keys: keysReloader?.keys });
  app.addHook('onClose', async () => reloader.close());
  app.addHook('onClose', async () => keysReloader?.close());
  app.addHook('onClose', async () => catalogRefresher.close());
  // Not awaited: a catalog that cannot be fetched or read never holds up start-up.
  void catalogRefresher.start();
  process.on('SIGHUP', () => {
    void reloader.reload('sighup');
    void keysReloader?.reload('sighup');
  });

  if (config.upstream.api_key && config.client_auth.keys.length === 0 && keysReloader === undefined && !isLoopback(config.server.host)) {
    logger.warn(
      { host: config.server.host },
      'OPENROUTER_API_KEY is set, client authentication is off (SIGNALBOX_API_KEYS) and HOST is not loopback: ' +
        'anyone who can reach this port spends on your key',
    );
  }

  let shuttingDown = false;
  const onSignal = (signal: NodeJS.Signals): void => {
    if (shuttingDown) return;
    shuttingDown = true;
    logger.info({ signal, inflight: lifecycle.inflightCount, grace_ms: config.server.shutdown_grace_ms }, 'shutting down');
    gracefulShutdown(app, lifecycle, config.server.shutdown_grace_ms).then(
      (result) => {
        logger.info({ terminated: result.terminated }, 'stopped');
        flushLogger(logger);
        process.exit(0);
      },
      (err: unknown) => {
        logger.error({ err }, 'shutdown failed');
        flushLogger(logger);
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);

  try {
    await app.listen({ host: config.server.host, port: config.server.port });
  } catch (err) {
    logger.fatal({ err }, 'cannot listen');
    flushLogger(logger);
    process.exit(1);
  }
  lifecycle.markReady();
  const address = app.server.address();
  const port = typeof address === 'object' && address ? address.port : config.server.port;
  logger.info(
    { ...startupSummary(config), rules_hash: reloader.rules.current.hash, rules: reloader.rules.current.rules.length, address: `http://${config.server.host}:${port}/v1` },
    'signalbox ready',
  );
}

void main();
