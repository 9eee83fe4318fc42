/**
 * Memory per open stream: a proxy's RSS with many slow streams open, against its RSS before.
 *
 * The streams are the fake upstream's slow streams (`x-fake-fault: {"type":"slow-stream","ms":...}`),
 * read by the raw client of streaming.ts. With the fake's defaults a stream is 2 comments and 14
 * data events, one every `intervalMs`: the first data frame comes ~2 intervals after the request,
 * the body ends ~16 intervals after it. Pick `intervalMs` so that opening every stream plus 2
 * intervals fits well within 16 (1000 ms does for 5,000 streams on loopback).
 *
 * Reading the figures: RSS moves with V8's heap sizing, not only with what the streams hold. The
 * first load a fresh Node process sees grows its young generation to the maximum (semi-spaces of
 * 16 MiB: some 20-30 MiB at once), which is most of `perStreamBytes` at 1,000 streams on a fresh
 * process; a process whose heap an earlier load has grown shows less, and a major GC during the
 * ramp can even make it negative. `marginalPerStreamBytes` (the slope over the batches) is the
 * steadier per-stream cost; compare targets measured the same way, in the same order.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, readdirSync, readlinkSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import { ROOT } from './processes.js';
import { Clock, RawSseStream, STREAM_BODY, closeAll, rawRequest, streamHeaders, type RawStreamHooks } from './streaming.js';

export interface StreamMemoryOptions {
  readonly streams: number;
  /** The upstream's gap between events (the fake's slow-stream `ms`); 1000 by default. */
  readonly intervalMs?: number;
  readonly headers?: Record<string, string>;
  readonly body?: string;
  /**
   * Connections are opened this many at a time, each batch waiting until every one of its streams
   * has its first body byte (the upstream's first comment, sent at once), so that a burst never
   * overflows a listen backlog (Node's default: 511). Default 500.
   */
  readonly batch?: number;
  /** Overall limit for opening the streams and waiting for their first data frames; default 120 s. */
  readonly timeoutMs?: number;
  /**
   * Before the idle reading, wait (up to `timeoutMs`, default 30 s) until the proxy holds at most
   * `maxSockets` sockets (default 16) and used under 1 ms of CPU in the last 100 ms: the streams of
   * an earlier measurement are torn down and its pooled upstream connections closed (the fake's
   * keep-alive timeout is 5 s), so that every stream measured pays for its own two connections.
   * `false`: read at once.
   */
  readonly quiet?: { readonly maxSockets?: number; readonly timeoutMs?: number } | false;
  /**
   * Reads the proxy's V8 used heap after a forced full GC (see heapProbe), right after the idle
   * RSS reading and again after the loaded one; the RSS readings come first, so they are as before.
   */
  readonly readHeap?: () => Promise<number>;
}

export interface StreamMemory {
  /** The proxy's VmRSS before the streams were opened. */
  readonly idleRssBytes: number;
  /** Its VmRSS with every stream open and past its first data frame. */
  readonly loadedRssBytes: number;
  /** (loaded - idle) / opened. */
  readonly perStreamBytes: number;
  /** Sockets the proxy held at the idle reading, and whether it was quiet then (see `quiet`). */
  readonly idleSockets: number;
  readonly quiet: boolean;
  /** Streams open (first data frame received, body not ended) when the loaded RSS was read. */
  readonly opened: number;
  /** First request to the last first data frame, ms. */
  readonly openMs: number;
  /**
   * The proxy's VmRSS after each batch had its first bytes (streams open so far), then the loaded
   * reading: RSS against open streams, whose slope is the cost of one more stream, less sensitive
   * to the one-time growth (V8's young generation, pools) that the first streams pay.
   */
  readonly samples: { readonly streams: number; readonly rssBytes: number }[];
  /** Least-squares slope of `samples` (bytes per stream); NaN with fewer than two batches. */
  readonly marginalPerStreamBytes: number;
  /** With `readHeap`: used heap after a forced GC, idle and loaded, and (loaded - idle) / opened. */
  readonly idleHeapBytes?: number;
  readonly loadedHeapBytes?: number;
  readonly heapPerStreamBytes?: number;
}

/** VmRSS of a process, in bytes, from /proc/<pid>/status (Linux). */
export function readRssBytes(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const m = /^VmRSS:\s+(\d+)\s+kB/m.exec(status);
  if (!m) throw new Error(`no VmRSS for pid ${pid}`);
  return Number(m[1]) * 1024;
}

/** Sockets a process holds open (file descriptors that are sockets), from /proc/<pid>/fd (Linux). */
export function countSockets(pid: number): number {
  let n = 0;
  for (const fd of readdirSync(`/proc/${pid}/fd`)) {
    try {
      if (readlinkSync(`/proc/${pid}/fd/${fd}`).startsWith('socket:')) n++;
    } catch {
      // closed meanwhile
    }
  }
  return n;
}

/** CPU time (user + system) of a process so far, in ms, from /proc/<pid>/stat (Linux, USER_HZ 100). */
function cpuMs(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) * 10;
}

/**
 * Resolves once the process holds at most `maxSockets` sockets and used no CPU over a 100 ms poll,
 * polling every 100 ms; false when `timeoutMs` passed first.
 */
export async function waitForQuiet(pid: number, opts: { maxSockets?: number; timeoutMs?: number } = {}): Promise<boolean> {
  const maxSockets = opts.maxSockets ?? 16;
  const deadline = Date.now() + (opts.timeoutMs ?? 30_000);
  let cpu = cpuMs(pid);
  for (;;) {
    await sleep(100);
    const now = cpuMs(pid);
    // USER_HZ ticks are 10 ms: "no tick in 100 ms" is under ~1 ms of CPU on average.
    if (now === cpu && countSockets(pid) <= maxSockets) return true;
    if (Date.now() > deadline) return false;
    cpu = now;
  }
}

/** The soft and hard RLIMIT_NOFILE of a process, from /proc/<pid>/limits (Infinity: unlimited). */
export function fdLimit(pid: number): { soft: number; hard: number } {
  const limits = readFileSync(`/proc/${pid}/limits`, 'utf8');
  const m = /^Max open files\s+(\S+)\s+(\S+)/m.exec(limits);
  const value = (s: string | undefined): number => (s === undefined || s === 'unlimited' ? Infinity : Number(s));
  return { soft: value(m?.[1]), hard: value(m?.[2]) };
}

/**
 * Raises the open-files limit (soft, and hard when lower) of a running process to at least `n`,
 * with util-linux's prlimit (raising a hard limit needs root or CAP_SYS_RESOURCE). Never lowers
 * either limit. False when it could not (not permitted, no prlimit, no such process).
 */
export function raiseFdLimit(pid: number, n: number): boolean {
  let current: { soft: number; hard: number };
  try {
    current = fdLimit(pid);
  } catch {
    return false;
  }
  if (current.soft >= n) return true;
  const hard = current.hard >= n ? (current.hard === Infinity ? 'unlimited' : String(current.hard)) : String(n);
  const result = spawnSync('prlimit', ['--pid', String(pid), `--nofile=${n}:${hard}`], { stdio: 'ignore' });
  if (result.status !== 0) return false;
  try {
    return fdLimit(pid).soft >= n;
  } catch {
    return false;
  }
}

/**
 * Opens `streams` concurrent slow streams through the proxy at `origin` (process `pid`), reads its
 * RSS once every stream has received its first data frame, then closes every connection (and
 * waits until they are closed). Throws when a stream fails or ends before the measurement, or on
 * timeout; the connections are closed either way.
 */
export async function measureStreamMemory(origin: string, path: string, pid: number, opts: StreamMemoryOptions): Promise<StreamMemory> {
  const { hostname, port } = new URL(origin);
  const intervalMs = opts.intervalMs ?? 1000;
  const batch = Math.max(1, opts.batch ?? 500);
  const timeoutMs = opts.timeoutMs ?? 120_000;
  const request = rawRequest(origin, path, streamHeaders(intervalMs, false, opts.headers), opts.body ?? STREAM_BODY);
  const clock = new Clock();
  const streams: RawSseStream[] = [];

  let firstBytes = 0;
  let firstFrames = 0;
  let failure: string | undefined;
  /** Called on every event that may end a wait. */
  let wake: () => void = () => {};
  const hooks: RawStreamHooks = {
    onFirstByte() {
      firstBytes++;
      wake();
    },
    onFirstFrame() {
      firstFrames++;
      wake();
    },
    onSettled(stream) {
      // Any stream that is over before the measurement spoils it.
      failure ??= stream.error ?? `a stream ended before the measurement (intervalMs ${intervalMs} too short)`;
      wake();
    },
  };
  /** Resolves when `done()` holds; rejects on a failed stream or the overall deadline. */
  const until = (done: () => boolean, what: string): Promise<void> => new Promise((resolve, reject) => {
    const check = (): void => {
      if (failure !== undefined) reject(new Error(`${what}: ${failure}`));
      else if (done()) resolve();
      else if (Date.now() > deadline) reject(new Error(`${what}: timeout after ${timeoutMs} ms (${firstBytes} first bytes, ${firstFrames} first frames of ${opts.streams})`));
    };
    wake = check;
    check();
  });
  let deadline = Infinity;
  let timer: NodeJS.Timeout | undefined;

  try {
    const quiet = opts.quiet === false ? true : await waitForQuiet(pid, opts.quiet ?? {});
    const idleSockets = countSockets(pid);
    const idleRssBytes = readRssBytes(pid);
    const idleHeapBytes = await opts.readHeap?.();
    deadline = Date.now() + timeoutMs;
    // The deadline is also checked by a timer, for when no event comes at all.
    timer = setTimeout(() => wake(), timeoutMs + 10);
    const samples: { streams: number; rssBytes: number }[] = [];
    const started = clock.now();
    for (let opened = 0; opened < opts.streams;) {
      const n = Math.min(batch, opts.streams - opened);
      for (let i = 0; i < n; i++) {
        const stream = new RawSseStream(hostname, Number(port), request, clock, undefined, hooks);
        streams.push(stream);
        stream.start();
      }
      opened += n;
      await until(() => firstBytes === opened, `opening streams ${opened - n + 1}-${opened}`);
      if (opened < opts.streams) samples.push({ streams: opened, rssBytes: readRssBytes(pid) });
    }
    await until(() => firstFrames === opts.streams, 'waiting for every first data frame');
    const loadedRssBytes = readRssBytes(pid);
    const openMs = (clock.now() - started) / 1e6;
    const opened = streams.filter((s) => s.firstFrameAt >= 0 && !s.ended && s.error === undefined).length;
    samples.push({ streams: opened, rssBytes: loadedRssBytes });
    const loadedHeapBytes = idleHeapBytes === undefined ? undefined : await opts.readHeap!();
    const heap = idleHeapBytes === undefined || loadedHeapBytes === undefined ? {} : { idleHeapBytes, loadedHeapBytes, heapPerStreamBytes: (loadedHeapBytes - idleHeapBytes) / opened };
    return {
      ...heap, idleRssBytes, loadedRssBytes, perStreamBytes: (loadedRssBytes - idleRssBytes) / opened, idleSockets, quiet, opened, openMs,
      samples, marginalPerStreamBytes: slope(samples.map((x) => x.streams), samples.map((x) => x.rssBytes)),
    };
  } finally {
    clearTimeout(timer);
    wake = () => {};
    await closeAll(streams);
  }
}

/** Loads bench/support/heap-probe.mjs (both of these go to a child's `node` command line and environment). */
export function heapProbe(name: string): { nodeArgs: string[]; env: { BENCH_HEAP_FILE: string }; read: (pid: number) => Promise<number> } {
  const file = join(tmpdir(), `signalbox-bench-heap-${process.pid}-${name}`);
  return {
    nodeArgs: ['--expose-gc', '--import', pathToFileURL(resolve(ROOT, 'bench/support/heap-probe.mjs')).href],
    env: { BENCH_HEAP_FILE: file },
    /** Signals the probe and waits (10 s at most) for the number it writes. */
    async read(pid: number): Promise<number> {
      rmSync(file, { force: true });
      process.kill(pid, 'SIGUSR2');
      const deadline = Date.now() + 10_000;
      for (;;) {
        if (existsSync(file)) {
          const bytes = Number(readFileSync(file, 'utf8'));
          rmSync(file, { force: true });
          if (!Number.isFinite(bytes)) throw new Error(`heap probe of ${name}: not a number in ${file}`);
          return bytes;
        }
        if (Date.now() > deadline) throw new Error(`heap probe of ${name}: no answer in 10 s (was the process started with its node args?)`);
        await sleep(10);
      }
    },
  };
}

/** Least-squares slope of y over x; NaN with fewer than two points. */
function slope(x: number[], y: number[]): number {
  const n = x.length;
  if (n < 2) return NaN;
  const mx = x.reduce((a, b) => a + b, 0) / n;
  const my = y.reduce((a, b) => a + b, 0) / n;
  let num = 0;
  let den = 0;
  for (let i = 0; i < n; i++) {
    num += (x[i]! - mx) * (y[i]! - my);
    den += (x[i]! - mx) ** 2;
  }
  return den === 0 ? NaN : num / den;
}
