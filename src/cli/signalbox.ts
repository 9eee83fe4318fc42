#!/usr/bin/env node
// The `signalbox` command (package.json "bin"); see commands.ts.
import { runCli } from './commands.js';

process.exitCode = runCli(process.argv.slice(2), {
  out: (line) => process.stdout.write(`${line}\n`),
  err: (line) => process.stderr.write(`${line}\n`),
  env: process.env,
});
