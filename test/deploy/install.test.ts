import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';

/**
 * What the root `npm ci` installs: only what the proxy and its tests need (issue 13 item 7). The
 * benchmark's peer (the Portkey gateway, ~90 packages and an install script) is its own package,
 * bench/peers, installed by `npm run bench` (scripts/bench-peers.mjs).
 */

interface Lock {
  readonly packages: Record<string, { readonly version?: string; readonly hasInstallScript?: boolean; readonly dependencies?: Record<string, string> }>;
}

const readJson = <T>(path: string): T => JSON.parse(readFileSync(path, 'utf8')) as T;

test('the root install runs no install script and holds no benchmark peer', () => {
  const lock = readJson<Lock>('package-lock.json');
  const withScripts = Object.keys(lock.packages).filter((name) => lock.packages[name]!.hasInstallScript === true);
  assert.deepEqual(withScripts, [], 'npm ci would run (or warn about) these install scripts');
  assert.deepEqual(Object.keys(lock.packages).filter((name) => name.includes('@portkey-ai/')), []);
});

test('the bench installs its peers from their own pinned lockfile before it runs', () => {
  const peers = readJson<{ private?: boolean; dependencies?: Record<string, string> }>('bench/peers/package.json');
  assert.equal(peers.private, true);
  assert.equal(peers.dependencies?.['@portkey-ai/gateway'], '1.15.2');
  const lock = readJson<Lock>('bench/peers/package-lock.json');
  assert.equal(lock.packages['']?.dependencies?.['@portkey-ai/gateway'], '1.15.2');
  assert.equal(lock.packages['node_modules/@portkey-ai/gateway']?.version, '1.15.2');
  const scripts = readJson<{ scripts: Record<string, string> }>('package.json').scripts;
  assert.match(scripts['bench']!, /node scripts\/bench-peers\.mjs && node dist\/bench\/proxy\.bench\.js$/);
});
