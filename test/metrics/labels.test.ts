import assert from 'node:assert/strict';
import { test } from 'node:test';
import { MAX_CLIENT_TEXT_CHARS } from '../../src/bounded-text.js';
import { ModelLabels, OTHER } from '../../src/metrics/labels.js';

test('a requested model named by the allow-list keeps its name', () => {
  const labels = new ModelLabels(['openai/gpt-4o-mini', 'anthropic/claude-3.5-sonnet'], 10);
  assert.equal(labels.requested('openai/gpt-4o-mini'), 'openai/gpt-4o-mini');
  assert.equal(labels.requested('anthropic/claude-3.5-sonnet'), 'anthropic/claude-3.5-sonnet');
});

test('a requested model added by addKnown keeps its name', () => {
  const labels = new ModelLabels([], 10);
  assert.equal(labels.requested('google/gemini-2.0-flash-001'), OTHER);
  labels.addKnown(['google/gemini-2.0-flash-001']);
  assert.equal(labels.requested('google/gemini-2.0-flash-001'), 'google/gemini-2.0-flash-001');
});

test('an unknown requested model is labelled other', () => {
  const labels = new ModelLabels(['openai/gpt-4o-mini'], 10);
  assert.equal(OTHER, 'other');
  assert.equal(labels.requested('invented/model-1'), 'other');
  assert.equal(labels.requested('invented/model-2'), 'other');
  // Asking for a model never makes it known, however often.
  assert.equal(labels.requested('invented/model-1'), 'other');
});

test('a request without a model is labelled none', () => {
  const labels = new ModelLabels(['openai/gpt-4o-mini'], 10);
  assert.equal(labels.requested(undefined), 'none');
});

test('a known served or routed model keeps its name even when the served budget is spent', () => {
  const labels = new ModelLabels(['openai/gpt-4o-mini'], 1);
  labels.addKnown(['anthropic/claude-3.5-sonnet']);
  assert.equal(labels.served('served/a'), 'served/a');
  assert.equal(labels.served('served/b'), 'other');
  assert.equal(labels.model('openai/gpt-4o-mini'), 'openai/gpt-4o-mini');
  assert.equal(labels.model('anthropic/claude-3.5-sonnet'), 'anthropic/claude-3.5-sonnet');
});

test('unknown served models keep their names up to maxServed, later ones are other', () => {
  const labels = new ModelLabels([], 3);
  assert.deepEqual(['s/1', 's/2', 's/3'].map((m) => labels.served(m)), ['s/1', 's/2', 's/3']);
  assert.equal(labels.served('s/4'), 'other');
  assert.equal(labels.served('s/5'), 'other');
  // The first three keep their slots, also where a name is only routed or attempted; the fourth never gets one.
  assert.deepEqual(['s/1', 's/2', 's/3', 's/4'].map((m) => labels.served(m)), ['s/1', 's/2', 's/3', 'other']);
  assert.deepEqual(['s/1', 's/2', 's/3', 's/4'].map((m) => labels.model(m)), ['s/1', 's/2', 's/3', 'other']);
});

test('an unknown served model does not make the same name known as a requested model', () => {
  const labels = new ModelLabels([], 5);
  assert.equal(labels.served('s/1'), 's/1');
  assert.equal(labels.requested('s/1'), 'other');
});

test('maxServed 0 labels every unknown served model other', () => {
  const labels = new ModelLabels(['openai/gpt-4o-mini'], 0);
  assert.equal(labels.served('s/1'), 'other');
  assert.equal(labels.served('s/2'), 'other');
  assert.equal(labels.served('openai/gpt-4o-mini'), 'openai/gpt-4o-mini');
});

test('a model only routed to, attempted or asked for never takes a served slot', () => {
  const labels = new ModelLabels([], 2);
  for (let i = 0; i < 150; i++) assert.equal(labels.model(`junk/${i}`), 'other');
  // Both slots are still free for models a successful response reports.
  assert.deepEqual(['real/a', 'real/b', 'real/c'].map((m) => labels.served(m)), ['real/a', 'real/b', 'other']);
  assert.deepEqual(['real/a', 'junk/0'].map((m) => labels.model(m)), ['real/a', 'other']);
});

test('a served model name longer than MAX_CLIENT_TEXT_CHARS never takes a slot', () => {
  const labels = new ModelLabels([], 5);
  const long = 'x'.repeat(MAX_CLIENT_TEXT_CHARS + 1);
  assert.equal(labels.served(long), 'other');
  assert.equal(labels.served('x'.repeat(MAX_CLIENT_TEXT_CHARS)), 'x'.repeat(MAX_CLIENT_TEXT_CHARS));
});

test('names added by an earlier addKnown stay known after another addKnown', () => {
  const labels = new ModelLabels(['allow/listed'], 0);
  labels.addKnown(['rules/v1-a', 'rules/v1-b']);
  labels.addKnown(['rules/v2-a']);
  for (const m of ['allow/listed', 'rules/v1-a', 'rules/v1-b', 'rules/v2-a']) {
    assert.equal(labels.requested(m), m);
    assert.equal(labels.model(m), m);
  }
  assert.equal(labels.requested('rules/never'), 'other');
  assert.equal(labels.model('rules/never'), 'other');
});

test('with a model catalog loaded, only a served model the catalog lists takes a slot; without one, any served model does', () => {
  let catalog: ReadonlySet<string> | undefined;
  const labels = new ModelLabels([], 5, (model) => (catalog === undefined ? undefined : catalog.has(model)));
  assert.equal(labels.served('echoed/junk-1'), 'echoed/junk-1', 'no catalog yet: the upstream\'s answer vouches for the name');
  catalog = new Set(['openai/gpt-4o']);
  assert.equal(labels.served('echoed/junk-2'), 'other', 'a name the catalog does not list takes no slot');
  assert.equal(labels.served('openai/gpt-4o'), 'openai/gpt-4o');
  assert.equal(labels.model('echoed/junk-1'), 'echoed/junk-1', 'a slot taken earlier stays, so dashboards do not flip');
});
