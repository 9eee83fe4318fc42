import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestContext } from 'node:test';
import { fileURLToPath } from 'node:url';
import { LogCapture, type LogRecord } from './harness.js';

/** Compiled to dist/test/support/: the repository root is three levels up. */
export const REPO_ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const MAIN = join(REPO_ROOT, 'dist', 'src', 'main.js');

export interface Exit {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
}

/** The real process, `node dist/src/main.js`. */
export interface MainProcess {
  readonly child: ChildProcess;
  /** Its stdout, as parsed pino lines. */
  readonly logs: LogCapture;
  /** Settles when the process has exited and its output is complete. */
  readonly exit: Promise<Exit>;
  stderr(): string;
  /** The first stdout line matching `predicate`; rejects if the process exits first. */
  waitForLog(predicate: (r: LogRecord) => boolean): Promise<LogRecord>;
}

/**
 * Spawns main.js (or another entry script and its arguments, `argv`) with exactly `env` (plus
 * PATH, nothing else inherited); killed after the test if still running.
 */
export function spawnMain(t: TestContext, env: Record<string, string>, argv: readonly string[] = [MAIN]): MainProcess {
  // The catalog is kept in DATA_DIR: a directory of the test's own, not ./data of the checkout.
  const dataDir = mkdtempSync(join(tmpdir(), 'signalbox-data-'));
  t.after(() => rmSync(dataDir, { recursive: true, force: true }));
  const child = spawn(process.execPath, argv, {
    cwd: REPO_ROOT,
    // No later cost lookups (GET /generation) unless a test asks: tests count what their upstream receives.
    env: { PATH: process.env.PATH ?? '', DATA_DIR: dataDir, GENERATION_COSTS: 'false', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  t.after(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  });
  const logs = new LogCapture();
  child.stdout!.pipe(logs);
  let stderr = '';
  child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString('utf8')));
  const exit = new Promise<Exit>((resolve) => child.once('close', (code, signal) => resolve({ code, signal })));
  return {
    child, logs, exit,
    stderr: () => stderr,
    waitForLog(predicate) {
      return Promise.race([
        logs.waitFor(predicate),
        exit.then((e) => {
          throw new Error(`signalbox exited (${e.code ?? e.signal}) first; stderr: ${stderr}`);
        }),
      ]);
    },
  };
}

/**
 * A config file of its own, with an empty rules file, so that neither the repository's
 * config/signalbox.yaml nor its example rules.yaml matter, and a catalog file (CATALOG_FILE), so
 * that no `GET /models` reaches the test's upstream. Removed after the test.
 */
export function tempConfigFile(t: TestContext): string {
  const dir = mkdtempSync(join(tmpdir(), 'signalbox-main-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const rules = join(dir, 'rules.yaml');
  writeFileSync(rules, 'version: 1\nrules: []\n');
  const file = join(dir, 'signalbox.yaml');
  const catalog = join(dir, 'catalog.json');
  writeFileSync(catalog, JSON.stringify({ data: [{ id: 'openai/gpt-4o-mini' }] }));
  writeFileSync(file, `rules_file: ${JSON.stringify(rules)}\ncatalog:\n  file: ${JSON.stringify(catalog)}\nlog:\n  level: info\n`);
  return file;
}

/** Starts main.js in front of `upstreamBaseUrl` on a free port; resolves with its origin once it is ready. */
export async function startMain(
  t: TestContext, upstreamBaseUrl: string, env: Record<string, string>, argv?: readonly string[],
): Promise<MainProcess & { origin: string }> {
  const main = spawnMain(t, {
    PORT: '0', HOST: '127.0.0.1', CONFIG_FILE: tempConfigFile(t),
    OPENROUTER_BASE_URL: upstreamBaseUrl, OPENROUTER_API_KEY: 'sk-or-test', ...env,
  }, argv);
  const ready = await main.waitForLog((r) => r.msg === 'signalbox ready');
  return { ...main, origin: new URL(String(ready.address)).origin };
}
