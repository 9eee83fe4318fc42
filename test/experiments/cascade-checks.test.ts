import assert from 'node:assert/strict';
import { test } from 'node:test';
import { asksJson, checkAnswer, checkWindow } from '../../src/experiments/cascade-checks.js';
import type { CascadeChecks } from '../../src/rules/cascade.js';

const checks: CascadeChecks = {
  minLength: 20,
  refusalPhrases: ["I'm sorry", "I can't"],
  uncertaintyPhrases: ["I'm not sure"],
  json: 'auto',
};
const LONG = 'Paris is the capital of France, on the Seine.';

test('checkAnswer: a long, plain answer passes', () => {
  assert.equal(checkAnswer(LONG, checks, false), undefined);
});

test('checkAnswer: short, refusal, uncertain, in that order', () => {
  assert.equal(checkAnswer('Paris.', checks, false), 'short');
  assert.equal(checkAnswer('', checks, false), 'short');
  // Short wins over refusal: the first failing check in the documented order.
  assert.equal(checkAnswer("I'm sorry.", checks, false), 'short');
  assert.equal(checkAnswer("  \n I'M SORRY, but I cannot help with that request.", checks, false), 'refusal');
  // The typographic apostrophe is the same phrase.
  assert.equal(checkAnswer('I\u2019m sorry, but I cannot help with that request.', checks, false), 'refusal');
  // A refusal phrase that does not start the answer is no refusal.
  assert.equal(checkAnswer("Paris. I can't say more about the Seine here.", checks, false), undefined);
  assert.equal(checkAnswer("Paris, I think, but i'm NOT sure about it at all.", checks, false), 'uncertain');
});

test('checkAnswer: JSON auto checks only when the request asked for JSON; true always; false never', () => {
  const bad = 'Here is the JSON you asked for: {"a": 1}';
  assert.equal(checkAnswer(bad, checks, false), undefined);
  assert.equal(checkAnswer(bad, checks, true), 'invalid_json');
  assert.equal(checkAnswer('{"capital": "Paris", "country": "France"}', checks, true), undefined);
  assert.equal(checkAnswer('{"capital": "Paris", "country": "Fra', checks, true), 'invalid_json');
  // A fence is not tolerated: the client parses the content as JSON.
  assert.equal(checkAnswer('```json\n{"capital": "Paris"}\n```', checks, true), 'invalid_json');
  assert.equal(checkAnswer(bad, { ...checks, json: true }, false), 'invalid_json');
  assert.equal(checkAnswer(bad, { ...checks, json: false }, true), undefined);
});

test('checkAnswer: no min_length and no phrases check nothing but JSON', () => {
  const none: CascadeChecks = { minLength: undefined, refusalPhrases: [], uncertaintyPhrases: [], json: false };
  assert.equal(checkAnswer('', none, true), undefined);
  assert.equal(checkAnswer("I'm sorry", none, false), undefined);
});

test('checkWindow: an incomplete prefix fails only what it proves', () => {
  // Not short yet: more may come.
  assert.equal(checkWindow('Par', false, checks, false), undefined);
  // A prefix of a refusal phrase proves nothing yet.
  assert.equal(checkWindow("I'm so", false, checks, false), undefined);
  assert.equal(checkWindow(" I'm sorry, but", false, checks, false), 'refusal');
  assert.equal(checkWindow("The answer: i'm not sure", false, checks, false), 'uncertain');
  // JSON mode: a first non-blank character that cannot start JSON fails; a JSON text cut in the middle does not.
  assert.equal(checkWindow('  Sure! Here', false, checks, true), 'invalid_json');
  assert.equal(checkWindow('```json\n{', false, checks, true), 'invalid_json');
  assert.equal(checkWindow('\n{"capital": "Par', false, checks, true), undefined);
  assert.equal(checkWindow('   ', false, checks, true), undefined);
  assert.equal(checkWindow('Sure! Here', false, checks, false), undefined);
});

test('checkWindow: a complete window is checked whole', () => {
  assert.equal(checkWindow('Paris.', true, checks, false), 'short');
  assert.equal(checkWindow('{"capital": "Paris", "country": "Fra', true, checks, true), 'invalid_json');
  assert.equal(checkWindow(LONG, true, checks, false), undefined);
});

test('asksJson: json_object and json_schema ask; text and anything else do not', () => {
  assert.equal(asksJson({ response_format: { type: 'json_object' } }), true);
  assert.equal(asksJson({ response_format: { type: 'json_schema', json_schema: {} } }), true);
  assert.equal(asksJson({ response_format: { type: 'text' } }), false);
  assert.equal(asksJson({ response_format: 'json_object' }), false);
  assert.equal(asksJson({ response_format: null }), false);
  assert.equal(asksJson({}), false);
});
