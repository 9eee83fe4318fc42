import assert from 'node:assert/strict';
import { test } from 'node:test';
import { HISTORY_SCAN_CHARS, WINDOW_HEAD_CHARS, WINDOW_TAIL_CHARS, classifierInput, textInput, windowOf } from '../../src/classify/window.js';

const WINDOW = WINDOW_HEAD_CHARS + WINDOW_TAIL_CHARS;

test('window: the last user turn is what is classified; assistant, tool and non-message elements are not', () => {
  const input = classifierInput([
    'not a message', null, [1],
    { role: 'system', content: 'be brief' },
    { role: 'user', content: 'first question' },
    { role: 'assistant', content: 'an answer', tool_calls: [{ id: 'c1' }] },
    { role: 'tool', content: 'TOOL OUTPUT must not be read' },
    { role: 'user', content: [{ type: 'text', text: 'second' }, { type: 'image_url', image_url: { url: 'x' } }, { type: 'tool_result', text: 'TOOL RESULT' }, { type: 'text', text: 'question' }] },
    { role: 'assistant', content: 'partial' },
  ]);
  assert.equal(input.text, 'second\nquestion');
  assert.equal(input.turnChars, 'second\nquestion'.length);
  assert.deepEqual(input.conversation, {
    messages: 9, userTurns: 2, assistantTurns: 2, toolMessages: 2, hasSystem: true,
    totalChars: 'be brief'.length + 'first question'.length + 'an answer'.length + 'TOOL OUTPUT must not be read'.length + 'second'.length + 'TOOL RESULT'.length + 'question'.length + 'partial'.length,
    historyFences: 0,
  });
});

test('window: no user turn is an empty window', () => {
  const input = classifierInput([{ role: 'system', content: 'x' }, { role: 'tool', content: 'y' }]);
  assert.equal(input.text, '');
  assert.equal(input.turnChars, 0);
  assert.equal(classifierInput([]).text, '');
});

test('window: a turn of exactly 4,096 code units is kept whole; one more is cut to its head and tail around a newline', () => {
  const fits = 'h'.repeat(WINDOW_HEAD_CHARS) + 't'.repeat(WINDOW_TAIL_CHARS);
  assert.equal(WINDOW, 4096);
  assert.equal(windowOf(fits), fits);
  assert.equal(textInput(fits).text, fits);
  const over = 'H'.repeat(WINDOW_HEAD_CHARS) + 'm' + 'T'.repeat(WINDOW_TAIL_CHARS);
  const cut = textInput(over);
  assert.equal(cut.text, `${'H'.repeat(WINDOW_HEAD_CHARS)}\n${'T'.repeat(WINDOW_TAIL_CHARS)}`);
  assert.equal(cut.text.length, WINDOW + 1);
  assert.equal(cut.turnChars, WINDOW + 1);
  // A megabyte pasted costs the same window.
  const huge = textInput(`${'a'.repeat(1024 * 1024)}what date was it signed?`);
  assert.equal(huge.text.length, WINDOW + 1);
  assert.ok(huge.text.endsWith('what date was it signed?'));
});

test('window: code fences of earlier turns are counted within HISTORY_SCAN_CHARS only, newest first', () => {
  const fence = '```js\nx\n```';
  const newer = `${fence}${'.'.repeat(HISTORY_SCAN_CHARS - fence.length + 5)}${fence}`; // the second fence starts 5 code units past the budget
  const input = classifierInput([
    { role: 'user', content: `${fence}${fence}` }, // older than the whole budget: never read
    { role: 'assistant', content: newer },
    { role: 'user', content: 'thanks' },
  ]);
  // The first fence pair counts (2 markers); the pair after the budget does not, nor the older turn.
  assert.equal(input.conversation.historyFences, 2);
  const small = classifierInput([{ role: 'user', content: fence }, { role: 'assistant', content: fence }, { role: 'user', content: 'ok' }]);
  assert.equal(small.conversation.historyFences, 4);
});
