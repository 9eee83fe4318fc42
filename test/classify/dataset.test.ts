import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test, type TestContext } from 'node:test';
import { DatasetError, MAX_SET_BYTES, readLabelledSet } from '../../src/classify/dataset.js';
import { FIXTURE_SET } from '../support/classifier.js';

function tempFile(t: TestContext, text: string): string {
  const dir = mkdtempSync(join(tmpdir(), 'signalbox-set-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, 'set.jsonl');
  writeFileSync(file, text);
  return file;
}

function problemsOf(file: string): readonly string[] {
  try {
    readLabelledSet(file);
  } catch (err) {
    assert.ok(err instanceof DatasetError);
    return err.problems;
  }
  assert.fail('expected a DatasetError');
}

const ok = (fields: Record<string, unknown>): string => JSON.stringify({ text: 'hi', complexity: 'simple', task: 'chat', ...fields });

test('dataset: each kind of bad line is reported as file:line: what is wrong, all of them at once', (t) => {
  const lines = [
    ok({}),
    '', // blank lines are skipped but counted
    '{"text": "hi", ',
    '[1, 2]',
    ok({ complexity: 'hard' }),
    ok({ task: 'poetry' }),
    ok({ text: '   ' }),
    ok({ messages: [{ role: 'user', content: 'x' }] }),
    JSON.stringify({ complexity: 'simple', task: 'chat' }),
    JSON.stringify({ messages: [{ role: 'user', content: 'x' }, { role: 'robot' }], complexity: 'simple', task: 'chat' }),
    JSON.stringify({ messages: [{ role: 'assistant', content: 'x' }], complexity: 'simple', task: 'chat' }),
    ok({ id: 7 }),
    ok({ lang: ['en'] }),
    ok({ tags: 'code' }),
  ];
  const file = tempFile(t, lines.join('\n'));
  const problems = problemsOf(file);
  assert.deepEqual(problems.map((p) => p.replace(/ \((Unexpected|Expected|system, ).*\)$/, ' (...)')), [
    `${file}:3: not JSON (...)`,
    `${file}:4: expected a JSON object`,
    `${file}:5: complexity: expected one of simple, medium, complex, frontier`,
    `${file}:6: task: expected one of chat, simple_qa, classification, translation, summarization, extraction, creative_writing, code_generation, code_review, analysis, math, deep_reasoning`,
    `${file}:7: text: empty`,
    `${file}:8: expected exactly one of "text" (a string) or "messages" (a chat messages array)`,
    `${file}:9: expected exactly one of "text" (a string) or "messages" (a chat messages array)`,
    `${file}:10: messages[1]: expected an object with a role (...)`,
    `${file}:11: messages: no user message`,
    `${file}:12: id: expected a string`,
    `${file}:13: lang: expected a string`,
    `${file}:14: tags: expected a list of strings`,
  ]);
  // The error's message carries the positions too (what the CLI prints).
  assert.throws(() => readLabelledSet(file), (err: Error) => err.message.startsWith(`invalid labelled set ${file}:\n  - ${file}:3: not JSON`));
});

test('dataset: text and messages lines become the classifier input of their last user turn; ids default to the line', (t) => {
  const file = tempFile(t, [
    JSON.stringify({ id: 'a', lang: 'en', tags: ['x'], text: 'What is 2+2?', complexity: 'simple', task: 'math' }),
    JSON.stringify({ messages: [{ role: 'system', content: 's' }, { role: 'user', content: 'write code' }, { role: 'assistant', content: 'ok' }, { role: 'user', content: 'thanks!' }], complexity: 'simple', task: 'chat' }),
    '',
  ].join('\n'));
  const set = readLabelledSet(file);
  assert.equal(set.sha256, createHash('sha256').update(readFileSync(file)).digest('hex'));
  const [a, b] = set.prompts;
  assert.deepEqual({ id: a!.id, lang: a!.lang, tags: a!.tags, text: a!.input.text, messages: a!.input.conversation.messages }, { id: 'a', lang: 'en', tags: ['x'], text: 'What is 2+2?', messages: 1 });
  assert.deepEqual({ id: b!.id, lang: b!.lang, tags: b!.tags, text: b!.input.text, userTurns: b!.input.conversation.userTurns, hasSystem: b!.input.conversation.hasSystem }, { id: 'line-2', lang: undefined, tags: [], text: 'thanks!', userTurns: 2, hasSystem: true });
  assert.equal(readLabelledSet(FIXTURE_SET).prompts.length, 62);
});

test('dataset: a set over MAX_SET_BYTES is refused before it is read; missing and empty sets are errors', (t) => {
  const file = tempFile(t, ok({}));
  truncateSync(file, MAX_SET_BYTES + 1); // sparse: no 64 MiB written
  assert.deepEqual(problemsOf(file), [`${file}: the labelled set is larger than ${MAX_SET_BYTES} bytes (64 MiB), the limit`]);
  truncateSync(file, 0);
  assert.deepEqual(problemsOf(file), [`${file}: no labelled prompts`]);
  assert.deepEqual(problemsOf(`${file}.missing`), [`${file}.missing: cannot read the labelled set (ENOENT)`]);
});
