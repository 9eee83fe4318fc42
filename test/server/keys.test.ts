import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { OutgoingHttpHeaders } from 'node:http';
import { test, type TestContext } from 'node:test';
import pino from 'pino';
import { compileKeys } from '../../src/accounts/keys-file.js';
import { startKeysReloader } from '../../src/accounts/keys-reloader.js';
import type { ReloadEvent } from '../../src/rules-file/live-rules.js';
import { CHAT_BODY, LogCapture, startHarness, type Harness, type HarnessOptions } from '../support/harness.js';
import { jsonOf, rawRequest, type RawResponse } from '../support/http.js';
import { withTimeout } from '../support/timeout.js';

const SERVER_KEY = 'sk-or-server-0123456789abcdef';
const ALICE = 'sk-sb-alice-0123456789';
const BOB = 'sk-sb-bob-0123456789';
const hex = (key: string): string => createHash('sha256').update(key).digest('hex');

const KEYS = `version: 1
teams:
  research: {}
keys:
  - name: alice
    sha256: ${hex(ALICE)}
    tier: enterprise
    team: research
    meta: { department: sales }
    models: [openai/*, a/primary]
`;

const RULES = `version: 1
rules:
  - name: enterprise-sales
    when: { key.tier: enterprise, key.team: research, key.department: sales, key.name: alice }
    route: { model: openai/gpt-4o }
  - name: default
    route: { pass: true }
`;

async function harness(t: TestContext, options: HarnessOptions): Promise<Harness> {
  const h = await startHarness({ ...options, env: { OPENROUTER_API_KEY: SERVER_KEY, ...options.env } });
  t.after(() => h.close());
  return h;
}

function post(h: Harness, path: string, body: unknown, headers: OutgoingHttpHeaders = {}): Promise<RawResponse> {
  return rawRequest(h.url, { method: 'POST', path, headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify(body) });
}

const ring = (text: string): { current: ReturnType<typeof compileKeys> } => ({ current: compileKeys(text, 'keys.yaml', {}) });

test('a keys file admits Authorization: Bearer and x-api-key, names the caller on the log line, and never forwards the key', async (t) => {
  const h = await harness(t, { keys: ring(KEYS), rules: RULES });
  const bearer = await post(h, '/v1/chat/completions', { ...CHAT_BODY, model: 'a/primary' }, { authorization: `Bearer ${ALICE}`, 'x-request-id': 'bearer' });
  assert.equal(bearer.status, 200);
  const apiKey = await post(h, '/v1/chat/completions', { ...CHAT_BODY, model: 'a/primary' }, { 'x-api-key': ALICE, 'x-request-id': 'api-key' });
  assert.equal(apiKey.status, 200);
  assert.equal(h.fake.received.length, 2);
  for (const rec of h.fake.received) {
    assert.equal(rec.headers.authorization, `Bearer ${SERVER_KEY}`);
    assert.equal(rec.headers['x-api-key'], undefined, 'the client key is not forwarded');
    assert.equal(JSON.stringify(rec.headers).includes(ALICE), false);
  }
  assert.equal((await h.logs.requestLine('bearer')).client_key, 'alice');
  assert.equal((await h.logs.requestLine('api-key')).client_key, 'alice');
  assert.equal(h.logs.text.includes(ALICE) || h.logs.text.includes(hex(ALICE)), false, 'neither the key nor its digest is logged');
});

test('with a keys file a request without a valid key gets 401 in the OpenAI envelope', async (t) => {
  const h = await harness(t, { keys: ring(KEYS) });
  for (const headers of [{}, { authorization: `Bearer ${BOB}` }, { 'x-api-key': BOB }, { authorization: `Basic ${ALICE}`, 'x-api-key': ALICE }] as OutgoingHttpHeaders[]) {
    const res = await post(h, '/v1/chat/completions', CHAT_BODY, headers);
    assert.equal(res.status, 401, JSON.stringify(headers));
    assert.deepEqual(jsonOf(res), { error: { message: 'Missing or invalid API key for this Signalbox proxy', type: 'authentication_error', code: 'invalid_api_key' } });
  }
  assert.equal(h.fake.received.length, 0);
});

test('a model outside the key\'s allow-list gets 403 before anything is sent upstream: requested, routed or a fallback', async (t) => {
  const h = await harness(t, { keys: ring(KEYS), rules: `version: 1
rules:
  - name: to-anthropic
    when: { model: openai/gpt-4o-mini }
    route: { model: anthropic/claude-3.5-sonnet }
  - name: default
    route: { pass: true }
` });
  const auth = { authorization: `Bearer ${ALICE}` };
  const cases: [string, unknown, string][] = [
    ['requested', { ...CHAT_BODY, model: 'anthropic/claude-3-opus' }, 'the model "anthropic/claude-3-opus"'],
    ['routed', { ...CHAT_BODY, model: 'openai/gpt-4o-mini' }, 'the model "anthropic/claude-3.5-sonnet"'],
    ['fallback', { ...CHAT_BODY, model: 'openai/gpt-4o', models: ['openai/gpt-4o', 'anthropic/claude-3-opus'] }, 'the model "anthropic/claude-3-opus"'],
    ['none', { messages: CHAT_BODY.messages }, 'the account\'s default model: name a model this key may use'],
  ];
  for (const [what, body, detail] of cases) {
    for (const path of ['/v1/chat/completions', '/v1/routing/explain']) {
      const res = await post(h, path, body, auth);
      assert.equal(res.status, 403, `${what} ${path}`);
      assert.deepEqual(jsonOf(res), { error: { message: `This API key may not use ${detail}`, type: 'permission_error', code: 'model_not_allowed' } }, `${what} ${path}`);
      assert.equal(res.headers['x-should-retry'], 'false');
    }
  }
  // A pass-through body is never parsed: its model cannot be checked, so it is refused.
  const completions = await post(h, '/v1/completions', { model: 'anthropic/claude-3-opus', prompt: 'hi' }, auth);
  assert.equal(completions.status, 403);
  assert.equal(h.fake.received.length, 0, 'nothing reached upstream');
  // Allowed: provider/* and exact ids.
  assert.equal((await post(h, '/v1/chat/completions', { ...CHAT_BODY, model: 'openai/gpt-4o' }, auth)).status, 200);
  assert.equal((await rawRequest(h.url, { method: 'GET', path: '/v1/models', headers: auth })).status, 200);
  assert.equal(h.fake.received.length, 2);
});

test('explain shows rules matching on key.name, key.tier, key.team and key.<meta>; without client keys they are missing', async (t) => {
  const h = await harness(t, { keys: ring(KEYS), rules: RULES });
  const explained = jsonOf<{ rule: string; model: string }>(await post(h, '/v1/routing/explain', { ...CHAT_BODY, model: 'a/primary' }, { authorization: `Bearer ${ALICE}` }));
  assert.equal(explained.rule, 'enterprise-sales');
  assert.equal(explained.model, 'openai/gpt-4o');
  const open = await harness(t, { rules: RULES });
  const unkeyed = jsonOf<{ rule: string }>(await post(open, '/v1/routing/explain', { ...CHAT_BODY, model: 'a/primary', 'x-user-tier': 'enterprise' }, { 'x-user-tier': 'enterprise' }));
  assert.equal(unkeyed.rule, 'default', 'a header cannot make a caller enterprise');
});

test('the flat SIGNALBOX_API_KEYS list keeps working, as key-1, key-2', async (t) => {
  const h = await harness(t, { env: { SIGNALBOX_API_KEYS: `${ALICE},${BOB}` }, rules: `version: 1
rules:
  - name: second
    when: { key.name: key-2 }
    route: { model: a/primary }
  - name: default
    route: { pass: true }
` });
  const res = await post(h, '/v1/routing/explain', CHAT_BODY, { 'x-api-key': BOB });
  assert.equal(jsonOf<{ rule: string }>(res).rule, 'second');
  assert.equal((await post(h, '/v1/routing/explain', CHAT_BODY, { authorization: `Bearer ${ALICE}` })).status, 200);
  assert.equal((await post(h, '/v1/routing/explain', CHAT_BODY, { authorization: 'Bearer nope' })).status, 401);
});

/** Replaces `file` as editors do: a new file renamed over it. */
function replace(file: string, text: string): void {
  writeFileSync(`${file}.tmp`, text);
  renameSync(`${file}.tmp`, file);
}

test('the keys file is hot-reloaded: a key added and a key revoked without a restart; a bad file keeps the keys in force', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'signalbox-keys-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, 'keys.yaml');
  writeFileSync(file, KEYS);
  const logs = new LogCapture();
  const reloader = startKeysReloader(file, pino(logs), { debounceMs: 5, pollIntervalMs: 50 }, {});
  t.after(() => reloader.close());
  const h = await harness(t, { keys: reloader.keys });
  const status = async (key: string): Promise<number> => (await post(h, '/v1/routing/explain', { ...CHAT_BODY, model: 'a/primary' }, { authorization: `Bearer ${key}` })).status;
  const reloaded = (result: ReloadEvent['result']): Promise<ReloadEvent> => withTimeout(new Promise<ReloadEvent>((resolve) => {
    const on = (e: ReloadEvent): void => {
      if (e.result !== result) return;
      reloader.keys.off('reload', on);
      resolve(e);
    };
    reloader.keys.on('reload', on);
  }), `a keys reload (${result})`);

  assert.equal(await status(ALICE), 200);
  assert.equal(await status(BOB), 401);

  let next = reloaded('success');
  replace(file, `${KEYS}  - name: bob\n    sha256: ${hex(BOB)}\n`);
  await next;
  assert.equal(await status(BOB), 200, 'the new key is admitted');
  await logs.waitFor((r) => r.msg === 'keys reloaded' && r.keys === 2);

  next = reloaded('failure');
  replace(file, `${KEYS}  - name: bob\n    sha256: not-a-digest\n`);
  const refused = await next;
  assert.match(refused.problems[0]!, /keys\.yaml:\d+:\d+: keys\.1\.sha256 must be 64 hex digits/);
  assert.equal(await status(BOB), 200, 'a refused file keeps the keys in force');
  await logs.waitFor((r) => typeof r.msg === 'string' && r.msg.startsWith('keys file refused'));

  next = reloaded('success');
  replace(file, KEYS);
  await next;
  assert.equal(await status(BOB), 401, 'the revoked key is refused');
  assert.equal(await status(ALICE), 200);
  for (const secret of [ALICE, BOB, hex(ALICE), hex(BOB)]) assert.equal(logs.text.includes(secret), false, 'no key or digest in the reload log');
});
