#!/usr/bin/env node
// The `signalbox` command (package.json "bin"); see commands.ts.
import { once } from 'node:events';
import { enableCompileCache } from '../compile-cache.js';

// First, before commands.js and what it imports are compiled (see compile-cache.ts).
enableCompileCache();
const { main } = await import('./commands.js');

process.exitCode = await main(process.argv.slice(2), {
  out: (line) => process.stdout.write(`${line}\n`),
  err: (line) => process.stderr.write(`${line}\n`),
  env: process.env,
  interrupted: () => Promise.race([once(process, 'SIGTERM'), once(process, 'SIGINT')]),
});
