import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { Classification } from '../../src/classify/labels.js';
import { compileRules, RulesError } from '../../src/rules/compile.js';
import { compileRulesText } from '../../src/rules-file/loader.js';
import type { JsonObject, RequestContext } from '../../src/rules/decision.js';
import { builtinFields, type FieldRegistry } from '../../src/rules/fields.js';
import { DEFAULT_STICK_TTL_MS, MAX_STICK_VALUE_CHARS, stickyKey } from '../../src/rules/tier-from.js';
import { StickyTiers } from '../../src/server/sticky-tiers.js';

const TIERS = `
version: 1
tiers:
  budget: { model: cheap/model }
  standard: { model: std/model, fallbacks: [std/backup] }
  premium: { model: top/model, max_tokens: 4096 }
`;

/** `problems` of a file that must not load, each `file:line:col: message`. */
function problemsOf(text: string, fields?: FieldRegistry): readonly string[] {
  try {
    compileRulesText(text, 'tf.yaml', fields === undefined ? {} : { fields });
  } catch (err) {
    assert.ok(err instanceof RulesError, String(err));
    return err.problems;
  }
  assert.fail('expected a RulesError');
}

/** 1-based `line:col` of `needle`, which must occur once in `text`. */
function at(text: string, needle: string): string {
  const offset = text.indexOf(needle);
  assert.ok(offset >= 0 && text.indexOf(needle, offset + 1) === -1, `${needle} must occur once`);
  const before = text.slice(0, offset).split('\n');
  return `${before.length}:${before.at(-1)!.length + 1}`;
}

const body = (content = 'hi'): JsonObject => ({ model: 'auto', messages: [{ role: 'user', content }] });
const verdict = (complexity: Classification['complexity'], confidence: number): Classification => ({ complexity, task: 'chat', confidence, method: 'llm' });

function context(headers: Record<string, string>, extra: Partial<RequestContext> = {}): RequestContext {
  return { headers, body: body(), requestedModel: 'auto', ...extra };
}

const LEVEL_RULES = `${TIERS}rules:
  - name: by-level
    when: { header.x-route: level }
    route:
      tier_from: { field: header.x-level, map: { low: budget, high: premium } }
  - name: by-level-default
    when: { header.x-route: default }
    route:
      tier_from: { field: header.x-level, map: { low: budget }, default: standard }
      retry: { max_attempts: 1 }
  - name: fallback
    route: { model: other/model }
`;

test('tier_from routes to the tier the map names for the value read, with the tier\'s actions', () => {
  const rules = compileRulesText(LEVEL_RULES, 'tf.yaml');
  const high = rules.decide(context({ 'x-route': 'level', 'x-level': 'high' }));
  assert.deepEqual([high.rule, high.tier, high.model, high.body.max_tokens], ['by-level', 'premium', 'top/model', 4096]);
  const low = rules.decide(context({ 'x-route': 'level', 'x-level': 'low' }));
  assert.deepEqual([low.tier, low.model], ['budget', 'cheap/model']);
  assert.ok(rules.models.includes('std/backup'), 'the models a tier_from can route to are the rules\' models (metrics, catalog check)');
});

test('tier_from: a value the map does not name goes to the default, also a missing one; the rule\'s retry wins', () => {
  const rules = compileRulesText(LEVEL_RULES, 'tf.yaml');
  const other = rules.decide(context({ 'x-route': 'default', 'x-level': 'weird' }));
  assert.deepEqual([other.rule, other.tier, other.body.models], ['by-level-default', 'standard', ['std/model', 'std/backup']]);
  assert.equal(other.retry?.maxAttempts, 1);
  const missing = rules.decide(context({ 'x-route': 'default' }));
  assert.equal(missing.tier, 'standard');
});

test('tier_from without a default: an unmapped or missing value lets evaluation go on, and the trace says why', () => {
  const rules = compileRulesText(LEVEL_RULES, 'tf.yaml');
  assert.equal(rules.decide(context({ 'x-route': 'level', 'x-level': 'weird' })).rule, 'fallback');
  assert.equal(rules.decide(context({ 'x-route': 'level', 'x-level': '__proto__' })).rule, 'fallback', 'the map is no object: __proto__ names nothing');
  const explained = rules.explain(context({ 'x-route': 'level', 'x-level': 'weird' }));
  assert.equal(explained.rule, 'fallback');
  assert.deepEqual(explained.trace[0], { rule: 'by-level', matched: true, skipped: 'the map names no tier for header.x-level = "weird", and there is no default' });
  const missing = rules.explain(context({ 'x-route': 'level' }));
  assert.deepEqual(missing.trace[0], { rule: 'by-level', matched: true, skipped: 'header.x-level has no value, and there is no default' });
});

const AUTO = (extra = '') => `${TIERS}rules:
  - name: auto
    route:
      tier_from:
        field: classify.complexity
        map: { simple: budget, medium: budget, complex: standard, frontier: premium }
${extra}`;

test('raise_below_confidence moves exactly the verdicts below the threshold one label up; frontier stays', () => {
  const rules = compileRulesText(AUTO('        raise_below_confidence: 0.6\n'), 'tf.yaml');
  const tierOf = (v: Classification) => rules.decide(context({}, { resolved: { classification: v } })).tier;
  assert.equal(tierOf(verdict('medium', 0.59)), 'standard', 'unsure medium -> complex');
  assert.equal(tierOf(verdict('medium', 0.6)), 'budget', 'at the threshold: not raised');
  assert.equal(tierOf(verdict('simple', 0.2)), 'budget', 'unsure simple -> medium, still budget');
  assert.equal(tierOf(verdict('complex', 0.5)), 'premium');
  assert.equal(tierOf(verdict('complex', 0.9)), 'standard');
  assert.equal(tierOf(verdict('frontier', 0.1)), 'premium', 'frontier has nowhere to go');
  const plain = compileRulesText(AUTO(), 'tf.yaml');
  assert.equal(plain.decide(context({}, { resolved: { classification: verdict('medium', 0.1) } })).tier, 'budget', 'no threshold: no raise');
});

test('tier_from on classify.* reads the verdict once, makes the rules read classification, and explain shows it', () => {
  const rules = compileRulesText(AUTO('        raise_below_confidence: 0.6\n'), 'tf.yaml');
  assert.equal(rules.readsClassification, true, 'the asynchronous step must know the rules read a verdict');
  const explained = rules.explain(context({}, { resolved: { classification: verdict('medium', 0.4) } }));
  assert.deepEqual(explained.tier_from, { field: 'classify.complexity', value: 'medium', confidence: 0.4, method: 'llm', raised_from: 'medium', tier: 'standard' });
  assert.equal(explained.tier, 'standard');
  assert.equal(explained.fields['classify.complexity'], 'medium');
  assert.deepEqual(explained.route, { model: 'std/model', tier: 'standard', fallbacks: ['std/backup'] });
  const sure = rules.explain(context({}, { resolved: { classification: verdict('complex', 0.9) } }));
  assert.deepEqual(sure.tier_from, { field: 'classify.complexity', value: 'complex', confidence: 0.9, method: 'llm', tier: 'standard' });
  assert.equal(compileRulesText(LEVEL_RULES, 'tf.yaml').readsClassification, false);
});

test('tier_from on the local classifier: no verdict exists until the rule reads it', () => {
  const rules = compileRulesText(AUTO(), 'tf.yaml');
  const d = rules.decide({ headers: {}, body: body('what is the capital of France?'), requestedModel: 'auto' });
  assert.equal(d.classification?.method, 'local');
  assert.equal(d.tier, d.classification.complexity === 'frontier' ? 'premium' : d.classification.complexity === 'complex' ? 'standard' : 'budget');
});

const STICKY = (ttl = '') => AUTO(`        stick_by: header.x-session-id\n${ttl}`);

test('stick_by: a miss classifies and hands the tier to keep; a hit uses the kept tier and classifies nothing', () => {
  const rules = compileRulesText(STICKY(), 'tf.yaml');
  const store = new StickyTiers();
  const first = rules.decide(context({ 'x-session-id': 's1' }, { stickyTiers: store, resolved: { classification: verdict('frontier', 0.9) } }));
  assert.deepEqual(first.stick, { key: 'auto:s1', tier: 'premium', ttlMs: DEFAULT_STICK_TTL_MS });
  store.set(first.stick!.key, first.stick!.tier, first.stick!.ttlMs);

  // The second turn would classify simple; the conversation keeps premium, and no verdict is made.
  const second = rules.decide({ headers: { 'x-session-id': 's1' }, body: body('thanks'), requestedModel: 'auto', stickyTiers: store });
  assert.deepEqual([second.tier, second.model, second.stick, second.classification], ['premium', 'top/model', undefined, undefined]);
  const explained = rules.explain({ headers: { 'x-session-id': 's1' }, body: body('thanks'), requestedModel: 'auto', stickyTiers: store });
  assert.deepEqual(explained.tier_from, { field: 'classify.complexity', tier: 'premium', sticky: 'hit' });

  const other = rules.decide(context({ 'x-session-id': 's2' }, { stickyTiers: store, resolved: { classification: verdict('simple', 0.9) } }));
  assert.deepEqual([other.tier, other.stick?.tier], ['budget', 'budget'], 'another conversation has its own tier');
  const explainedMiss = rules.explain(context({ 'x-session-id': 's2' }, { stickyTiers: store, resolved: { classification: verdict('simple', 0.9) } }));
  assert.equal(explainedMiss.tier_from?.sticky, 'stored');
});

test('stick_by: no session value, no stickiness; the TTL is the rule\'s; a long value is keyed by its digest', () => {
  const rules = compileRulesText(STICKY('        stick_ttl_ms: 60000\n'), 'tf.yaml');
  const resolved = { classification: verdict('complex', 0.9) };
  assert.equal(rules.decide(context({}, { resolved })).stick, undefined);
  assert.equal(rules.decide(context({ 'x-session-id': '' }, { resolved })).stick, undefined, 'an empty id names no conversation');
  assert.equal(rules.decide(context({ 'x-session-id': 'a' }, { resolved })).stick?.ttlMs, 60_000);
  const long = 'x'.repeat(16 * 1024);
  const key = rules.decide(context({ 'x-session-id': long }, { resolved })).stick!.key;
  assert.match(key, /^auto#[0-9a-f]{64}$/);
  assert.equal(key, stickyKey('auto', long));
  assert.equal(stickyKey('auto', 'y'.repeat(MAX_STICK_VALUE_CHARS)), `auto:${'y'.repeat(MAX_STICK_VALUE_CHARS)}`, 'up to the limit the value is the key');
});

test('stick_by after a reload: a kept tier the rules no longer route to is ignored, and the request is classified again', () => {
  const store = new StickyTiers();
  store.set('auto:s1', 'premium', 60_000);
  const reloaded = compileRulesText(`
version: 1
tiers:
  budget: { model: cheap/model }
  standard: { model: std/model }
rules:
  - name: auto
    route:
      tier_from: { field: classify.complexity, map: { simple: budget, medium: budget }, default: standard, stick_by: header.x-session-id }
`, 'tf.yaml');
  const d = reloaded.decide(context({ 'x-session-id': 's1' }, { stickyTiers: store, resolved: { classification: verdict('simple', 0.9) } }));
  assert.deepEqual([d.tier, d.stick?.tier, d.classification?.complexity], ['budget', 'budget', 'simple']);
});

test('StickyTiers: entries expire after their TTL of idleness (injected clock), a hit renews it', () => {
  let now = 1_000;
  const store = new StickyTiers({ now: () => now });
  store.set('a', 'premium', 100);
  now += 99;
  assert.equal(store.get('a'), 'premium');
  now += 99;
  assert.equal(store.get('a'), 'premium', 'the hit at +99 renewed the TTL');
  now += 100;
  assert.equal(store.get('a'), undefined, 'idle for the whole TTL: expired');
  assert.equal(store.size, 0, 'an expired entry read is dropped');
});

test('StickyTiers: bounded, least recently used evicted first; expired entries are dropped when storing', () => {
  let now = 0;
  const store = new StickyTiers({ maxEntries: 3, now: () => now });
  store.set('a', 't1', 1000);
  store.set('b', 't2', 1000);
  store.set('c', 't3', 1000);
  assert.equal(store.get('a'), 't1', 'a is now the most recently used');
  store.set('d', 't4', 1000);
  assert.equal(store.size, 3);
  assert.equal(store.get('b'), undefined, 'b was the least recently used');
  assert.deepEqual([store.get('a'), store.get('c'), store.get('d')], ['t1', 't3', 't4']);
  now += 1000;
  store.set('e', 't5', 1000);
  assert.equal(store.size, 1, 'the expired entries went when e was stored');
});

test('tier_from load errors name file:line:col and the field', () => {
  const text = `${TIERS}rules:
  - name: bad-tier
    when: { header.x-a: "1" }
    route:
      tier_from: { field: classify.complexity, map: { simple: budget, medium: cheapest, complex: standard, frontier: premium } }
  - name: bad-label
    when: { header.x-b: "1" }
    route:
      tier_from: { field: classify.task, map: { coding: budget }, default: standrd }
  - name: missing-labels
    when: { header.x-c: "1" }
    route:
      tier_from: { field: classify.complexity, map: { simple: budget, complex: standard } }
  - name: raise-elsewhere
    when: { header.x-d: "1" }
    route:
      tier_from: { field: header.x-level, map: { a: budget }, raise_below_confidence: 0.5 }
  - name: unknown-fields
    when: { header.x-e: "1" }
    route:
      tier_from: { field: classify.mood, map: { a: budget }, stick_by: session.id }
  - name: not-alone
    when: { header.x-f: "1" }
    route:
      tier_from: { field: header.x-level, map: { a: budget } }
      max_tokens: 10
`;
  const problems = problemsOf(text);
  const expected = [
    [at(text, 'cheapest'), 'rules[0] "bad-tier": unknown tier "cheapest" (tier_from maps to tiers; tiers: budget, standard, premium)'],
    [at(text, 'coding: budget'), 'rules[1] "bad-label": "coding" is not a label of classify.task (labels: chat, simple_qa,'],
    [at(text, 'standrd'), 'rules[1] "bad-label": unknown tier "standrd"'],
    [at(text, '{ simple: budget, complex: standard }'), 'rules[2] "missing-labels": labels of classify.complexity not mapped: medium, frontier (map every label, or give a default)'],
    [at(text, '0.5'), 'rules[3] "raise-elsewhere": raise_below_confidence moves a classify.complexity verdict one label up; it cannot apply to header.x-level'],
    [at(text, 'classify.mood'), 'rules[4] "unknown-fields": unknown field "classify.mood"'],
    [at(text, 'session.id'), 'rules[4] "unknown-fields": unknown field "session.id"'],
    [at(text, 'tier_from: { field: header.x-level, map: { a: budget } }'), 'rules[5] "not-alone": route.tier_from stands alone; remove "max_tokens"'],
  ];
  assert.equal(problems.length, expected.length, problems.join('\n'));
  problems.forEach((p, i) => assert.ok(p.startsWith(`tf.yaml:${expected[i]![0]}: ${expected[i]![1]}`), `${p}\n  expected: tf.yaml:${expected[i]![0]}: ${expected[i]![1]}`));
});

test('tier_from schema: a map and a field are required, the TTL is bounded', () => {
  const problems = problemsOf(`${TIERS}rules:
  - name: auto
    route:
      tier_from: { field: classify.complexity, stick_by: header.x-s, stick_ttl_ms: 999999999999 }
`);
  assert.ok(problems.some((p) => /tier_from must have required property 'map'/.test(p)), problems.join('\n'));
  assert.ok(problems.some((p) => /stick_ttl_ms must be <= 86400000/.test(p)), problems.join('\n'));
});

test('tier_from with a custom field registry: any field the registry knows', () => {
  const fields = builtinFields().register({ match: 'exact', name: 'team.level', description: 'test', compile: () => (input) => input.headers['x-team'] === 'ml' ? 'gpu' : undefined });
  const rules = compileRulesText(`${TIERS}rules:
  - name: team
    route: { tier_from: { field: team.level, map: { gpu: premium }, default: budget } }
`, 'tf.yaml', { fields });
  assert.equal(rules.decide(context({ 'x-team': 'ml' })).tier, 'premium');
  assert.equal(rules.decide(context({ 'x-team': 'web' })).tier, 'budget');
  assert.deepEqual(rules.explain(context({ 'x-team': 'ml' })).fields, { 'team.level': 'gpu' });
});

test('stick_by is per caller: another key sending the same session id neither reads nor sets this conversation\'s tier', () => {
  const rules = compileRulesText(STICKY(), 'tf.yaml');
  const store = new StickyTiers();
  const as = (name: string) => ({ name, tier: undefined, team: undefined, meta: {}, models: undefined, limits: {}, budgets: {}, users: undefined });
  const first = rules.decide(context({ 'x-session-id': 's1' }, { stickyTiers: store, caller: as('alice'), resolved: { classification: verdict('frontier', 0.9) } }));
  store.set(first.stick!.key, first.stick!.tier, first.stick!.ttlMs);
  assert.equal(first.stick!.key, 'auto@alice:s1');
  const other = rules.decide(context({ 'x-session-id': 's1' }, { stickyTiers: store, caller: as('mallory'), resolved: { classification: verdict('simple', 0.9) } }));
  assert.equal(other.tier, 'budget', 'mallory\'s turn is classified, not given alice\'s kept tier');
  const again = rules.decide(context({ 'x-session-id': 's1' }, { stickyTiers: store, caller: as('alice'), resolved: { classification: verdict('simple', 0.9) } }));
  assert.equal(again.tier, 'premium', 'alice keeps her tier');
});
