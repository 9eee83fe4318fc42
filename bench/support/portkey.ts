/**
 * The Portkey gateway (npm @portkey-ai/gateway, in bench/peers: its own package, which `npm run bench`
 * installs, so that the root `npm ci` does not) as a benchmark target, in front
 * of the fake OpenRouter: non-streaming chat completions only. Its streaming path fails on Node
 * (`TypeError: immutable` from its response-header handling, Portkey issues #1389 and #1550).
 *
 * Started as its own Node entry, as `npx @portkey-ai/gateway` would:
 *   node --import <loopback preload> bench/peers/node_modules/@portkey-ai/gateway/build/start-server.js --port=N --headless
 * `--headless` leaves out its web UI and log stream. It makes no network call of its own at start
 * or per request (no telemetry): it only calls the custom host a request names. It takes its port
 * from `--port=` only (PORT in the environment is not what it listens on) and binds every
 * interface; the preload makes it bind 127.0.0.1 instead, since with x-portkey-custom-host it
 * forwards to any address a caller names. Its output (a start-up banner, errors) goes to a file.
 */
import { readFileSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort, ROOT, startNode, type Child } from './processes.js';

/** The gateway's Node entry, resolved from bench/peers (scripts/bench-peers.mjs installs it there). */
function portkeyEntry(): string {
  try {
    return createRequire(join(ROOT, 'bench/peers/package.json')).resolve('@portkey-ai/gateway/build/start-server.js');
  } catch {
    throw new Error('portkey gateway: not installed in bench/peers; `npm run bench` installs it, or run `npm ci --prefix bench/peers --ignore-scripts`');
  }
}

/** Makes a `listen(port)` with no host (what @hono/node-server's serve() does) bind 127.0.0.1. */
const LOOPBACK_PRELOAD = `data:text/javascript,${encodeURIComponent(
  'import net from "node:net";' +
    'const listen = net.Server.prototype.listen;' +
    'net.Server.prototype.listen = function (...args) {' +
    '  if (typeof args[0] === "number" && args[1] === undefined) args[1] = "127.0.0.1";' +
    '  return listen.apply(this, args);' +
    '};',
)}`;

/**
 * Starts the Portkey gateway pinned to `cpu` (default 1, as the other proxies under test), forwarding
 * to `upstreamBaseUrl` (the fake's base URL, e.g. http://127.0.0.1:PORT/api/v1). Resolves once a
 * chat completion sent through it has come back 200 from the upstream, with its origin, the path
 * to POST to and the headers to send with each request (besides content-type and authorization,
 * which Portkey passes on to the upstream as the API key).
 */
export async function startPortkey(upstreamBaseUrl: string, cpu = 1): Promise<{ child: Child; origin: string; path: string; headers: Record<string, string> }> {
  const entry = portkeyEntry();
  const port = await freePort();
  const origin = `http://127.0.0.1:${port}`;
  const path = '/v1/chat/completions';
  // provider openai: the body goes on as it is to <custom host>/chat/completions, and the answer
  // comes back as it is (the openai provider adds nothing to a chat.completion).
  const headers = { 'x-portkey-provider': 'openai', 'x-portkey-custom-host': upstreamBaseUrl.replace(/\/+$/, '') };
  const logFile = join(tmpdir(), `portkey-bench-${port}.log`);
  // A minimal environment (startNode's): no HTTP(S)_PROXY, REDIS_CONNECTION_STRING or NODE_ENV from the shell.
  const { child: started } = await startNode(entry, {
    env: {}, outputFile: logFile, stderrToFile: true, cpu, nodeArgs: ['--import', LOOPBACK_PRELOAD], scriptArgs: [`--port=${port}`, '--headless'],
  });
  const proc = started.process;
  const child: Child = {
    process: proc,
    async stop() {
      await started.stop();
      rmSync(logFile, { force: true });
    },
  };
  const fail = async (why: string): Promise<never> => {
    let log = '';
    try {
      log = readFileSync(logFile, 'utf8').slice(-2000);
    } catch {
      // no log
    }
    await child.stop();
    throw new Error(`portkey gateway: ${why}${log ? `\n--- its output:\n${log}` : ''}`);
  };

  const deadline = Date.now() + 15_000;
  for (;;) {
    try {
      const res = await fetch(`${origin}/`);
      await res.arrayBuffer();
      if (res.status === 200) break;
    } catch {
      // not listening yet
    }
    if (proc.exitCode !== null || proc.signalCode !== null) return fail(`exited with ${proc.exitCode ?? proc.signalCode} before it was ready`);
    if (Date.now() > deadline) return fail('did not answer in 15 s');
    await new Promise((r) => setTimeout(r, 50));
  }

  // One request through to the upstream: wrong headers show here, not as a run of failed requests.
  try {
    const res = await fetch(`${origin}${path}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: 'Bearer bench', ...headers },
      body: JSON.stringify({ model: 'auto', messages: [{ role: 'user', content: 'hi' }] }),
    });
    const text = await res.text();
    if (res.status !== 200 || (JSON.parse(text) as { object?: unknown }).object !== 'chat.completion') return fail(`a chat completion through it answered ${res.status}: ${text.slice(0, 500)}`);
  } catch (err) {
    return fail(`a chat completion through it failed: ${(err as Error).message}`);
  }
  return { child, origin, path, headers };
}
