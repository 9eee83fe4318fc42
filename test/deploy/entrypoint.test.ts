import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test, type TestContext } from 'node:test';
import { CLI_COMMANDS } from '../../src/cli/commands.js';

/**
 * The image's entrypoint (docker-entrypoint.sh), run with sh from the repository root as the
 * image runs it from /app; scripts/docker-e2e.sh runs it in the real image.
 */

interface Run {
  readonly pid: number | undefined;
  readonly code: number | null;
  readonly out: string;
  readonly err: string;
}

function entrypoint(t: TestContext, args: string[]): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn('sh', ['docker-entrypoint.sh', ...args], { env: { PATH: process.env.PATH ?? '' }, stdio: ['ignore', 'pipe', 'pipe'] });
    const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
    t.after(() => {
      clearTimeout(timer);
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    });
    let out = '';
    let err = '';
    child.stdout.on('data', (c: Buffer) => (out += c.toString('utf8')));
    child.stderr.on('data', (c: Buffer) => (err += c.toString('utf8')));
    child.once('error', reject);
    child.once('close', (code) => {
      clearTimeout(timer);
      resolve({ pid: child.pid, code, out, err });
    });
  });
}

test('the entrypoint routes exactly the CLI\'s subcommands to the CLI', () => {
  const script = readFileSync('docker-entrypoint.sh', 'utf8');
  const pattern = /^\s*([a-z-]+(?:\|[a-z-]+)*)\)\s*$/m.exec(script);
  assert.ok(pattern, 'a case pattern');
  assert.deepEqual(pattern[1]!.split('|').sort(), [...CLI_COMMANDS].sort());
});

test('`check` and `test` as the first argument run the CLI on the given files, with its exit codes', async (t) => {
  const check = await entrypoint(t, ['check', 'rules.yaml']);
  assert.equal(check.code, 0, check.err);
  assert.match(check.out, /^ok: rules\.yaml: \d+ rules/);

  const cases = await entrypoint(t, ['test', 'rules.test.yaml']);
  assert.equal(cases.code, 0, cases.out + cases.err);
  assert.match(cases.out, / 0 failed\n$/);

  const dir = mkdtempSync(join(tmpdir(), 'signalbox-entrypoint-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const broken = join(dir, 'rules.yaml');
  writeFileSync(broken, 'version: 1\nrules:\n  - name: x\n    route: { tier: nowhere }\n');
  const refused = await entrypoint(t, ['check', broken]);
  assert.equal(refused.code, 1);
  assert.match(refused.err, /nowhere/);
});

test('any other command runs as given, in place of the shell (exec: the image\'s node stays PID 1)', async (t) => {
  const run = await entrypoint(t, ['node', '-e', 'process.stdout.write(String(process.pid))']);
  assert.equal(run.code, 0, run.err);
  assert.equal(run.out, String(run.pid), 'node has the pid of the process the entrypoint started as');
});
