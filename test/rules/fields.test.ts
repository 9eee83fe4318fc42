import assert from 'node:assert/strict';
import type { IncomingHttpHeaders } from 'node:http';
import { test } from 'node:test';
import { contextNeeded, conservativePromptTokens, DEFAULT_COMPLETION_TOKENS } from '../../src/catalog/estimate.js';
import { compileRules, RulesError } from '../../src/rules/compile.js';
import type { JsonObject, RequestContext } from '../../src/rules/decision.js';
import { builtinFields, type FieldRegistry } from '../../src/rules/fields.js';

const NOW = new Date('2026-03-04T15:00:00Z'); // a Wednesday, 15:00 UTC (00:00 Thursday in Tokyo)

function ctx(headers: IncomingHttpHeaders = {}, body: JsonObject = {}, now: Date = NOW): RequestContext {
  return { headers, body, requestedModel: typeof body.model === 'string' ? body.model : undefined, now };
}

/** A rule set written as a JS object (JSON is YAML). */
function rulesOf(rules: object[], extra: object = {}, fields?: FieldRegistry) {
  return compileRules(JSON.stringify({ version: 1, ...extra, rules }), 'test.yaml', fields ? { fields } : {});
}

/** The value a field has for a request, as explain() reports it (null when missing). */
function fieldValue(field: string, body: JsonObject, headers: IncomingHttpHeaders = {}, extra: object = {}): unknown {
  const rs = rulesOf([{ name: 'probe', when: { [field]: { exists: true } }, route: { pass: true } }], extra);
  return rs.explain(ctx(headers, body)).fields[field];
}

/** Whether a field has a value (not undefined/null) for a request. */
function fieldExists(field: string, body: JsonObject, headers: IncomingHttpHeaders = {}): boolean {
  const rs = rulesOf([{ name: 'probe', when: { [field]: { exists: true } }, route: { pass: true } }]);
  return rs.decide(ctx(headers, body)).rule === 'probe';
}

function matches(when: object, headers: IncomingHttpHeaders, body: JsonObject = {}): boolean {
  return rulesOf([{ name: 'r', when, route: { pass: true } }]).decide(ctx(headers, body)).rule === 'r';
}

function loadProblems(rules: object[]): readonly string[] {
  try {
    rulesOf(rules);
  } catch (err) {
    assert.ok(err instanceof RulesError);
    return err.problems;
  }
  assert.fail('expected a RulesError');
}

// ---- header.<name> ----

test('header: the name in the rule is case-insensitive; the context has lower-case names', () => {
  assert.equal(matches({ 'header.X-Team': 'core' }, { 'x-team': 'core' }), true);
  assert.equal(matches({ 'header.X-Team': 'core' }, { 'x-team': 'infra' }), false);
  assert.equal(fieldValue('header.X-TEAM', {}, { 'x-team': 'core' }), 'core');
});

test('header: a repeated header reads its first value', () => {
  assert.equal(fieldValue('header.x-team', {}, { 'x-team': ['first', 'second'] }), 'first');
  assert.equal(matches({ 'header.x-team': 'second' }, { 'x-team': ['first', 'second'] }), false);
});

test('header: a missing header is missing', () => {
  assert.equal(fieldExists('header.x-team', {}, { 'x-other': 'a' }), false);
  assert.equal(fieldValue('header.x-team', {}, {}), null);
});

test('header: a UTF-8 value that Node decoded as latin1 matches the rule written in UTF-8', () => {
  const asNodeSeesIt = Buffer.from('équipe', 'utf8').toString('latin1');
  assert.notEqual(asNodeSeesIt, 'équipe');
  assert.equal(matches({ 'header.x-team': 'équipe' }, { 'x-team': asNodeSeesIt }), true);
  assert.equal(fieldValue('header.x-team', {}, { 'x-team': asNodeSeesIt }), 'équipe');
});

test('header: an invalid header name in a rule is a load error', () => {
  const problems = loadProblems([{ name: 'r', when: { 'header.x team': 'a' }, route: { pass: true } }]);
  assert.equal(problems.length, 1);
  assert.match(problems[0]!, /^test\.yaml:\d+:\d+: rules\[0\] "r": bad header name "x team"$/);
});

// ---- body.<path> ----

const DEEP_BODY: JsonObject = {
  model: 'openai/gpt-4o',
  messages: [
    { role: 'system', content: 'be brief' },
    { role: 'user', content: 'first question' },
    { role: 'assistant', content: 'an answer' },
  ],
  tools: [{ type: 'function', function: { name: 'get_weather', parameters: { properties: { city: { type: 'string' } } } } }],
  metadata: { '2024': 'numeric key', team: { name: 'core' } },
};

test('body: a dot path reaches objects nested in arrays', () => {
  assert.equal(fieldValue('body.tools.0.function.parameters.properties.city.type', DEEP_BODY), 'string');
  assert.equal(fieldValue('body.metadata.team.name', DEEP_BODY), 'core');
});

test('body: numeric segments index arrays, negative ones from the end', () => {
  assert.equal(fieldValue('body.messages.0.content', DEEP_BODY), 'be brief');
  assert.equal(fieldValue('body.messages.1.content', DEEP_BODY), 'first question');
  assert.equal(fieldValue('body.messages.-1.role', DEEP_BODY), 'assistant');
  assert.equal(fieldValue('body.messages.-3.role', DEEP_BODY), 'system');
  assert.equal(fieldExists('body.messages.3.role', DEEP_BODY), false);
  assert.equal(fieldExists('body.messages.-4.role', DEEP_BODY), false);
});

test('body: a numeric segment on an object is a key', () => {
  assert.equal(fieldValue('body.metadata.2024', DEEP_BODY), 'numeric key');
});

test('body: a path through a string is missing (strings are not indexed)', () => {
  assert.equal(fieldExists('body.model.0', DEEP_BODY), false);
  assert.equal(fieldExists('body.model.length', DEEP_BODY), false);
  assert.equal(fieldExists('body.messages.0.content.0', DEEP_BODY), false);
});

test('body: a non-numeric segment on an array is missing (no array properties such as length)', () => {
  assert.equal(fieldExists('body.messages.length', DEEP_BODY), false);
  assert.equal(fieldExists('body.messages.role', DEEP_BODY), false);
});

test('body: __proto__, constructor and inherited keys never reach a prototype', () => {
  for (const path of ['body.__proto__', 'body.constructor', 'body.constructor.name', 'body.toString', 'body.hasOwnProperty',
    'body.messages.constructor', 'body.metadata.__proto__', 'body.metadata.constructor.prototype']) {
    assert.equal(fieldExists(path, DEEP_BODY), false, path);
  }
  const inherits = Object.assign(Object.create({ inherited: 'from the prototype' }) as JsonObject, { own: 'mine' });
  assert.equal(fieldExists('body.inherited', inherits), false);
  assert.equal(fieldValue('body.own', inherits), 'mine');
});

// ---- model and request.* ----

test('model: the model the client asked for; a non-string model is missing', () => {
  assert.equal(fieldValue('model', { model: 'openai/gpt-4o' }), 'openai/gpt-4o');
  assert.equal(fieldExists('model', { model: 42 }), false);
  assert.equal(fieldExists('model', {}), false);
});

test('request.stream: true only when stream is the boolean true', () => {
  assert.equal(fieldValue('request.stream', { stream: true }), true);
  assert.equal(fieldValue('request.stream', { stream: false }), false);
  assert.equal(fieldValue('request.stream', { stream: 'true' }), false);
  assert.equal(fieldValue('request.stream', {}), false);
});

test('request.tokens: ceil(chars/4) + 4 per message, text parts of content arrays and the tools JSON counted', () => {
  const tools = [{ type: 'function', function: { name: 'f', parameters: { type: 'object' } } }];
  const body: JsonObject = {
    messages: [
      { role: 'user', content: 'abcdefghij' }, // 10 characters
      { role: 'assistant', content: [
        { type: 'text', text: 'abcde' },
        { type: 'image_url', image_url: { url: 'data:image/png;base64,AAAA' } },
        { type: 'text', text: 'xyz' },
      ] }, // "abcde\nxyz": 9 characters; the image part is not text
    ],
    tools,
  };
  const toolChars = JSON.stringify(tools).length;
  assert.equal(toolChars, 76);
  assert.equal(fieldValue('request.tokens', body), 32); // ceil((10 + 9 + 76) / 4) + 2 * 4
  assert.equal(fieldValue('request.tokens', { messages: [{ role: 'user', content: 'abc' }] }), 1 + 4);
  assert.equal(fieldValue('request.tokens', {}), 0);
});

/** A body whose `messages` property counts how often it is read. */
function countingBody(): { body: JsonObject; reads: () => number } {
  let reads = 0;
  const messages = [{ role: 'user', content: 'x'.repeat(400) }];
  const body: JsonObject = { model: 'auto' };
  Object.defineProperty(body, 'messages', { enumerable: true, get: () => { reads++; return messages; } });
  return { body, reads: () => reads };
}

const TOKENS_RULE = { name: 'long', when: { 'request.tokens': { gt: 1000 } }, route: { pass: true } };

test('request.tokens: not computed when no rule uses it (messages never read, no explain field)', () => {
  const rs = rulesOf([{ name: 'team', when: { 'header.x-team': 'core', model: 'auto' }, route: { pass: true } }]);
  const probe = countingBody();
  assert.equal(rs.decide(ctx({ 'x-team': 'infra' }, probe.body)).rule, 'none');
  const explanation = rs.explain(ctx({ 'x-team': 'infra' }, probe.body));
  assert.equal(probe.reads(), 0);
  assert.deepEqual(Object.keys(explanation.fields).sort(), ['header.x-team', 'model']);
  assert.equal('request.tokens' in explanation.fields, false);
});

test('request.tokens: not computed when an earlier rule already decided', () => {
  const rs = rulesOf([{ name: 'team', when: { 'header.x-team': 'core' }, route: { pass: true } }, TOKENS_RULE]);
  const decided = countingBody();
  assert.equal(rs.decide(ctx({ 'x-team': 'core' }, decided.body)).rule, 'team');
  assert.equal(decided.reads(), 0);
  // the probe does see the computation when the tokens rule is reached
  const reached = countingBody();
  assert.equal(rs.decide(ctx({ 'x-team': 'infra' }, reached.body)).rule, 'none');
  assert.ok(reached.reads() > 0);
});

const CONTEXT_RULE = { name: 'wide', when: { 'request.context_needed': { gt: 100_000 } }, route: { pass: true } };

for (const rule of [TOKENS_RULE, CONTEXT_RULE]) {
  const field = Object.keys(rule.when)[0]!;
  test(`${field}: computed once per request however many rules use it`, () => {
    const once = countingBody();
    rulesOf([rule]).decide(ctx({}, once.body));
    const thrice = countingBody();
    rulesOf([rule, { ...rule, name: 'again' }, { ...rule, name: 'third', when: { [field]: { lt: 5 } } }]).decide(ctx({}, thrice.body));
    assert.ok(once.reads() > 0);
    assert.equal(thrice.reads(), once.reads());
  });
}

// ---- request.context_needed ----

test('request.context_needed: the conservative prompt estimate + max_tokens (or max_completion_tokens)', () => {
  const messages = [{ role: 'user', content: '请把这段话翻译成英文' }];
  const prompt = conservativePromptTokens({ messages });
  assert.ok(prompt > 10 * 1.5); // ten CJK characters: above one token each, unlike request.tokens
  assert.equal(fieldValue('request.context_needed', { messages, max_tokens: 500 }), prompt + 500);
  assert.equal(fieldValue('request.context_needed', { messages, max_completion_tokens: 700 }), prompt + 700);
});

test('request.context_needed: without max_tokens the completion is DEFAULT_COMPLETION_TOKENS (4096)', () => {
  const messages = [{ role: 'user', content: 'hello' }];
  assert.equal(DEFAULT_COMPLETION_TOKENS, 4096);
  assert.equal(fieldValue('request.context_needed', { messages }), conservativePromptTokens({ messages }) + 4096);
  assert.equal(fieldValue('request.context_needed', { messages, max_tokens: '500' }), conservativePromptTokens({ messages }) + 4096);
});

test('request.context_needed: a rule on it routes, and explain shows its value', () => {
  const rs = rulesOf([{ name: 'big', when: { 'request.context_needed': { gt: 100_000 } }, route: { model: 'openai/gpt-4o' } }]);
  const long: JsonObject = { messages: [{ role: 'user', content: '长文'.repeat(35_000) }], max_tokens: 1000 };
  const decision = rs.decide(ctx({}, long));
  assert.equal(decision.rule, 'big');
  assert.equal(rs.decide(ctx({}, { messages: [{ role: 'user', content: 'short' }] })).rule, 'none');
  assert.equal(rs.explain(ctx({}, long)).fields['request.context_needed'], contextNeeded(long));
});

test('request.context_needed: not computed when no rule uses it or an earlier rule decided', () => {
  const team = { name: 'team', when: { 'header.x-team': 'core' }, route: { pass: true } };
  const unused = countingBody();
  rulesOf([team]).decide(ctx({}, unused.body));
  assert.equal(unused.reads(), 0);
  const decided = countingBody();
  rulesOf([team, CONTEXT_RULE]).decide(ctx({ 'x-team': 'core' }, decided.body));
  assert.equal(decided.reads(), 0);
});

test('fields are read only when a rule reaches them (registry spy)', () => {
  let calls = 0;
  const fields = builtinFields().register({
    match: 'exact', name: 'spy.value', description: 'counts its reads',
    compile: () => () => { calls++; return 1; },
  });
  const rs = rulesOf([
    { name: 'first', when: { 'header.x-a': '1' }, route: { pass: true } },
    { name: 'spied', when: { 'spy.value': 1 }, route: { pass: true } },
  ], {}, fields);
  assert.equal(rs.decide(ctx({ 'x-a': '1' })).rule, 'first');
  assert.equal(calls, 0);
  assert.equal(rs.decide(ctx({ 'x-a': '2' })).rule, 'spied');
  assert.equal(calls, 1);
});

test('request.max_tokens: max_tokens, else max_completion_tokens', () => {
  assert.equal(fieldValue('request.max_tokens', { max_tokens: 100 }), 100);
  assert.equal(fieldValue('request.max_tokens', { max_completion_tokens: 200 }), 200);
  assert.equal(fieldValue('request.max_tokens', { max_tokens: 100, max_completion_tokens: 200 }), 100);
  assert.equal(fieldExists('request.max_tokens', {}), false);
  assert.equal(fieldExists('request.max_tokens', { max_tokens: '100' }), false);
});

test('request.messages: the number of messages (0 when absent)', () => {
  assert.equal(fieldValue('request.messages', DEEP_BODY), 3);
  assert.equal(fieldValue('request.messages', { messages: [] }), 0);
  assert.equal(fieldValue('request.messages', {}), 0);
});

test('request.has_tools: tools or functions, an empty list is false', () => {
  assert.equal(fieldValue('request.has_tools', { tools: [{ type: 'function' }] }), true);
  assert.equal(fieldValue('request.has_tools', { functions: [{ name: 'f' }] }), true);
  assert.equal(fieldValue('request.has_tools', { tools: [] }), false);
  assert.equal(fieldValue('request.has_tools', { tools: [], functions: [] }), false);
  assert.equal(fieldValue('request.has_tools', {}), false);
});

test('request.has_images: image_url and input_image parts', () => {
  const withPart = (part: object): JsonObject => ({ messages: [{ role: 'user', content: [{ type: 'text', text: 'look' }, part] }] });
  assert.equal(fieldValue('request.has_images', withPart({ type: 'image_url', image_url: { url: 'https://x/y.png' } })), true);
  assert.equal(fieldValue('request.has_images', withPart({ type: 'input_image', image_url: 'https://x/y.png' })), true);
  assert.equal(fieldValue('request.has_images', withPart({ type: 'text', text: 'no image' })), false);
  assert.equal(fieldValue('request.has_images', { messages: [{ role: 'user', content: 'image_url' }] }), false);
  assert.equal(fieldValue('request.has_images', {}), false);
});

test('request.json_mode: json_object and json_schema are JSON, text is not', () => {
  assert.equal(fieldValue('request.json_mode', { response_format: { type: 'json_object' } }), true);
  assert.equal(fieldValue('request.json_mode', { response_format: { type: 'json_schema', json_schema: { name: 's' } } }), true);
  assert.equal(fieldValue('request.json_mode', { response_format: { type: 'text' } }), false);
  assert.equal(fieldValue('request.json_mode', {}), false);
});

test('request.text: the last user message, string or text parts; missing without a user message', () => {
  const body: JsonObject = {
    messages: [
      { role: 'user', content: 'first' },
      { role: 'user', content: [{ type: 'text', text: 'a' }, { type: 'image_url', image_url: { url: 'u' } }, { type: 'text', text: 'b' }] },
      { role: 'assistant', content: 'not me' },
    ],
  };
  assert.equal(fieldValue('request.text', body), 'a\nb');
  assert.equal(fieldValue('request.text', { messages: [{ role: 'system', content: 's' }, { role: 'user', content: 'hello' }] }), 'hello');
  assert.equal(fieldExists('request.text', { messages: [{ role: 'system', content: 's' }, { role: 'assistant', content: 'a' }] }), false);
  assert.equal(fieldExists('request.text', {}), false);
});

test('time.hour and time.weekday in UTC', () => {
  assert.equal(fieldValue('time.hour', {}, {}, { timezone: 'UTC' }), 15);
  assert.equal(fieldValue('time.weekday', {}, {}, { timezone: 'UTC' }), 'wednesday');
});

test('time.hour and time.weekday in Asia/Tokyo (midnight is hour 0, the next day)', () => {
  assert.equal(fieldValue('time.hour', {}, {}, { timezone: 'Asia/Tokyo' }), 0);
  assert.equal(fieldValue('time.weekday', {}, {}, { timezone: 'Asia/Tokyo' }), 'thursday');
  const rs = rulesOf([{ name: 'tokyo-night', when: { 'time.hour': { lt: 6 }, 'time.weekday': 'thursday' }, route: { pass: true } }],
    { timezone: 'Asia/Tokyo' });
  assert.equal(rs.decide(ctx()).rule, 'tokyo-night');
  assert.equal(rs.decide(ctx({}, {}, new Date('2026-03-04T12:00:00Z'))).rule, 'none'); // 21:00 Wednesday in Tokyo
});

test('an unknown field is a load error', () => {
  const problems = loadProblems([{ name: 'r', when: { 'request.colour': 'blue' }, route: { pass: true } }]);
  assert.equal(problems.length, 1);
  assert.match(problems[0]!, /^test\.yaml:\d+:\d+: rules\[0\] "r": unknown field "request\.colour" \(known: .*header\.<\.\.\.>.*\)$/);
});

test('FieldRegistry.register adds a prefix (acct.) that rules can use', () => {
  const keys: Record<string, Record<string, string>> = { 'Bearer sk-core': { team: 'core' }, 'Bearer sk-infra': { team: 'infra' } };
  const fields = builtinFields().register({
    match: 'prefix', name: 'acct.', description: 'an attribute of the API key',
    compile: (rest) => (rest === '' ? 'acct.<attribute> needs an attribute' : (input) => {
      const auth = input.headers.authorization;
      return typeof auth === 'string' ? keys[auth]?.[rest] : undefined;
    }),
  });
  const rules = [{ name: 'core-team', when: { 'acct.team': 'core' }, route: { model: 'openai/gpt-4o' } }];
  const rs = rulesOf(rules, {}, fields);
  const decision = rs.decide(ctx({ authorization: 'Bearer sk-core' }, { model: 'auto' }));
  assert.equal(decision.rule, 'core-team');
  assert.equal(decision.model, 'openai/gpt-4o');
  assert.equal(rs.decide(ctx({ authorization: 'Bearer sk-infra' }, { model: 'auto' })).rule, 'none');
  // the built-in registry alone does not know the field
  assert.match(loadProblems(rules)[0]!, /unknown field "acct\.team"/);
});

test('key.name, key.tier, key.team and key.<meta> read the caller the context carries; missing without one', () => {
  const rules = [{ name: 'sales-pro', when: { 'key.name': 'alice', 'key.tier': 'pro', 'key.team': 'research', 'key.department': 'sales' }, route: { model: 'openai/gpt-4o' } }];
  const rs = rulesOf(rules);
  const caller = { name: 'alice', tier: 'pro', team: { name: 'research' }, meta: { department: 'sales' }, models: undefined, limits: {}, budgets: {}, users: undefined };
  assert.equal(rs.decide({ ...ctx({}, { model: 'auto' }), caller }).rule, 'sales-pro');
  assert.equal(rs.decide({ ...ctx({}, { model: 'auto' }), caller: { ...caller, meta: {} } }).rule, 'none');
  assert.equal(rs.decide(ctx({ 'x-user-tier': 'pro' }, { model: 'auto' })).rule, 'none');
  assert.equal(rulesOf([{ name: 'proto', when: { 'key.constructor': { exists: true } }, route: { model: 'm' } }]).decide({ ...ctx({}, { model: 'auto' }), caller }).rule, 'none');
  assert.match(loadProblems([{ name: 'bad', when: { 'key.a-b': 'x' }, route: { model: 'm' } }])[0]!, /bad key field "a-b"/);
});

test('the message readers are total over any JSON shape of messages (issue 12, defect 1)', async () => {
  const { lastUserText, estimatePromptTokens } = await import('../../src/rules/fields.js');
  // Every kind of JSON value where a message object belongs: none is a message, none throws.
  const hostile = [null, 0, -1e308, true, 'user', [], [null], { role: null }, { role: 'user', content: null }];
  const body = { messages: hostile } as unknown as JsonObject;
  assert.equal(lastUserText({ messages: [null] } as unknown as JsonObject), undefined);
  assert.equal(lastUserText(body), '');
  assert.equal(lastUserText({ messages: [{ role: 'user', content: 'hi' }, null, 7] } as unknown as JsonObject), 'hi');
  assert.equal(estimatePromptTokens(body), 4 * hostile.length);
  for (const field of ['request.text', 'request.tokens', 'request.context_needed', 'request.has_images', 'request.messages']) {
    assert.doesNotThrow(() => fieldValue(field, body), field);
  }
});

/** Counts the Dates constructed while `run` runs (the global Date replaced by a counting subclass). */
function datesConstructedBy(run: () => void): number {
  const RealDate = globalThis.Date;
  let count = 0;
  globalThis.Date = class extends RealDate {
    constructor(...args: ConstructorParameters<typeof Date>) {
      super(...args);
      count++;
    }
  } as DateConstructor;
  try {
    run();
  } finally {
    globalThis.Date = RealDate;
  }
  return count;
}

test('a decision over rules that read no time field constructs no Date and never reads the clock', () => {
  const rs = rulesOf([
    { name: 'team', when: { 'header.x-team': 'ml', 'request.tokens': { gt: 10 } }, route: { pass: true } },
    { name: 'text', when: { 'request.text': { matches: 'refactor' } }, route: { pass: true } },
    { name: 'default', route: { pass: true } },
  ]);
  let clockReads = 0;
  const clock = (): Date => {
    clockReads++;
    return NOW;
  };
  const context: RequestContext = { headers: { 'x-team': 'ml' }, body: { messages: [{ role: 'user', content: 'hi' }] }, requestedModel: undefined, clock };
  const decided: string[] = [];
  assert.equal(datesConstructedBy(() => decided.push(rs.decide(context).rule, rs.explain(context).rule)), 0);
  assert.deepEqual(decided, ['default', 'default']);
  assert.equal(clockReads, 0);
});

test('time rules read the injected clock once per decision, however many time fields they read', () => {
  const rs = rulesOf([
    { name: 'weekend-night', when: { 'time.weekday': { in: ['saturday', 'sunday'] }, 'time.hour': { lt: 6 } }, route: { pass: true } },
    { name: 'office', when: { 'time.weekday': 'wednesday', 'time.hour': { gte: 9, lt: 18 } }, route: { pass: true } },
    { name: 'default', route: { pass: true } },
  ], { timezone: 'UTC' });
  let clockReads = 0;
  const at = (iso: string): RequestContext => ({
    headers: {}, body: {}, requestedModel: undefined,
    clock: () => {
      clockReads++;
      return new Date(iso);
    },
  });
  assert.equal(rs.decide(at('2026-03-04T15:00:00Z')).rule, 'office');
  assert.equal(clockReads, 1);
  assert.equal(rs.decide(at('2026-03-07T03:00:00Z')).rule, 'weekend-night');
  assert.equal(rs.decide(at('2026-03-04T20:00:00Z')).rule, 'default');
  assert.equal(clockReads, 3);
  // A fixed `now` wins over the clock, as the offline cases use it.
  assert.equal(rs.decide({ ...at('2026-03-07T03:00:00Z'), now: NOW }).rule, 'office');
  assert.equal(clockReads, 3);
});
