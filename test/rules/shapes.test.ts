import assert from 'node:assert/strict';
import { test } from 'node:test';
import { compileRules } from '../../src/rules/compile.js';
import type { JsonObject, RequestContext } from '../../src/rules/decision.js';
import { chatView } from '../../src/rules/shapes.js';
import type { Api } from '../../src/rules/shapes.js';

const RULES = compileRules(`
version: 1
rules:
  - name: probe
    when: { request.api: { exists: true }, request.text: { exists: true }, request.messages: { gte: 0 }, request.max_tokens: { gte: 0 }, request.has_images: { exists: true }, request.json_mode: { exists: true }, request.has_tools: { exists: true }, request.tokens: { gte: 0 }, request.stream: { exists: true } }
    route: { pass: true }
`, 'rules.yaml');

function fields(api: Api, body: JsonObject): Record<string, unknown> {
  const context: RequestContext = { headers: {}, body, requestedModel: typeof body.model === 'string' ? body.model : undefined, api };
  return RULES.explain(context).fields;
}

test('the same fields mean the same thing in the three shapes: the last user text, counts, caps, images, JSON mode, tools', () => {
  const chat = fields('chat', {
    model: 'm', stream: true, max_tokens: 300, response_format: { type: 'json_object' }, tools: [{ type: 'function' }],
    messages: [{ role: 'system', content: 'be brief' }, { role: 'user', content: [{ type: 'text', text: 'what is 2+2?' }, { type: 'image_url', image_url: { url: 'data:' } }] }],
  });
  const responses = fields('responses', {
    model: 'm', stream: true, max_output_tokens: 300, text: { format: { type: 'json_object' } }, tools: [{ type: 'function' }],
    instructions: 'be brief',
    input: [{ role: 'user', content: [{ type: 'input_text', text: 'what is 2+2?' }, { type: 'input_image', image_url: 'data:' }] }],
  });
  const messages = fields('messages', {
    model: 'm', stream: true, max_tokens: 300, tools: [{ name: 'calc' }],
    system: [{ type: 'text', text: 'be brief' }],
    messages: [{ role: 'user', content: [{ type: 'text', text: 'what is 2+2?' }, { type: 'image', source: { type: 'base64', data: '' } }] }],
  });
  for (const [api, f] of [['chat', chat], ['responses', responses], ['messages', messages]] as const) {
    assert.equal(f['request.api'], api);
    assert.equal(f['request.text'], 'what is 2+2?', api);
    assert.equal(f['request.messages'], 2, api);
    assert.equal(f['request.max_tokens'], 300, api);
    assert.equal(f['request.has_images'], true, api);
    assert.equal(f['request.has_tools'], true, api);
    assert.equal(f['request.stream'], true, api);
  }
  assert.equal(chat['request.json_mode'], true);
  assert.equal(responses['request.json_mode'], true);
  assert.equal(messages['request.json_mode'], false, 'the Messages API has no JSON mode');
  assert.equal(chat['request.tokens'], responses['request.tokens']);
});

test('Responses input as a plain string; Messages tool results are not user input; any JSON is read without throwing', () => {
  assert.equal(fields('responses', { model: 'm', input: 'hello' })['request.text'], 'hello');
  const toolTurn = fields('messages', {
    model: 'm', max_tokens: 10,
    messages: [
      { role: 'user', content: 'look it up' },
      { role: 'assistant', content: [{ type: 'tool_use', id: 't', name: 'search', input: {} }] },
      { role: 'user', content: [{ type: 'tool_result', tool_use_id: 't', content: 'result text' }] },
    ],
  });
  assert.equal(toolTurn['request.text'], 'look it up', 'the last input the user wrote, not the tool\'s answer');
  // Function-call items of the Responses API are not messages.
  assert.equal(fields('responses', { model: 'm', input: [{ role: 'user', content: 'q' }, { type: 'function_call_output', output: 'x' }] })['request.messages'], 1);
  for (const hostile of [{ input: 42 }, { input: [null, 'x', [1], { role: 'user', content: 7 }] }, { messages: 'nope', system: 5 }, { messages: [{ role: 'user', content: [null, { type: 'text', text: 3 }] }] }]) {
    assert.doesNotThrow(() => chatView('responses', hostile));
    assert.doesNotThrow(() => chatView('messages', hostile));
  }
  const body = { messages: [{ role: 'user', content: 'x' }] };
  assert.equal(chatView('chat', body), body, 'a chat body is its own view: nothing copied');
});

test('actions per shape: the cap, the system prompt and the fallbacks where each shape keeps them', () => {
  const rules = compileRules(`
version: 1
rules:
  - name: cheap
    route:
      model: openai/gpt-4o-mini
      fallbacks: [anthropic/claude-3.5-haiku]
      max_tokens: 256
      system_prompt: { prepend: "Be brief." }
      params: { temperature: 0 }
`, 'rules.yaml');
  const decide = (api: Api, body: JsonObject) => rules.decide({ headers: {}, body, requestedModel: body.model as string, api });

  const responses = decide('responses', { model: 'auto', input: 'hi', instructions: 'You are helpful.', max_output_tokens: 4000 });
  assert.deepEqual(responses.body, { model: 'openai/gpt-4o-mini', input: 'hi', instructions: 'Be brief.\n\nYou are helpful.', max_output_tokens: 256, temperature: 0 });
  assert.deepEqual(responses.fallbacks, ['anthropic/claude-3.5-haiku'], 'no models list in the body: the proxy tries them');

  const messages = decide('messages', { model: 'auto', max_tokens: 100, system: [{ type: 'text', text: 'You are helpful.' }], messages: [{ role: 'user', content: 'hi' }] });
  assert.deepEqual(messages.body.system, [{ type: 'text', text: 'Be brief.' }, { type: 'text', text: 'You are helpful.' }]);
  assert.equal(messages.body.max_tokens, 100, 'a cap never raises the client\'s value');
  assert.equal(messages.body.models, undefined);
  assert.deepEqual(messages.fallbacks, ['anthropic/claude-3.5-haiku']);
  assert.equal(decide('messages', { model: 'auto', max_tokens: 9000, messages: [{ role: 'user', content: 'hi' }] }).body.system, 'Be brief.');

  const chat = decide('chat', { model: 'auto', messages: [{ role: 'user', content: 'hi' }] });
  assert.deepEqual(chat.body.models, ['openai/gpt-4o-mini', 'anthropic/claude-3.5-haiku']);
  assert.equal(chat.fallbacks, undefined, 'chat hands its fallbacks to OpenRouter');
  assert.deepEqual((chat.body.messages as unknown[])[0], { role: 'system', content: 'Be brief.' });
});

const SHAPE_PARAM_RULES = (when: string) => `
version: 1
tiers:
  json: { model: openai/gpt-4o-mini, params: { response_format: { type: json_object } } }
rules:
  - name: structured
    when: ${when}
    route: { tier: json, params: { temperature: 0 } }
`;

test('a parameter one shape lacks is skipped in it; a rule restricted to that shape by request.api does not load', () => {
  const open = compileRules(SHAPE_PARAM_RULES('{ request.text: { exists: true } }'), 'rules.yaml');
  const decide = (api: Api, body: JsonObject) => open.decide({ headers: {}, body, requestedModel: undefined, api }).body;
  const chat = decide('chat', { model: 'm', messages: [{ role: 'user', content: 'hi' }] });
  assert.deepEqual([chat.response_format, chat.temperature], [{ type: 'json_object' }, 0]);
  const messages = decide('messages', { model: 'm', max_tokens: 9, messages: [{ role: 'user', content: 'hi' }] });
  assert.deepEqual([messages.response_format, messages.temperature], [undefined, 0], 'Messages has no response_format');
  assert.equal(decide('responses', { model: 'm', input: 'hi' }).response_format, undefined);

  for (const when of ['{ request.api: messages }', '{ request.api: { in: [chat, responses] } }', '{ request.api: { ne: chat } }']) {
    assert.throws(() => compileRules(SHAPE_PARAM_RULES(when), 'rules.yaml'),
      /rules\.yaml:\d+:\d+: .*params\.response_format has no meaning in the (messages|responses)/, when);
  }
  // Restricted to chat, where it means something: loads.
  compileRules(SHAPE_PARAM_RULES('{ request.api: chat }'), 'rules.yaml');
  compileRules(SHAPE_PARAM_RULES('{ request.api: { not_in: [responses, messages] } }'), 'rules.yaml');
});

test('params may not set the other shapes\' own fields either: cap, instructions, system, input', () => {
  for (const key of ['max_output_tokens', 'max_completion_tokens', 'instructions', 'system', 'input']) {
    assert.throws(() => compileRules(`version: 1\nrules:\n  - name: r\n    route: { model: a/b, params: { ${key}: 1 } }\n`, 'rules.yaml'), new RegExp(`params may not set "${key}"`));
  }
});
