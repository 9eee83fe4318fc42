import assert from 'node:assert/strict';
import type { IncomingHttpHeaders } from 'node:http';
import { test } from 'node:test';
import { compileRules } from '../../src/rules/compile.js';
import type { JsonObject, RequestContext, RouteDecision } from '../../src/rules/decision.js';

const NOW = new Date('2026-03-04T15:00:00Z');

function ctx(headers: IncomingHttpHeaders = {}, body: JsonObject = {}, now: Date = NOW): RequestContext {
  return { headers, body, requestedModel: typeof body.model === 'string' ? body.model : undefined, now };
}

/** Decides a body with one catch-all rule `r` whose route is `route` (tiers optional). */
function decideWith(route: object, body: JsonObject, tiers?: object): RouteDecision {
  const text = JSON.stringify({ version: 1, ...(tiers && { tiers }), rules: [{ name: 'r', route }] });
  return compileRules(text, 'test.yaml').decide(ctx({}, body));
}

function deepFreeze<T>(value: T): T {
  if (value !== null && typeof value === 'object') {
    for (const v of Object.values(value)) deepFreeze(v);
    Object.freeze(value);
  }
  return value;
}

const USER_HI = [{ role: 'user', content: 'hi' }];

// ---- model, tier, fallbacks ----

test('model: the route model replaces the client model', () => {
  const d = decideWith({ model: 'openai/gpt-4o' }, { model: 'auto', messages: USER_HI });
  assert.equal(d.rule, 'r');
  assert.equal(d.model, 'openai/gpt-4o');
  assert.equal(d.tier, undefined);
  assert.equal(d.bodyChanged, true);
  assert.deepEqual(d.body, { model: 'openai/gpt-4o', messages: USER_HI });
});

test('model: a body without a model gets one', () => {
  const d = decideWith({ model: 'openai/gpt-4o' }, { messages: USER_HI });
  assert.equal(d.body.model, 'openai/gpt-4o');
  assert.equal(d.bodyChanged, true);
});

const TIERS = {
  gold: {
    model: 'tier/model',
    fallbacks: ['tier/fallback'],
    max_tokens: 512,
    params: { temperature: 0.5, top_p: 0.9 },
    system_prompt: { prepend: 'from the tier' },
    headers: { 'X-Tier': 'gold' },
    provider: { sort: 'latency', order: ['a', 'b'], max_price: { prompt: 1, completion: 2 } },
  },
};

test('tier: every value of the tier is used', () => {
  const d = decideWith({ tier: 'gold' }, { model: 'auto', messages: USER_HI, max_tokens: 4000 }, TIERS);
  assert.equal(d.tier, 'gold');
  assert.equal(d.model, 'tier/model');
  assert.deepEqual(d.body, {
    model: 'tier/model',
    models: ['tier/model', 'tier/fallback'],
    messages: [{ role: 'system', content: 'from the tier' }, ...USER_HI],
    max_tokens: 512,
    temperature: 0.5,
    top_p: 0.9,
    provider: { sort: 'latency', order: ['a', 'b'], max_price: { prompt: 1, completion: 2 } },
  });
  assert.deepEqual(d.upstreamHeaders, { 'x-tier': 'gold' });
});

test('tier: the route\'s own fields override the tier\'s; params and headers merge', () => {
  const route = {
    tier: 'gold',
    fallbacks: ['route/fallback'],
    max_tokens: 100,
    params: { temperature: 0 },
    system_prompt: { replace: 'from the route' },
    headers: { 'x-tier': 'route', 'X-Extra': 'yes' },
  };
  const d = decideWith(route, { model: 'auto', messages: USER_HI, max_tokens: 4000 }, TIERS);
  assert.equal(d.model, 'tier/model');
  assert.deepEqual(d.body.models, ['tier/model', 'route/fallback']);
  assert.equal(d.body.max_tokens, 100);
  assert.equal(d.body.temperature, 0);
  assert.equal(d.body.top_p, 0.9);
  assert.deepEqual(d.body.messages, [{ role: 'system', content: 'from the route' }, ...USER_HI]);
  assert.deepEqual(d.upstreamHeaders, { 'x-tier': 'route', 'x-extra': 'yes' });
});

test('tier: provider deep-merges tier, then route, then onto the client\'s provider', () => {
  const route = { tier: 'gold', provider: { max_price: { completion: 3 }, allow_fallbacks: false } };
  const client = { sort: 'price', only: ['x'], max_price: { prompt: 9, request: 5 } };
  const d = decideWith(route, { model: 'auto', messages: USER_HI, provider: client }, TIERS);
  assert.deepEqual(d.body.provider, {
    sort: 'latency', // tier wins over client
    only: ['x'], // client kept
    order: ['a', 'b'], // tier
    allow_fallbacks: false, // route
    max_price: { prompt: 1, completion: 3, request: 5 }, // nested: tier prompt, route completion, client request
  });
});

test('fallbacks: models is [model, ...fallbacks] without duplicates', () => {
  const d = decideWith({ model: 'm/a', fallbacks: ['m/b', 'm/a', 'm/c', 'm/b'] }, { model: 'auto', messages: USER_HI });
  assert.deepEqual(d.body.models, ['m/a', 'm/b', 'm/c']);
});

test('fallbacks replace the client\'s own models list', () => {
  const d = decideWith({ model: 'm/a', fallbacks: ['m/b'] }, { model: 'x', models: ['x', 'y'], messages: USER_HI });
  assert.deepEqual(d.body.models, ['m/a', 'm/b']);
});

test('a rule model that changes the model drops the client\'s models list', () => {
  const d = decideWith({ model: 'm/a' }, { model: 'x', models: ['x', 'y'], messages: USER_HI });
  assert.equal(d.body.model, 'm/a');
  assert.equal('models' in d.body, false);
});

test('a rule that keeps the client\'s model keeps the client\'s models list', () => {
  const d = decideWith({ model: 'x', params: { temperature: 0 } }, { model: 'x', models: ['x', 'y'], messages: USER_HI });
  assert.deepEqual(d.body.models, ['x', 'y']);
  assert.equal(d.body.temperature, 0);
});

// ---- provider ----

test('provider: deep-merged into the client\'s provider (client keys kept, rule keys win, nested objects merged)', () => {
  const route = { model: 'm/a', provider: { sort: 'throughput', require_parameters: true, max_price: { prompt: 1 } } };
  const client = { sort: 'price', allow_fallbacks: true, max_price: { prompt: 5, completion: 10 } };
  const d = decideWith(route, { model: 'auto', messages: USER_HI, provider: client });
  assert.deepEqual(d.body.provider, {
    sort: 'throughput', allow_fallbacks: true, require_parameters: true, max_price: { prompt: 1, completion: 10 },
  });
});

test('provider: set when the client sent none', () => {
  const d = decideWith({ model: 'm/a', provider: { sort: 'latency' } }, { model: 'auto', messages: USER_HI });
  assert.deepEqual(d.body.provider, { sort: 'latency' });
});

// ---- max_tokens cap ----

test('max_tokens: a cap lowers a larger value', () => {
  const d = decideWith({ model: 'm/a', max_tokens: 256 }, { model: 'auto', messages: USER_HI, max_tokens: 4000 });
  assert.equal(d.body.max_tokens, 256);
});

test('max_tokens: a cap keeps a smaller value', () => {
  const d = decideWith({ model: 'auto', max_tokens: 256 }, { model: 'auto', messages: USER_HI, max_tokens: 100 });
  assert.equal(d.body.max_tokens, 100);
  assert.equal(d.bodyChanged, false);
});

test('max_tokens: a cap sets the value when absent', () => {
  const d = decideWith({ model: 'm/a', max_tokens: 256 }, { model: 'auto', messages: USER_HI });
  assert.equal(d.body.max_tokens, 256);
  assert.equal('max_completion_tokens' in d.body, false);
});

test('max_tokens: a cap uses max_completion_tokens when only that is present', () => {
  const lowered = decideWith({ model: 'm/a', max_tokens: 256 }, { model: 'auto', messages: USER_HI, max_completion_tokens: 4000 });
  assert.equal(lowered.body.max_completion_tokens, 256);
  assert.equal('max_tokens' in lowered.body, false);
  const kept = decideWith({ model: 'm/a', max_tokens: 256 }, { model: 'auto', messages: USER_HI, max_completion_tokens: 50 });
  assert.equal(kept.body.max_completion_tokens, 50);
  assert.equal('max_tokens' in kept.body, false);
});

// ---- params, system_prompt, headers ----

test('params: set top-level fields, overriding the client\'s', () => {
  const d = decideWith({ model: 'm/a', params: { temperature: 0.2, response_format: { type: 'json_object' } } },
    { model: 'auto', messages: USER_HI, temperature: 1, seed: 7 });
  assert.deepEqual(d.body, {
    model: 'm/a', messages: USER_HI, temperature: 0.2, seed: 7, response_format: { type: 'json_object' },
  });
});

test('system_prompt prepend: into an existing first system message with string content', () => {
  const messages = [{ role: 'system', content: 'You are terse.' }, ...USER_HI];
  const d = decideWith({ model: 'm/a', system_prompt: { prepend: 'Be safe.' } }, { model: 'auto', messages });
  assert.deepEqual(d.body.messages, [{ role: 'system', content: 'Be safe.\n\nYou are terse.' }, ...USER_HI]);
});

test('system_prompt prepend: a new system message when there is none first', () => {
  const messages = [...USER_HI, { role: 'system', content: 'late system' }];
  const d = decideWith({ model: 'm/a', system_prompt: { prepend: 'Be safe.' } }, { model: 'auto', messages });
  assert.deepEqual(d.body.messages, [{ role: 'system', content: 'Be safe.' }, ...messages]);
});

test('system_prompt replace: removes system and developer messages, puts its own first', () => {
  const messages = [
    { role: 'system', content: 'old system' },
    { role: 'developer', content: 'old developer' },
    { role: 'user', content: 'q1' },
    { role: 'assistant', content: 'a1' },
    { role: 'system', content: 'mid-conversation system' },
    { role: 'user', content: 'q2' },
  ];
  const d = decideWith({ model: 'm/a', system_prompt: { replace: 'Only this.' } }, { model: 'auto', messages });
  assert.deepEqual(d.body.messages, [
    { role: 'system', content: 'Only this.' },
    { role: 'user', content: 'q1' },
    { role: 'assistant', content: 'a1' },
    { role: 'user', content: 'q2' },
  ]);
});

test('system_prompt replace: a body of system messages only keeps them behind the rule\'s, never sends the rule\'s prompt alone', () => {
  const messages = [{ role: 'system', content: 'Summarise: the quarterly report' }, { role: 'developer', content: 'in French' }];
  const d = decideWith({ model: 'm/a', system_prompt: { replace: 'Only this.' } }, { model: 'auto', messages });
  assert.deepEqual(d.body.messages, [{ role: 'system', content: 'Only this.' }, ...messages]);
});

test('system_prompt prepend: a first system message with content parts is kept whole, after the rule\'s', () => {
  const messages = [{ role: 'system', content: [{ type: 'text', text: 'You are terse.' }] }, ...USER_HI];
  const d = decideWith({ model: 'm/a', system_prompt: { prepend: 'Be safe.' } }, { model: 'auto', messages });
  assert.deepEqual(d.body.messages, [{ role: 'system', content: 'Be safe.' }, ...messages]);
});

test('system_prompt on a body whose messages is not a list leaves messages as the client sent them', () => {
  for (const action of [{ prepend: 'Be safe.' }, { replace: 'Only this.' }]) {
    const asString = decideWith({ model: 'm/a', system_prompt: action }, { model: 'auto', messages: 'hello there' });
    assert.equal(asString.body.messages, 'hello there', JSON.stringify(action));
    assert.equal(asString.body.model, 'm/a');
    const missing = decideWith({ model: 'm/a', system_prompt: action }, { model: 'auto' });
    assert.equal('messages' in missing.body, false, JSON.stringify(action));
  }
});

test('headers: returned as upstreamHeaders with lower-case names, not put in the body', () => {
  const d = decideWith({ model: 'm/a', headers: { 'X-Title': 'Signalbox', 'HTTP-Referer': 'https://example.test' } },
    { model: 'auto', messages: USER_HI });
  assert.deepEqual(d.upstreamHeaders, { 'x-title': 'Signalbox', 'http-referer': 'https://example.test' });
  assert.deepEqual(d.body, { model: 'm/a', messages: USER_HI });
});

// ---- pass, reject, unchanged ----

test('pass: the body untouched, bodyChanged false, the client\'s model', () => {
  const body = { model: 'mistralai/mistral-large', messages: USER_HI, models: ['a', 'b'] };
  const d = decideWith({ pass: true }, body);
  assert.equal(d.rule, 'r');
  assert.equal(d.body, body);
  assert.equal(d.bodyChanged, false);
  assert.equal(d.model, 'mistralai/mistral-large');
  assert.equal(d.reject, undefined);
});

test('reject: decision.reject has the status and message', () => {
  const d = decideWith({ reject: { status: 429, message: 'slow down' } }, { model: 'auto', messages: USER_HI });
  assert.equal(d.rule, 'r');
  assert.deepEqual(d.reject, { status: 429, message: 'slow down' });
});

test('reject: the default message names the rule', () => {
  const d = decideWith({ reject: { status: 403 } }, { model: 'auto', messages: USER_HI });
  assert.deepEqual(d.reject, { status: 403, message: 'Request rejected by routing rule "r"' });
});

test('a route to the model the client asked for, with nothing else, leaves the body unchanged (raw bytes forwarded)', () => {
  const body = { model: 'openai/gpt-4o', messages: USER_HI, models: ['openai/gpt-4o', 'x'] };
  const d = decideWith({ model: 'openai/gpt-4o' }, body);
  assert.equal(d.rule, 'r');
  assert.equal(d.model, 'openai/gpt-4o');
  assert.equal(d.bodyChanged, false);
  assert.equal(d.body, body);
});

test('the client\'s body is never mutated, whatever the actions', () => {
  const body = () => ({
    model: 'x',
    models: ['x', 'y'],
    max_tokens: 9000,
    temperature: 1,
    provider: { sort: 'price', max_price: { prompt: 5 } },
    messages: [{ role: 'system', content: 'sys' }, { role: 'developer', content: 'dev' }, { role: 'user', content: [{ type: 'text', text: 'hi' }] }],
  });
  const routes: object[] = [
    { tier: 'gold' },
    { tier: 'gold', system_prompt: { replace: 'R' }, provider: { max_price: { completion: 1 } } },
    { model: 'm/a', max_tokens: 10, params: { temperature: 0 } },
    { model: 'x', fallbacks: ['y', 'z'] },
  ];
  for (const route of routes) {
    const frozen = deepFreeze(body());
    const d = decideWith(route, frozen, TIERS); // a write into a frozen object throws in strict mode
    assert.deepEqual(frozen, body(), JSON.stringify(route));
    assert.equal(d.bodyChanged, true);
    assert.notEqual(d.body, frozen);
  }
});
