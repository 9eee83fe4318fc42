#!/usr/bin/env node
// Runs the compiled tests of every test/**/*.test.ts with node:test.
// Why not `node --test dist/test/`: on Node 20 a directory argument runs every .js file below a
// folder named `test` (support code included), and compiled files of deleted tests would still run.
import { spawn } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';

function sources(dir) {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) return sources(path);
    return entry.name.endsWith('.test.ts') ? [path] : [];
  });
}

const only = process.argv.slice(2);
const files = sources('test')
  .filter((f) => only.length === 0 || only.some((o) => f.includes(o)))
  .sort()
  .map((f) => join('dist', f.replace(/\.ts$/, '.js')));
if (files.length === 0) {
  console.error('no test files matched');
  process.exit(1);
}
// A green run is quiet: a process warning (a listener leak, a deprecation, an experimental
// feature) fails the run, so it is fixed when it appears instead of scrolling past. node:test
// reports a test file's stderr as `# (node:PID) ...Warning: ...` comment lines on its stdout.
const WARNING = /\(node:\d+\) \w*Warning: /;
let warnings = 0;
// Every test fails after this long unless it sets its own `timeout` (the few slow ones do): a lost
// event then fails its test with a name instead of hanging CI until the job's limit. Two minutes
// is far above the slowest test's own run on a loaded 2-core machine.
const TEST_TIMEOUT_MS = 120_000;
const child = spawn(process.execPath, ['--test', `--test-concurrency=${process.env.TEST_CONCURRENCY ?? 2}`, `--test-timeout=${TEST_TIMEOUT_MS}`, ...files], {
  stdio: ['ignore', 'pipe', 'pipe'],
});
for (const [from, to] of [[child.stdout, process.stdout], [child.stderr, process.stderr]]) {
  let tail = '';
  from.on('data', (chunk) => {
    to.write(chunk);
    const lines = (tail + chunk.toString('utf8')).split('\n');
    tail = lines.pop() ?? '';
    for (const line of lines) if (WARNING.test(line)) warnings++;
  });
  from.on('end', () => {
    if (WARNING.test(tail)) warnings++;
  });
}
child.on('close', (code, signal) => {
  if (warnings > 0) console.error(`run-tests: ${warnings} process warning line(s) above; a green run prints none`);
  process.exit(code || (signal ? 1 : 0) || (warnings > 0 ? 1 : 0));
});
