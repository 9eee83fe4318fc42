import { resolve } from 'node:path';
import { Pool } from 'undici';
import { readRssBytes } from './memory.js';
import { ROOT, freePort, startNode } from './processes.js';

export interface ColdStart {
  /** From spawning `node <script>` to the end of its first successful chat completion, ms. */
  readonly ms: number;
  /** The process's resident memory right after that first request, bytes. */
  readonly rssBytes: number;
}

export interface ColdStartOptions {
  /** What to start (a script that listens on $PORT): Signalbox's dist/src/main.js by default. */
  readonly script?: string;
  /** The node binary: the running one by default (bench/support/node24.ts finds Node 24's). */
  readonly execPath?: string;
}

/**
 * Cold start as a user sees it: the time from spawning Signalbox (`env` as startSignalbox's), or
 * another `script` such as the floor, until a chat completion through it has come back 200, polled
 * every millisecond or so (a refused connection costs less than that on loopback). Then its idle
 * RSS, before any other traffic.
 */
export async function coldStart(env: Record<string, string>, request: { path: string; body: string; headers: Record<string, string> }, cpu = 1, options: ColdStartOptions = {}): Promise<ColdStart> {
  const port = await freePort();
  const origin = `http://127.0.0.1:${port}`;
  const started = process.hrtime.bigint();
  const { child } = await startNode(options.script ?? 'dist/src/main.js', {
    env: { PORT: String(port), CONFIG_FILE: resolve(ROOT, 'bench/support/empty-config.yaml'), ...env }, outputFile: '/dev/null', cpu, ...(options.execPath !== undefined && { execPath: options.execPath }),
  });
  const pool = new Pool(origin, { connections: 1, pipelining: 1, connect: { timeout: 1_000 } });
  try {
    const deadline = started + 15_000_000_000n;
    for (;;) {
      try {
        const res = await pool.request({ method: 'POST', path: request.path, headers: { 'content-type': 'application/json', authorization: 'Bearer bench', ...request.headers }, body: request.body });
        await res.body.dump();
        if (res.statusCode === 200) break;
      } catch {
        // not listening yet
      }
      if (process.hrtime.bigint() > deadline || child.process.exitCode !== null) throw new Error(`${options.script ?? 'signalbox'} did not answer within 15 s of its start`);
      await new Promise((r) => setTimeout(r, 1));
    }
    const ms = Number(process.hrtime.bigint() - started) / 1e6;
    return { ms, rssBytes: readRssBytes(child.process.pid!) };
  } finally {
    await pool.destroy();
    await child.stop();
  }
}
