#!/usr/bin/env node
// The `signalbox` command (package.json "bin"); see commands.ts.
import { once } from 'node:events';
import { enableCompileCache } from '../compile-cache.js';

// A reader that stops early (`signalbox classifier eval | head`) closes the pipe: the next write
// fails with EPIPE, emitted on the stream. Stop quietly, as Unix tools do, rather than die with
// an unhandled 'error' event and a stack trace; any other output error ends the command with 1.
for (const stream of [process.stdout, process.stderr]) {
  stream.on('error', (err: NodeJS.ErrnoException) => {
    process.exit(err.code === 'EPIPE' ? (typeof process.exitCode === 'number' ? process.exitCode : 0) : 1);
  });
}

// First, before commands.js and what it imports are compiled (see compile-cache.ts).
enableCompileCache();
const { main } = await import('./commands.js');

process.exitCode = await main(process.argv.slice(2), {
  out: (line) => process.stdout.write(`${line}\n`),
  err: (line) => process.stderr.write(`${line}\n`),
  env: process.env,
  interrupted: () => Promise.race([once(process, 'SIGTERM'), once(process, 'SIGINT')]),
});
