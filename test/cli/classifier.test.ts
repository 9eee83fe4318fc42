import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test, type TestContext } from 'node:test';
import { fileURLToPath } from 'node:url';
import { DEFAULT_TRAIN_OPTIONS } from '../../src/classify/train.js';
import { runCli } from '../../src/cli/commands.js';
import { FIXTURE_SET } from '../support/classifier.js';

const REPO_ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const BIN = join(REPO_ROOT, 'dist/src/cli/signalbox.js');

interface Run {
  readonly code: number;
  readonly out: string;
  readonly err: string;
}

/** The built bin as a child process, as a user runs it. */
function bin(args: string[]): Promise<Run> {
  return new Promise((resolve, reject) => {
    execFile(process.execPath, [BIN, ...args], { cwd: REPO_ROOT, env: { PATH: process.env.PATH ?? '' }, timeout: 60_000 }, (error, stdout, stderr) => {
      const code = error ? (typeof error.code === 'number' ? error.code : NaN) : 0;
      if (error && Number.isNaN(code)) return reject(error);
      resolve({ code, out: stdout, err: stderr });
    });
  });
}

function cli(argv: string[]): Run {
  const out: string[] = [];
  const err: string[] = [];
  const code = runCli(argv, { out: (l) => out.push(l), err: (l) => err.push(l), env: {} });
  return { code, out: out.join('\n'), err: err.join('\n') };
}

function tempDir(t: TestContext): string {
  const dir = mkdtempSync(join(tmpdir(), 'signalbox-classifier-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

test('classifier train then eval, end to end on the fixture set: the same set and options write the same bytes', async (t) => {
  const dir = tempDir(t);
  const first = join(dir, 'a.json');
  const second = join(dir, 'b.json');
  const trained = await bin(['classifier', 'train', '--set', FIXTURE_SET, '--out', first, '--bits', '12', '--epochs', '10', '--seed', '3']);
  assert.equal(trained.code, 0, trained.err);
  assert.equal(trained.err, '');
  const lines = trained.out.trim().split('\n');
  assert.equal(lines[0], `trained: 62 examples from ${FIXTURE_SET} (sha256 ${createHash('sha256').update(readFileSync(FIXTURE_SET)).digest('hex').slice(0, 12)}), 10 epochs, 2^12 buckets, seed 3`);
  assert.match(lines[1]!, /^time: \d+\.\d s$/);
  assert.equal(lines[2], `written: ${first} (${readFileSync(first).length} bytes)`);
  assert.equal((await bin(['classifier', 'train', '--set', FIXTURE_SET, '--out', second, '--bits', '12', '--epochs', '10', '--seed', '3'])).code, 0);
  assert.ok(readFileSync(first).equals(readFileSync(second)), 'two trainings wrote different files');
  const artifact = JSON.parse(readFileSync(first, 'utf8')) as { hash_bits: number; trained: Record<string, unknown> };
  assert.equal(artifact.hash_bits, 12);
  assert.deepEqual(artifact.trained, { examples: 62, set_sha256: createHash('sha256').update(readFileSync(FIXTURE_SET)).digest('hex'), epochs: 10, l2: 1e-6, learning_rate: DEFAULT_TRAIN_OPTIONS.learningRate, seed: 3 });

  const evaluated = await bin(['classifier', 'eval', '--set', FIXTURE_SET, '--model', first]);
  assert.equal(evaluated.code, 0, evaluated.err);
  const text = evaluated.out;
  for (const expected of [
    `model: ${first}`, 'raise_below_confidence: 0', 'prompts: 62', 'complexity agreement: ', 'under-routing: ', 'over-routing: ', 'task agreement: ',
    'complexity confusion (rows: label, columns: verdict)', '| label \\ verdict | simple | medium | complex | frontier |',
    'task confusion (rows: label, columns: verdict)', '| label \\ verdict | chat | simple_qa | classification |',
    '| lang:zh | 4 |', '| tag:multi_turn | 10 |',
  ]) assert.ok(text.includes(expected), `missing ${JSON.stringify(expected)} in\n${text}`);
  // The confusion matrix's rows sum to the labels' counts (19 simple, 17 medium, 15 complex, 11 frontier).
  const rows = ['simple', 'medium', 'complex', 'frontier'].map((label) => text.split('\n').find((l) => l.startsWith(`| ${label} | `))!);
  assert.deepEqual(rows.map((r) => r.split('|').slice(2, 6).reduce((sum, n) => sum + Number(n), 0)), [19, 17, 15, 11]);

  const json = await bin(['classifier', 'eval', '--set', FIXTURE_SET, '--model', first, '--json', '--raise-below-confidence', '0.6']);
  assert.equal(json.code, 0, json.err);
  const e = JSON.parse(json.out) as { prompts: number; raiseBelowConfidence: number; complexityConfusion: number[][]; byGroup: Record<string, unknown> };
  assert.equal(e.prompts, 62);
  assert.equal(e.raiseBelowConfidence, 0.6);
  assert.equal(e.complexityConfusion.length, 4);
  assert.ok('lang:ja' in e.byGroup);
});

test('classifier: a bad set line is exit 1 with file:line and no stack; a bad model file is exit 1 with its reasons', async (t) => {
  const dir = tempDir(t);
  const set = join(dir, 'set.jsonl');
  writeFileSync(set, `${JSON.stringify({ text: 'hi', complexity: 'simple', task: 'chat' })}\n${JSON.stringify({ text: 'hi', complexity: 'easy', task: 'chat' })}\n`);
  const train = await bin(['classifier', 'train', '--set', set, '--out', join(dir, 'm.json')]);
  assert.deepEqual(train, { code: 1, out: '', err: `invalid labelled set ${set}:\n  - ${set}:2: complexity: expected one of simple, medium, complex, frontier\n` });
  const evaluated = await bin(['classifier', 'eval', '--set', set, '--model', FIXTURE_SET]);
  assert.equal(evaluated.code, 1);
  assert.match(evaluated.err, new RegExp(`^${FIXTURE_SET.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}: not JSON \\(`));
  assert.doesNotMatch(evaluated.err, /\n\s+at /);
  const model = join(dir, 'model.json');
  writeFileSync(model, JSON.stringify({ format: 'signalbox-classifier', version: 2 }));
  const old = cli(['classifier', 'eval', '--set', FIXTURE_SET, '--model', model]);
  assert.equal(old.code, 1);
  assert.ok(old.err.startsWith(`${model}: version: expected 1`), old.err);
  const missing = cli(['classifier', 'eval', '--set', FIXTURE_SET, '--model', join(dir, 'none.json')]);
  assert.deepEqual(missing, { code: 1, out: '', err: `${join(dir, 'none.json')}: cannot read the classifier model (ENOENT)` });
  // An unwritable output is exit 1 with the reason, after the set was read.
  const unwritable = cli(['classifier', 'train', '--set', FIXTURE_SET, '--out', join(dir, 'no-such-dir', 'm.json'), '--bits', '10', '--epochs', '1']);
  assert.deepEqual(unwritable, { code: 1, out: '', err: `${join(dir, 'no-such-dir', 'm.json')}: cannot write the model (ENOENT)` });
});

test('classifier: wrong usage is exit 2 with the reason and the usage', () => {
  for (const [argv, reason] of [
    [[], 'a subcommand is required'],
    [['fit'], 'unknown subcommand "fit"'],
    [['train', '--out', 'm.json'], '--set is required'],
    [['train', '--set', 's.jsonl'], '--out is required'],
    [['train', '--set', 's.jsonl', '--out', 'm.json', '--bits', '21'], '--bits: expected an integer from 10 to 20, got "21"'],
    [['train', '--set', 's.jsonl', '--out', 'm.json', '--epochs', '0'], '--epochs: expected an integer from 1 to 1000, got "0"'],
    [['train', '--set', 's.jsonl', '--out', 'm.json', '--seed', '-1'], '--seed: expected an integer from 0 to 4294967295, got "-1"'],
    [['train', '--set', 's.jsonl', '--out', 'm.json', '--set', 't.jsonl'], '--set given twice'],
    [['train', '--set'], '--set needs a value'],
    [['eval', '--set', 's.jsonl', '--raise-below-confidence', '1.5'], '--raise-below-confidence: expected a number from 0 to 1, got "1.5"'],
    [['eval', '--set', 's.jsonl', '--raise-below-confidence', ''], '--raise-below-confidence: expected a number from 0 to 1, got ""'],
    [['eval', '--set', 's.jsonl', '--verbose'], 'unknown argument "--verbose"'],
  ] as const) {
    const run = cli(['classifier', ...argv]);
    assert.equal(run.code, 2, argv.join(' '));
    assert.ok(run.err.startsWith(`signalbox classifier: ${reason}\nusage:\n  signalbox classifier train`), `${argv.join(' ')}: ${run.err}`);
  }
  assert.match(cli(['help']).out, /signalbox classifier eval --set test\.jsonl/);
});
