import assert from 'node:assert/strict';
import { execFile, execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test, type TestContext } from 'node:test';
import { fileURLToPath } from 'node:url';
import { parse } from 'yaml';
import { runCli } from '../../src/cli/commands.js';

const REPO_ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const BIN = join(REPO_ROOT, 'dist/src/cli/signalbox.js');
const SHIPPED_RULES = join(REPO_ROOT, 'rules.yaml');
const SHIPPED_CASES = join(REPO_ROOT, 'rules.test.yaml');

interface Run {
  readonly code: number;
  readonly out: string[];
  readonly err: string[];
}

/** `runCli` in-process, each line it prints collected. */
function cli(argv: string[], env: NodeJS.ProcessEnv = {}): Run {
  const out: string[] = [];
  const err: string[] = [];
  const code = runCli(argv, { out: (l) => out.push(l), err: (l) => err.push(l), env });
  return { code, out, err };
}

/** The real bin as a child process, from the repository root; stdout and stderr split into lines. */
function runProcess(file: string, args: string[]): Promise<Run> {
  return new Promise((resolve, reject) => {
    execFile(file, args, { cwd: REPO_ROOT, env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? tmpdir() }, timeout: 60_000 }, (error, stdout, stderr) => {
      const code = error ? (typeof error.code === 'number' ? error.code : NaN) : 0;
      if (error && Number.isNaN(code)) return reject(error);
      resolve({ code, out: lines(stdout), err: lines(stderr) });
    });
  });
}

function bin(args: string[]): Promise<Run> {
  return runProcess(process.execPath, [BIN, ...args]);
}

function lines(text: string): string[] {
  return text.split('\n').filter((l) => l !== '');
}

function tempDir(t: TestContext): string {
  const dir = mkdtempSync(join(tmpdir(), 'signalbox-cli-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

function writeIn(dir: string, name: string, text: string): string {
  const file = join(dir, name);
  writeFileSync(file, text);
  return file;
}

/** A rules file whose only rule, `name`, routes every request to `model`. */
function oneRule(name: string, model: string): string {
  return `version: 1\nrules:\n  - name: ${name}\n    route: { model: ${model} }\n`;
}

/** The `ok:` line `check` prints, computed from the file itself rather than from the compiler. */
function expectedOkLine(shownName: string, file: string): string {
  const text = readFileSync(file, 'utf8');
  const doc = parse(text) as { rules: unknown[]; tiers?: Record<string, unknown> };
  const hash = createHash('sha256').update(text).digest('hex').slice(0, 12);
  return `ok: ${shownName}: ${doc.rules.length} rules, ${Object.keys(doc.tiers ?? {}).length} tiers, hash ${hash}`;
}

const BROKEN_RULES = 'version: 1\nrules:\n  - name: a\n    route: { tier: gold }\n  - name: a\n    route: { model: x, params: { model: y } }\n';

test('check on the shipped rules.yaml (real bin) exits 0 with the rule count', async () => {
  const run = await bin(['check', 'rules.yaml']);
  assert.deepEqual(run, { code: 0, out: [expectedOkLine('rules.yaml', SHIPPED_RULES)], err: [] });
});

test('check on a broken file (real bin) exits 1 with every problem positioned on stderr', async (t) => {
  const file = writeIn(tempDir(t), 'broken.yaml', BROKEN_RULES);
  const run = await bin(['check', file]);
  assert.equal(run.code, 1);
  assert.deepEqual(run.out, []);
  assert.deepEqual(run.err, [
    `${file}:4:20: rules[0] "a": unknown tier "gold" (tiers: none defined)`,
    `${file}:5:5: rules[1] "a": can never match: rules[0] "a" before it matches every request (it has no conditions)`,
    `${file}:5:11: rules[1] "a": duplicate rule name: rules[0] "a" has it too`,
    `${file}:6:34: rules[1] "a": params may not set "model": use route.model or route.tier`,
  ]);
});

test('check reports a misspelt key and an unknown tier in one run, in file order, naming each rule', (t) => {
  const file = writeIn(tempDir(t), 'two-stages.yaml', [
    'version: 1',
    'tiers: { fast: { model: m/fast } }',
    'rules:',
    '  - name: code-tasks',
    '    when: { request.has_tools: true }',
    '    route: { tier: fast, fallbaks: [m/other] }',
    '  - name: default',
    '    route: { tier: standard }',
    '',
  ].join('\n'));
  assert.deepEqual(cli(['check', file]), {
    code: 1,
    out: [],
    err: [
      `${file}:6:26: rules[0] "code-tasks": unknown key "fallbaks" in route`,
      `${file}:8:20: rules[1] "default": unknown tier "standard" (tiers: fast)`,
    ],
  });
});

test('check on an empty file says so', async (t) => {
  const file = writeIn(tempDir(t), 'empty.yaml', '# rules go here\n');
  const expected = { code: 1, out: [], err: [`${file}: the file is empty: expected a mapping with "version: 1" and a "rules" list`] };
  assert.deepEqual(cli(['check', file]), expected);
  assert.deepEqual(await bin(['check', file]), expected);
});

test('check with no argument reads RULES_FILE', (t) => {
  const file = writeIn(tempDir(t), 'from-env.yaml', oneRule('only', 'x/y'));
  const run = cli(['check'], { RULES_FILE: file });
  assert.deepEqual(run, { code: 0, out: [expectedOkLine(file, file)], err: [] });
});

test('check on a missing file exits 1', (t) => {
  const file = join(tempDir(t), 'missing.yaml');
  assert.deepEqual(cli(['check', file]), { code: 1, out: [], err: [`${file}: cannot read the rules file (ENOENT)`] });
});

test('an unknown command or no command is a usage error (exit 2)', async () => {
  const unknown = cli(['frobnicate']);
  assert.equal(unknown.code, 2);
  assert.match(unknown.err.join('\n'), /^signalbox: unknown command "frobnicate"\nusage:/);
  const none = cli([]);
  assert.equal(none.code, 2);
  assert.match(none.err.join('\n'), /^usage:\n {2}signalbox check/);
  const viaBin = await bin([]);
  assert.equal(viaBin.code, 2);
  assert.equal(viaBin.err[0], 'usage:');
  assert.equal(cli(['check', 'a.yaml', 'b.yaml']).code, 2, 'check takes one file');
  assert.equal(cli(['test']).code, 2, 'test needs a cases file');
  assert.equal(cli(['test', 'cases.yaml', '--rules']).code, 2, '--rules needs a value');
});

test('test on the shipped rules.test.yaml (real bin) passes every case', async () => {
  const cases = (parse(readFileSync(SHIPPED_CASES, 'utf8')) as { cases: { name: string }[] }).cases;
  assert.ok(cases.length > 0);
  const run = await bin(['test', 'rules.test.yaml']);
  assert.equal(run.code, 0, run.out.join('\n'));
  assert.deepEqual(run.err, []);
  assert.deepEqual(run.out.slice(0, cases.length), cases.map((c, i) => `ok   ${i + 1} - ${c.name}`));
  assert.match(run.out[cases.length]!, /^rules: .*rules\.yaml \(hash [0-9a-f]{12}\)$/);
  assert.match(run.out[cases.length + 1]!, /^catalog: .*catalog\.example\.json \(\d+ models\)$/, 'the cases file pins a catalog');
  assert.equal(run.out.at(-1), `${cases.length} passed, 0 failed`);
  assert.equal(run.out.length, cases.length + 3);
});

test('a failing case exits 1 and names the case and the mismatch', (t) => {
  const dir = tempDir(t);
  const rules = writeIn(dir, 'rules.yaml', oneRule('main', 'x/main'));
  const cases = writeIn(dir, 'cases.yaml', [
    'rules: ./rules.yaml',
    'cases:',
    '  - name: holds',
    '    body: { model: auto, messages: [{ role: user, content: hi }] }',
    '    expect: { rule: main, model: x/main }',
    '  - name: wrong rule',
    '    body: { model: auto, messages: [{ role: user, content: hi }] }',
    '    expect: { rule: expected-rule, model: x/main }',
    '',
  ].join('\n'));
  const run = cli(['test', cases]);
  assert.equal(run.code, 1);
  assert.deepEqual(run.out, [
    'ok   1 - holds',
    'FAIL 2 - wrong rule',
    '       rule: expected "expected-rule", got "main"',
    `rules: ${rules} (hash ${createHash('sha256').update(oneRule('main', 'x/main')).digest('hex').slice(0, 12)})`,
    '1 passed, 1 failed',
  ]);
  assert.deepEqual(run.err, []);
});

test('a case can expect the refusal before routing (error: invalid_messages); one that does not is told why it failed', (t) => {
  const dir = tempDir(t);
  writeIn(dir, 'rules.yaml', oneRule('main', 'x/main'));
  const cases = writeIn(dir, 'cases.yaml', [
    'rules: ./rules.yaml',
    'cases:',
    '  - name: refused',
    '    body: { model: auto, messages: "hi" }',
    '    expect: { error: invalid_messages }',
    '  - name: expected a route',
    '    body: { model: auto, messages: [null] }',
    '    expect: { rule: main }',
    '  - name: expected a refusal',
    '    body: { model: auto, messages: [{ role: user, content: hi }] }',
    '    expect: { error: invalid_messages }',
    '',
  ].join('\n'));
  const run = cli(['test', cases]);
  assert.equal(run.code, 1);
  assert.deepEqual(run.out.filter((l) => !l.startsWith('rules: ')), [
    'ok   1 - refused',
    'FAIL 2 - expected a route',
    '       error: expected none, got invalid_messages (Invalid messages: `messages[0]` must be a message object, not null)',
    'FAIL 3 - expected a refusal',
    '       error: expected invalid_messages, got none: the request is routed',
    '1 passed, 2 failed',
  ]);
});

test('expect.error stands alone in a cases file, and only a known code is accepted', (t) => {
  const dir = tempDir(t);
  writeIn(dir, 'rules.yaml', oneRule('main', 'x/main'));
  const mixed = writeIn(dir, 'mixed.yaml', 'rules: ./rules.yaml\ncases:\n  - name: one\n    body: { messages: [] }\n    expect: { error: invalid_messages, rule: main }\n');
  assert.deepEqual(cli(['test', mixed]), {
    code: 1, out: [], err: [`${mixed}:5:15: cases.0.expect.error stands alone: a request refused before routing reaches no rule`],
  });
  const unknown = writeIn(dir, 'unknown.yaml', 'rules: ./rules.yaml\ncases:\n  - name: one\n    body: { messages: [] }\n    expect: { error: invalid_json }\n');
  const run = cli(['test', unknown]);
  assert.equal(run.code, 1);
  assert.match(run.err.join('\n'), /^.*unknown\.yaml:5:\d+: cases\.0\.expect\.error must be equal to one of the allowed values$/);
});

test('--rules overrides the rules file the cases name', (t) => {
  const dir = tempDir(t);
  writeIn(dir, 'named.yaml', oneRule('named', 'x/named'));
  const override = writeIn(dir, 'override.yaml', oneRule('override', 'x/override'));
  const cases = writeIn(dir, 'cases.yaml', 'rules: ./named.yaml\ncases:\n  - name: routed by the override\n    body: { model: auto, messages: [{ role: user, content: hi }] }\n    expect: { rule: override, model: x/override }\n');

  const run = cli(['test', cases, '--rules', override]);
  assert.equal(run.code, 0, run.out.join('\n'));
  assert.equal(run.out[0], 'ok   1 - routed by the override');
  assert.match(run.out[1]!, new RegExp(`^rules: ${override.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')} \\(hash `));
  assert.equal(run.out.at(-1), '1 passed, 0 failed');

  const without = cli(['test', cases]);
  assert.equal(without.code, 1, 'without --rules the named file decides, and the case fails');
  assert.equal(without.out.at(-1), '0 passed, 1 failed');
});

test('a malformed cases file (unknown key in expect) exits 1 with a positioned error', (t) => {
  const dir = tempDir(t);
  writeIn(dir, 'rules.yaml', oneRule('main', 'x/main'));
  const cases = writeIn(dir, 'cases.yaml', 'rules: ./rules.yaml\ncases:\n  - name: one\n    body: { model: a }\n    expect: { rulez: main }\n');
  assert.deepEqual(cli(['test', cases]), { code: 1, out: [], err: [`${cases}:5:15: unknown key "rulez"`] });
});

test('a missing cases file exits 1', (t) => {
  const cases = join(tempDir(t), 'missing-cases.yaml');
  assert.deepEqual(cli(['test', cases]), { code: 1, out: [], err: [`${cases}: cannot read the cases file (ENOENT)`] });
});

test('`npm exec --offline -- signalbox check` runs the package bin', { timeout: 90_000 }, async () => {
  const run = await runProcess('npm', ['exec', '--offline', '--', 'signalbox', 'check', 'rules.yaml']);
  assert.equal(run.code, 0, run.err.join('\n'));
  assert.deepEqual(run.out, [expectedOkLine('rules.yaml', SHIPPED_RULES)]);
});

/** A "billion laughs" document: each anchor holds nine aliases of the one before (9^4 nodes). */
const ALIAS_BOMB = 'a: &a [x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]\nc: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]\nd: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c]\n';
const ALIAS_BOMB_PROBLEM = ': Excessive alias count indicates a resource exhaustion attack: the aliases expand to more than 100 nodes; write the values out';

test('check: a YAML alias bomb exits 1 with one positioned error, not a stack trace', (t) => {
  const file = writeIn(tempDir(t), 'rules.yaml', ALIAS_BOMB);
  // 2:8: the first alias, `*a` on line 2.
  assert.deepEqual(cli(['check', file]), { code: 1, out: [], err: [`${file}:2:8${ALIAS_BOMB_PROBLEM}`] });
});

test('test: an alias bomb in the cases file or in the rules file exits 1 with a positioned error', (t) => {
  const dir = tempDir(t);
  const rules = writeIn(dir, 'rules.yaml', oneRule('main', 'x/main'));
  const bombCases = writeIn(dir, 'bomb-cases.yaml', ALIAS_BOMB);
  assert.deepEqual(cli(['test', bombCases, '--rules', rules]), { code: 1, out: [], err: [`${bombCases}:2:8${ALIAS_BOMB_PROBLEM}`] });

  const bombRules = writeIn(dir, 'bomb-rules.yaml', ALIAS_BOMB);
  const cases = writeIn(dir, 'cases.yaml', 'cases:\n  - name: one\n    body: { model: a, messages: [{ role: user, content: hi }] }\n    expect: { rule: main }\n');
  assert.deepEqual(cli(['test', cases, '--rules', bombRules]), { code: 1, out: [], err: [`${bombRules}:2:8${ALIAS_BOMB_PROBLEM}`] });
});

test('check: a regular expression over the instruction budget exits 1 naming the pattern at its line:col', (t) => {
  const file = writeIn(tempDir(t), 'rules.yaml', "version: 1\nrules:\n  - name: secrets\n    when: { request.text: { matches: '(.|\\s){0,1000}secret' } }\n    route: { reject: { status: 400 } }\n");
  const run = cli(['check', file]);
  assert.equal(run.code, 1);
  assert.deepEqual(run.err, [`${file}:4:38: rules[0] "secrets": regular expression "(.|\\\\s){0,1000}secret" compiles to 4008 instructions; the limit is 2000 (a repeat {n,m} copies what it repeats m times: lower m, or use * or +)`]);
});

test('check and test refuse a FIFO (rules or cases) at once instead of waiting for a writer', { timeout: 20_000 }, (t) => {
  const dir = tempDir(t);
  const fifo = join(dir, 'fifo.yaml');
  execFileSync('mkfifo', [fifo]);
  const notRegular = (what: string) => `${fifo}: the ${what} is not a regular file (symlinks are followed; a FIFO, device or directory is refused)`;
  assert.deepEqual(cli(['check', fifo]), { code: 1, out: [], err: [notRegular('rules file')] });
  assert.deepEqual(cli(['test', fifo, '--rules', writeIn(dir, 'rules.yaml', oneRule('main', 'x/main'))]), { code: 1, out: [], err: [notRegular('cases file')] });
});

test('a reader that closes the pipe early (signalbox check | head) ends the command quietly, not with an unhandled EPIPE', { timeout: 30_000 }, async () => {
  const { spawn } = await import('node:child_process');
  const child = spawn(process.execPath, [BIN, 'check', SHIPPED_RULES], { cwd: REPO_ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  // Closed before the child has written anything: its first line to stdout fails with EPIPE.
  child.stdout.destroy();
  let stderr = '';
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
  const [code] = await new Promise<[number | null, NodeJS.Signals | null]>((resolve) => child.on('close', (c, s) => resolve([c, s])));
  assert.equal(stderr, '', 'no stack trace');
  assert.equal(code, 0, 'the check passed; only its reader went away');
});
