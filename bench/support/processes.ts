import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { closeSync, openSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

/** The repository root (bench files run from dist/bench/...). */
export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');

export interface Child {
  readonly process: ChildProcess;
  /** SIGTERM, and resolves when the process has exited. */
  stop(): Promise<void>;
}

/**
 * Starts `node <script>` with `env` (added to a minimal environment) and resolves once a stdout
 * line passes `ready`, returning what `ready` extracted (a URL, a port); at once with `timeoutMs` 0.
 * A child that fails to become ready is stopped.
 */
export async function startNode<T>(script: string, env: Record<string, string>, ready: (line: string) => T | undefined, timeoutMs = 15_000, stdoutFile?: string): Promise<{ child: Child; value: T | undefined }> {
  // With a ready line the parent reads stdout; otherwise it goes to a file, as a server's logs do.
  const stdout = stdoutFile === undefined ? 'pipe' : openSync(stdoutFile, 'w');
  const proc = spawn(process.execPath, [resolve(ROOT, script)], {
    cwd: ROOT,
    env: { PATH: process.env.PATH ?? '', ...env },
    stdio: ['ignore', stdout, 'inherit'],
  });
  if (typeof stdout === 'number') closeSync(stdout);
  const child: Child = {
    process: proc,
    async stop() {
      if (proc.exitCode !== null || proc.signalCode !== null) return;
      proc.kill('SIGTERM');
      await once(proc, 'exit');
    },
  };
  if (!proc.stdout) return { child, value: undefined };
  const lines = createInterface({ input: proc.stdout });
  // Keep draining stdout so the child never blocks on a full pipe.
  lines.on('line', () => {});
  if (timeoutMs === 0) return { child, value: undefined };
  try {
    const value = await new Promise<T>((resolvePromise, reject) => {
      const timer = setTimeout(() => reject(new Error(`${script} did not become ready in ${timeoutMs} ms`)), timeoutMs);
      lines.on('line', (line) => {
        const v = ready(line);
        if (v !== undefined) {
          clearTimeout(timer);
          resolvePromise(v);
        }
      });
      proc.once('exit', (code) => reject(new Error(`${script} exited with ${code} before it was ready`)));
    });
    return { child, value };
  } catch (err) {
    await child.stop();
    throw err;
  }
}

/** Starts the fake OpenRouter (quiet: no logs, no records); resolves with its base URL. */
export async function startFakeUpstream(): Promise<{ child: Child; baseUrl: string }> {
  const { child, value } = await startNode('dist/src/dev/fake-openrouter-cli.js', { FAKE_OPENROUTER_PORT: '0', FAKE_OPENROUTER_QUIET: '1' }, (line) => /OPENROUTER_BASE_URL=(\S+)/.exec(line)?.[1]);
  return { child, baseUrl: value! };
}

/** A port that was free a moment ago (the child binds it right after). */
async function freePort(): Promise<number> {
  const server = createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as AddressInfo;
  await new Promise((r) => server.close(r));
  return port;
}

/**
 * Starts Switchyard (dist/src/main.js) with `env`, its logs going to a file in the temp directory;
 * resolves with its origin once /readyz answers 200 (a log line cannot tell: one variant runs
 * with logs off).
 */
export async function startSwitchyard(env: Record<string, string>): Promise<{ child: Child; origin: string }> {
  const port = await freePort();
  const origin = `http://127.0.0.1:${port}`;
  const logFile = join(tmpdir(), `switchyard-bench-${port}.log`);
  const { child } = await startNode('dist/src/main.js', { PORT: String(port), CONFIG_FILE: resolve(ROOT, 'bench/support/empty-config.yaml'), ...env }, () => true, 0, logFile);
  const deadline = Date.now() + 15_000;
  for (;;) {
    try {
      const res = await fetch(`${origin}/readyz`);
      if (res.status === 200) break;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline || child.process.exitCode !== null) {
      await child.stop();
      throw new Error('switchyard did not become ready');
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  return { child, origin };
}
