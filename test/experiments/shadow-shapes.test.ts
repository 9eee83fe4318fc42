import assert from 'node:assert/strict';
import { test, type TestContext } from 'node:test';
import type { FastifyBaseLogger } from 'fastify';
import { FakeOpenRouter, type ReceivedRequest } from '../../src/dev/fake-openrouter.js';
import { Shadows } from '../../src/experiments/shadow.js';
import type { RewriteRoute } from '../../src/rules/actions.js';
import type { ShadowPlan } from '../../src/rules/shadow.js';
import type { Api } from '../../src/rules/shapes.js';
import type { ExchangeRecord } from '../../src/server/record.js';
import { UpstreamClient } from '../../src/upstream/client.js';
import { TEST_MODELS } from '../support/models.js';
import { withTimeout } from '../support/timeout.js';

/**
 * Shadows of Responses and Messages requests (issue 18): the copy is the client's body in its own
 * shape, sent to that shape's endpoint, its usage and answer read in that shape; the judge stays a
 * chat call. Driven without the routes: Shadows against the fake OpenRouter, as the recorder would.
 */

const route: RewriteRoute = {
  kind: 'rewrite', tier: 'cand', model: 'b/second', fallbacks: [], provider: undefined, maxTokens: undefined,
  params: undefined, systemPrompt: undefined, headers: undefined, retry: undefined,
};

function plan(judged: boolean): ShadowPlan {
  return { rule: 'shadowed', route, sample: 1, maxConcurrency: 1, judge: judged ? { model: 'c/third', prompt: 'Compare.' } : undefined };
}

const BODIES: Record<Exclude<Api, 'chat'>, Record<string, unknown>> = {
  responses: { model: 'a/primary', instructions: 'Be brief.', input: [{ role: 'user', content: [{ type: 'input_text', text: 'What is the capital of France?' }] }], stream: true, stream_options: { include_obfuscation: false } },
  messages: { model: 'a/primary', system: 'Be brief.', max_tokens: 200, messages: [{ role: 'user', content: 'What is the capital of France?' }], stream: true },
};

interface Setup {
  readonly fake: FakeOpenRouter;
  readonly shadows: Shadows;
  readonly charged: { usd: number; model: string }[];
}

async function setup(t: TestContext): Promise<Setup> {
  const fake = new FakeOpenRouter({ extraModels: [...TEST_MODELS] });
  const baseUrl = await fake.listen();
  const upstream = new UpstreamClient({ baseUrl, connectTimeoutMs: 5000, headersTimeoutMs: 5000, idleTimeoutMs: 5000, keepAliveTimeoutMs: 1000 });
  const charged: { usd: number; model: string }[] = [];
  const shadows = new Shadows({
    upstream, serverAuthorization: 'Bearer sk-or-server-0123456789', catalog: () => undefined, metrics: undefined,
    timeoutMs: 10_000, charge: (usd, model) => charged.push({ usd, model }), random: () => 0,
  });
  t.after(async () => {
    shadows.close();
    await upstream.close();
    await fake.close();
  });
  fake.answer('b/second', 'The shadow answer.');
  return { fake, shadows, charged };
}

/** Sends a prepared shadow as the recorder does once the real exchange ended, and resolves with its log line. */
function finish(shadows: Shadows, prepared: ExchangeRecord['shadow'], realText: string): Promise<Record<string, unknown>> {
  return withTimeout(new Promise((resolve, reject) => {
    const log = {
      info: (line: Record<string, unknown>, msg: string) => {
        if (msg === 'shadow') resolve(line);
      },
      error: (line: unknown) => reject(new Error(`shadow failed: ${JSON.stringify(line)}`)),
    } as unknown as FastifyBaseLogger;
    const record = { shadow: prepared, upstreamStatus: 200, clientClosed: false, streamErrorKind: undefined, facts: { answerText: realText } } as unknown as ExchangeRecord;
    shadows.finished(record, log);
  }), 'the shadow\'s log line');
}

function pathOf(request: ReceivedRequest): string {
  return request.url.replace(/^\/api\/v1/, '');
}

for (const api of ['responses', 'messages'] as const) {
  test(`${api}: the copy is the client's body in its own shape, non-streaming, sent to /${api}; its usage and cost are read in that shape`, async (t) => {
    const { fake, shadows, charged } = await setup(t);
    const clientBody = BODIES[api];
    const prepared = shadows.prepare(plan(false), clientBody, clientBody, api);
    assert.ok(prepared !== undefined);
    assert.equal(prepared.api, api);
    const line = await finish(shadows, prepared, 'The real answer.');
    assert.equal(fake.received.length, 1);
    const copy = fake.received[0]!;
    assert.equal(pathOf(copy), `/${api}`);
    const json = copy.json as Record<string, unknown>;
    assert.equal(json.model, 'b/second');
    assert.equal(json.stream, false);
    // Chat's `usage: {include: true}` is no field of these shapes: the copy gets none.
    assert.equal('usage' in json, false);
    assert.equal('stream_options' in json, false);
    const { model: _model, stream: _stream, stream_options: _options, ...rest } = clientBody;
    const { model: _m, stream: _s, ...copied } = json;
    assert.deepEqual(copied, rest, 'the client\'s own fields, in its own shape');
    assert.equal(line.status, '200');
    assert.equal(line.prompt_tokens, copy.usage!.prompt_tokens);
    assert.equal(line.completion_tokens, copy.usage!.completion_tokens);
    assert.equal(line.cost_usd, copy.usage!.cost);
    assert.deepEqual(charged, [{ usd: copy.usage!.cost, model: 'b/second' }]);
  });

  test(`${api}: the judge (a chat call) compares the real answer with the shadow's text read in its shape`, async (t) => {
    const { fake, shadows } = await setup(t);
    fake.answer('c/third', '{"agree": true, "score": 0.8}');
    const prepared = shadows.prepare(plan(true), BODIES[api], BODIES[api], api);
    const line = await finish(shadows, prepared, 'The real answer.');
    assert.equal(fake.received.length, 2);
    const judge = fake.received[1]!;
    assert.equal(pathOf(judge), '/chat/completions');
    const messages = (judge.json as { messages: { content: string }[] }).messages;
    assert.deepEqual(JSON.parse(messages[1]!.content), { answer_a: 'The real answer.', answer_b: 'The shadow answer.' });
    assert.equal(line.judge_agreement, true);
    assert.equal(line.judge_score, 0.8);
  });
}

test('chat: the copy still goes to /chat/completions with usage accounting', async (t) => {
  const { fake, shadows } = await setup(t);
  const body = { model: 'a/primary', messages: [{ role: 'user', content: 'Hi' }], stream: true, stream_options: { include_usage: true } };
  const line = await finish(shadows, shadows.prepare(plan(false), body, body), 'x');
  const copy = fake.received[0]!;
  assert.equal(pathOf(copy), '/chat/completions');
  assert.deepEqual((copy.json as Record<string, unknown>).usage, { include: true });
  assert.equal('stream_options' in (copy.json as Record<string, unknown>), false);
  assert.equal(line.cost_usd, copy.usage!.cost);
});
