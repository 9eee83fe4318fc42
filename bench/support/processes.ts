import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { closeSync, openSync, readFileSync, rmSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
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

/** Whether processes can be pinned to CPUs (util-linux's taskset, and more than one CPU). */
export const CAN_PIN = availableParallelism() > 1 && spawnSync('taskset', ['-c', '0', 'true']).status === 0;

/**
 * Pins the benchmark process (the load generator) and what it starts with `cpu: 0` to CPU 0, and
 * the proxies under test (`cpu: 1`) to CPU 1: the proxy then owns a core, so its throughput
 * follows its own CPU cost rather than the scheduler's mood on a 2-core machine.
 */
export function pinSelf(cpu: number): void {
  if (CAN_PIN) spawnSync('taskset', ['-cp', String(cpu), String(process.pid)]);
}

export interface NodeChildOptions<T> {
  /** Added to a minimal environment (PATH only). */
  readonly env: Record<string, string>;
  /** Extracts a value (a URL, a port) from a stdout line; startNode resolves with the first one. */
  readonly ready?: (line: string) => T | undefined;
  readonly timeoutMs?: number;
  /** Without `ready`, stdout goes to this file, as a server's logs do (stderr too, with `stderrToFile`). */
  readonly outputFile?: string;
  readonly stderrToFile?: boolean;
  /** Pinned to this CPU when pinning works (see pinSelf). */
  readonly cpu?: number;
  readonly nodeArgs?: readonly string[];
  /** The node binary; the one running the benchmark by default. */
  readonly execPath?: string;
  readonly scriptArgs?: readonly string[];
}

/**
 * Starts `node <script>` and resolves once a stdout line passes `ready`, with what it extracted;
 * without `ready`, at once. A child that fails to become ready is stopped.
 */
export async function startNode<T>(script: string, options: NodeChildOptions<T>): Promise<{ child: Child; value: T | undefined }> {
  const { env, ready, timeoutMs = 15_000, outputFile, cpu } = options;
  const out = ready === undefined && outputFile !== undefined ? openSync(outputFile, 'w') : 'pipe';
  const argv = [options.execPath ?? process.execPath, ...(options.nodeArgs ?? []), resolve(ROOT, script), ...(options.scriptArgs ?? [])];
  const [command, ...args] = cpu !== undefined && CAN_PIN ? ['taskset', '-c', String(cpu), ...argv] : argv;
  const proc = spawn(command!, args, {
    cwd: ROOT,
    env: { PATH: process.env.PATH ?? '', ...env },
    stdio: ['ignore', out, typeof out === 'number' && options.stderrToFile ? out : 'inherit'],
  });
  if (typeof out === 'number') closeSync(out);
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
  if (ready === undefined) return { child, value: undefined };
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

/**
 * Starts the fake OpenRouter (quiet: no logs, no records); resolves with its base URL. It also
 * serves `auto`, the model the benchmark clients ask for, which the floor and Portkey forward as is.
 */
export async function startFakeUpstream(): Promise<{ child: Child; baseUrl: string }> {
  const { child, value } = await startNode('dist/src/cli/signalbox.js', {
    scriptArgs: ['fake-openrouter', '--model', 'auto'],
    env: { FAKE_OPENROUTER_PORT: '0', FAKE_OPENROUTER_QUIET: '1' }, ready: (line) => /OPENROUTER_BASE_URL=(\S+)/.exec(line)?.[1], cpu: 0,
  });
  return { child, baseUrl: value! };
}

/** A port that was free a moment ago (the child binds it right after). */
export async function freePort(): Promise<number> {
  const server = createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as AddressInfo;
  await new Promise((r) => server.close(r));
  return port;
}

/**
 * Starts Signalbox (dist/src/main.js) with `env` (and `nodeArgs` before the script), its logs going to a file in the temp directory;
 * resolves with its origin once /readyz answers 200 (a log line cannot tell: one variant runs
 * with logs off).
 */
export async function startSignalbox(env: Record<string, string>, cpu = 1, nodeArgs: readonly string[] = []): Promise<{ child: Child; origin: string }> {
  const port = await freePort();
  const origin = `http://127.0.0.1:${port}`;
  // BENCH_LOG_FILE=/dev/null takes the filesystem out of a measurement.
  const logFile = process.env.BENCH_LOG_FILE ?? join(tmpdir(), `signalbox-bench-${port}.log`);
  const { child: started } = await startNode('dist/src/main.js', { env: { PORT: String(port), CONFIG_FILE: resolve(ROOT, 'bench/support/empty-config.yaml'), ...env }, outputFile: logFile, cpu, nodeArgs });
  // The log of a benchmark run is large and of no use afterwards.
  const child: Child = {
    process: started.process,
    async stop() {
      await started.stop();
      if (process.env.BENCH_LOG_FILE === undefined) rmSync(logFile, { force: true });
    },
  };
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
      throw new Error('signalbox did not become ready');
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  return { child, origin };
}

/** CPU time (user + system) a process has used so far, in microseconds, from /proc (Linux). */
export function processCpuMicros(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // Fields after the command name (which may contain spaces) start after the last ')'.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const ticks = Number(fields[11]) + Number(fields[12]); // utime, stime (fields 14 and 15)
  return (ticks * 1e6) / CLOCK_TICKS_PER_SECOND;
}

/** USER_HZ: 100 on every Linux architecture Node runs on (sysconf(_SC_CLK_TCK)). */
const CLOCK_TICKS_PER_SECOND = 100;
