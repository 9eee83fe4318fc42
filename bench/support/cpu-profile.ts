/**
 * Self time per function and per area from a V8 .cpuprofile (what `node --cpu-prof` writes):
 * pure functions over the parsed JSON, so that bench/profile.bench.ts only runs processes and
 * prints, and the arithmetic has a unit test (test/bench/cpu-profile.test.ts).
 *
 * The format (Chrome DevTools protocol, Profiler.Profile): `nodes` form the call tree, each with a
 * callFrame {functionName, url, lineNumber, columnNumber} (0-based); `samples[i]` is the id of the
 * node on top of the stack at sample i, `timeDeltas[i]` the µs since sample i-1 (sample 0: since
 * `startTime`). As DevTools does, sample i lasts until sample i+1 (the last one until `endTime`).
 * https://chromedevtools.github.io/devtools-protocol/tot/Profiler/#type-Profile
 */
import { readFileSync } from 'node:fs';
import { SourceMap } from 'node:module';
import { relative, sep } from 'node:path';
import { fileURLToPath } from 'node:url';

export interface CpuProfile {
  readonly nodes: readonly { readonly id: number; readonly callFrame: CallFrame }[];
  readonly startTime: number;
  readonly endTime: number;
  readonly samples: readonly number[];
  readonly timeDeltas: readonly number[];
}

export interface CallFrame {
  readonly functionName: string;
  readonly url: string;
  readonly lineNumber: number;
  readonly columnNumber: number;
}

export interface FunctionSelfTime {
  readonly function: string;
  /** file:line, shortened to `src/...` (Signalbox, mapped to the TypeScript source), `<package>/...` or `node:...`. */
  readonly location: string;
  readonly area: string;
  readonly selfUs: number;
}

export interface ProfileSummary {
  /** Sampled time in the window, idle included, µs. */
  readonly totalUs: number;
  /** Sampled time in the window that was not `(idle)`, µs. */
  readonly busyUs: number;
  readonly samples: number;
  /** Highest self time first. */
  readonly functions: readonly FunctionSelfTime[];
  /** Area to self time, µs, highest first. */
  readonly areas: readonly { readonly area: string; readonly selfUs: number }[];
}

/** V8's pseudo-frames: kept as their own area and function. */
const PSEUDO = new Set(['(garbage collector)', '(program)', '(idle)', '(root)']);

/**
 * Which part of the process a frame belongs to: `signalbox src/<folder>`, an npm package by name,
 * `node:<module>` for Node's own JavaScript, a V8 pseudo-frame, `wasm` (in Signalbox: undici's
 * llhttp parser), or `(native)` for frames without a script: V8 builtins (JSON.parse, a RegExp's
 * code), Node's C++ bindings (`writev`) and the microtask loop.
 */
export function areaOf(frame: CallFrame, root: string): string {
  if (PSEUDO.has(frame.functionName) && frame.url === '') return frame.functionName;
  const { url } = frame;
  if (url === '') return '(native)';
  if (url.startsWith('wasm:')) return 'wasm';
  if (url.startsWith('node:')) return `node:${nodeModuleOf(url.slice('node:'.length))}`;
  const path = url.startsWith('file://') ? fileURLToPath(url) : url;
  const pkg = packageOf(path);
  if (pkg !== undefined) return pkg;
  const inRepo = relative(root, path).split(sep);
  if (inRepo[0] === 'dist' && inRepo[1] === 'src') return inRepo.length > 3 ? `signalbox src/${inRepo[2]}` : 'signalbox src/ (top level)';
  if (inRepo[0] === 'dist' && inRepo[1] === 'bench') return 'bench';
  return 'other';
}

/** `internal/streams/readable` -> stream, `_http_server` -> http, `internal/deps/undici/undici` -> deps/undici, `net` -> net. */
function nodeModuleOf(id: string): string {
  const parts = id.replace(/^internal\//, '').split('/');
  const first = parts[0]!;
  if (first === 'deps' && parts[1] !== undefined) return `deps/${parts[1]}`;
  if (first === 'streams') return 'stream';
  // The legacy underscore modules: _http_outgoing, _stream_readable, _tls_wrap.
  if (first.startsWith('_')) return first.slice(1).split('_')[0]!;
  return first;
}

/** The npm package a path lies in (the innermost node_modules), scoped names included. */
function packageOf(path: string): string | undefined {
  const at = path.lastIndexOf(`${sep}node_modules${sep}`);
  if (at < 0) return undefined;
  const rest = path.slice(at + `${sep}node_modules${sep}`.length).split(sep);
  return rest[0]!.startsWith('@') ? `${rest[0]}/${rest[1]}` : rest[0];
}

/**
 * Self time per function (call paths merged) and per area, over the samples whose time lies in
 * [fromUs, toUs] (the profile's clock; by default all of them).
 */
export function summariseProfile(profile: CpuProfile, root: string, window: { fromUs?: number; toUs?: number } = {}): ProfileSummary {
  const { fromUs = -Infinity, toUs = Infinity } = window;
  const byNode = new Map<number, number>();
  let at = profile.startTime;
  let samples = 0;
  for (let i = 0; i < profile.samples.length; i++) {
    at += profile.timeDeltas[i]!;
    if (at < fromUs || at > toUs) continue;
    const next = i + 1 < profile.samples.length ? at + profile.timeDeltas[i + 1]! : profile.endTime;
    const id = profile.samples[i]!;
    byNode.set(id, (byNode.get(id) ?? 0) + Math.max(0, next - at));
    samples++;
  }
  const frames = new Map(profile.nodes.map((n) => [n.id, n.callFrame]));
  const byFunction = new Map<string, FunctionSelfTime>();
  const byArea = new Map<string, number>();
  let totalUs = 0;
  let idleUs = 0;
  const sourceMaps = new Map<string, SourceMap | undefined>();
  for (const [id, us] of byNode) {
    const frame = frames.get(id);
    if (frame === undefined) continue;
    totalUs += us;
    const area = areaOf(frame, root);
    if (area === '(idle)') idleUs += us;
    byArea.set(area, (byArea.get(area) ?? 0) + us);
    const key = `${frame.functionName}\0${frame.url}\0${frame.lineNumber}\0${frame.columnNumber}`;
    const seen = byFunction.get(key);
    byFunction.set(key, seen
      ? { ...seen, selfUs: seen.selfUs + us }
      : { function: frame.functionName || '(anonymous)', location: locationOf(frame, root, sourceMaps), area, selfUs: us });
  }
  return {
    totalUs, busyUs: totalUs - idleUs, samples,
    functions: [...byFunction.values()].sort((a, b) => b.selfUs - a.selfUs),
    areas: [...byArea].map(([area, selfUs]) => ({ area, selfUs })).sort((a, b) => b.selfUs - a.selfUs),
  };
}

/**
 * file:line (1-based) shortened: Signalbox's compiled files mapped back through their source maps
 * to src/....ts, packages from their name on, node: ids as they are.
 */
function locationOf(frame: CallFrame, root: string, sourceMaps: Map<string, SourceMap | undefined>): string {
  const { url, lineNumber, columnNumber } = frame;
  if (url === '') return PSEUDO.has(frame.functionName) ? '' : '(native)';
  if (url.startsWith('wasm:')) return url;
  if (url.startsWith('node:')) return `${url}:${lineNumber + 1}`;
  const path = url.startsWith('file://') ? fileURLToPath(url) : url;
  const at = path.lastIndexOf(`${sep}node_modules${sep}`);
  if (at >= 0) return `${path.slice(at + `${sep}node_modules${sep}`.length)}:${lineNumber + 1}`;
  const inRepo = relative(root, path);
  if (!inRepo.startsWith(`dist${sep}`)) return `${inRepo}:${lineNumber + 1}`;
  if (!sourceMaps.has(path)) sourceMaps.set(path, readSourceMap(path));
  const entry = sourceMaps.get(path)?.findEntry(lineNumber, columnNumber);
  // findEntry answers {} when nothing maps (Node 20) and has no originalSource in older releases.
  if (entry && 'originalSource' in entry && typeof entry.originalSource === 'string') {
    return `${relative(root, entry.originalSource.startsWith('file://') ? fileURLToPath(entry.originalSource) : entry.originalSource)}:${entry.originalLine + 1}`;
  }
  return `${inRepo}:${lineNumber + 1}`;
}

function readSourceMap(jsPath: string): SourceMap | undefined {
  try {
    const payload = JSON.parse(readFileSync(`${jsPath}.map`, 'utf8')) as ConstructorParameters<typeof SourceMap>[0];
    // `sources` are relative to the map's directory; SourceMap resolves them against sourceRoot as given.
    return new SourceMap({ ...payload, sources: payload.sources.map((s) => new URL(s, `file://${jsPath}`).href) });
  } catch {
    return undefined;
  }
}

const pct = (us: number, of: number): string => (of > 0 ? `${((100 * us) / of).toFixed(1)}%` : '-');
const ms = (us: number): string => (us / 1000).toFixed(1);

/** The top `limit` functions by self time, as a markdown table. */
export function functionTable(summary: ProfileSummary, limit: number): string {
  const rows = summary.functions.slice(0, limit).map((f, i) =>
    `| ${i + 1} | ${pct(f.selfUs, summary.totalUs)} | ${f.area === '(idle)' ? '-' : pct(f.selfUs, summary.busyUs)} | ${ms(f.selfUs)} | \`${f.function}\` | ${f.location} |`);
  return ['| # | % of samples | % of busy | self ms | function | where |', '| ---: | ---: | ---: | ---: | --- | --- |', ...rows].join('\n');
}

/** Self time per area, as a markdown table (all areas). */
export function areaTable(summary: ProfileSummary): string {
  const rows = summary.areas.map((a) => `| ${a.area} | ${pct(a.selfUs, summary.totalUs)} | ${a.area === '(idle)' ? '-' : pct(a.selfUs, summary.busyUs)} | ${ms(a.selfUs)} |`);
  return ['| area | % of samples | % of busy | self ms |', '| --- | ---: | ---: | ---: |', ...rows].join('\n');
}
