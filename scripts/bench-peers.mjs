#!/usr/bin/env node
// Installs the benchmark's peers (bench/peers: the Portkey gateway) before `npm run bench`, when
// bench/peers/node_modules is missing or was installed from another bench/peers/package-lock.json.
// They live in their own package so that the root `npm ci` installs only what the proxy and its
// tests need: the gateway brings about 90 packages and an install script (issue 13 item 7).
//
// `--ignore-scripts`: the gateway's only install script is `postinstall: patch-package`, and its
// published files hold no patches/ folder, so that script has nothing to apply; an install that
// runs no third-party code is the one to have.
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const PEERS = join(dirname(fileURLToPath(import.meta.url)), '..', 'bench', 'peers');
// npm ci empties node_modules first, so a stamp inside it never outlives the install it describes.
const STAMP = join(PEERS, 'node_modules', '.signalbox-lock-sha256');

const lockHash = createHash('sha256').update(readFileSync(join(PEERS, 'package-lock.json'))).digest('hex');
let installed = '';
try {
  installed = readFileSync(STAMP, 'utf8').trim();
} catch {
  // not installed yet
}
if (installed !== lockHash) {
  console.error('bench: installing the benchmark peers (npm ci --prefix bench/peers)');
  const npm = spawnSync('npm', ['ci', '--prefix', PEERS, '--no-audit', '--no-fund', '--ignore-scripts'], { stdio: ['ignore', 2, 2] });
  if (npm.status !== 0) {
    console.error(`bench: npm ci --prefix bench/peers failed (${npm.error?.message ?? `exit ${npm.status ?? npm.signal}`})`);
    process.exit(1);
  }
  writeFileSync(STAMP, `${lockHash}\n`);
}
