import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import type { OutgoingHttpHeaders } from 'node:http';
import { test, type TestContext } from 'node:test';
import { compileKeys } from '../../src/accounts/keys-file.js';
import { CHAT_BODY, startHarness, type Harness, type HarnessOptions } from '../support/harness.js';
import { jsonOf, rawRequest, type RawResponse } from '../support/http.js';
import { ADMIN_NOW, SPEND_FIXTURE, SpendListStore } from '../support/spend-store.js';

const SERVER_KEY = 'sk-or-server-0123456789abcdef';
const ADMIN_KEY = 'sk-sb-admin-0123456789abcdef';
const ALICE = 'sk-sb-alice-0123456789';
const BOB = 'sk-sb-bob-0123456789';
const hex = (key: string): string => createHash('sha256').update(key).digest('hex');

const KEYS = `version: 1
teams:
  research: { daily_usd: 50 }
keys:
  - name: alice
    sha256: ${hex(ALICE)}
    tier: pro
    team: research
    meta: { department: sales }
    models: [openai/*]
    rpm: 60
    daily_usd: 5
    users: { daily_usd: 1 }
  - name: bob
    env: BOB_KEY_FOR_ADMIN_TEST
  - name: alice2
    sha256: ${hex('sk-sb-alice2-0123456789')}
`;

const ring = (text: string, env: NodeJS.ProcessEnv = { BOB_KEY_FOR_ADMIN_TEST: BOB }): { current: ReturnType<typeof compileKeys> } => ({ current: compileKeys(text, 'keys.yaml', env) });

async function harness(t: TestContext, options: HarnessOptions & { store?: SpendListStore } = {}): Promise<Harness> {
  const store = options.store ?? new SpendListStore(SPEND_FIXTURE);
  const h = await startHarness({
    keys: ring(KEYS), ...options,
    env: { OPENROUTER_API_KEY: SERVER_KEY, ADMIN_KEY, ...options.env },
    app: { limits: { store, clock: () => ADMIN_NOW } },
  });
  t.after(() => h.close());
  return h;
}

function get(h: Harness, path: string, headers: OutgoingHttpHeaders = { authorization: `Bearer ${ADMIN_KEY}` }): Promise<RawResponse> {
  return rawRequest(h.url, { method: 'GET', path, headers });
}

function post(h: Harness, path: string, headers: OutgoingHttpHeaders = { authorization: `Bearer ${ADMIN_KEY}` }): Promise<RawResponse> {
  return rawRequest(h.url, { method: 'POST', path, headers });
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- the answers are compared whole with deepEqual
const json = (res: RawResponse): any => jsonOf(res);

test('without ADMIN_KEY /admin/* is the usual 404', async (t) => {
  const h = await startHarness({ keys: ring(KEYS), env: { OPENROUTER_API_KEY: SERVER_KEY } });
  t.after(() => h.close());
  const res = await get(h, '/admin/spend', { authorization: `Bearer ${ADMIN_KEY}` });
  assert.equal(res.status, 404);
  assert.equal(json(res).error.code, 'not_found');
});

test('the admin API answers only the admin key (Bearer or x-api-key), never a client key, and logs the request without the key', async (t) => {
  const h = await harness(t);
  for (const headers of [{}, { authorization: `Bearer ${ALICE}` }, { 'x-api-key': BOB }, { authorization: `Basic ${ADMIN_KEY}`, 'x-api-key': ADMIN_KEY }, { authorization: `Bearer ${ADMIN_KEY}x` }] as OutgoingHttpHeaders[]) {
    for (const res of [await get(h, '/admin/spend', headers), await get(h, '/admin/keys', headers), await post(h, '/admin/keys/alice/reset', headers)]) {
      assert.equal(res.status, 401, JSON.stringify(headers));
      assert.deepEqual(json(res), { error: { message: 'Missing or invalid admin key for this Signalbox admin API', type: 'authentication_error', code: 'invalid_admin_key' } });
    }
  }
  assert.equal((await get(h, '/admin/spend', { authorization: `Bearer ${ADMIN_KEY}`, 'x-request-id': 'admin-bearer' })).status, 200);
  assert.equal((await get(h, '/admin/spend', { 'x-api-key': ADMIN_KEY })).status, 200);
  const line = await h.logs.requestLine('admin-bearer');
  assert.equal(line.status, 200);
  assert.equal(h.logs.text.includes(ADMIN_KEY) || h.logs.text.includes(hex(ADMIN_KEY)), false, 'neither the admin key nor its digest is logged');
});

test('the admin key is never a client key: /v1 refuses it, even when the keys file holds its digest, and without client keys', async (t) => {
  const withDigest = `${KEYS}  - name: sneaky\n    sha256: ${hex(ADMIN_KEY)}\n`;
  const cases: [string, HarnessOptions][] = [
    ['keys file', {}],
    ['keys file holding the admin key\'s digest', { keys: ring(withDigest) }],
    ['flat list holding the admin key', { keys: undefined, env: { SIGNALBOX_API_KEYS: `${BOB},${ADMIN_KEY}` } }],
  ];
  for (const [name, options] of cases) {
    const h = await harness(t, options);
    for (const headers of [{ authorization: `Bearer ${ADMIN_KEY}` }, { 'x-api-key': ADMIN_KEY }] as OutgoingHttpHeaders[]) {
      const res = await rawRequest(h.url, { method: 'POST', path: '/v1/chat/completions', headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify(CHAT_BODY) });
      assert.equal(res.status, 401, name);
      assert.equal(json(res).error.code, 'invalid_api_key', name);
    }
    const ok = await rawRequest(h.url, { method: 'POST', path: '/v1/chat/completions', headers: { 'content-type': 'application/json', authorization: `Bearer ${BOB}` }, body: JSON.stringify(CHAT_BODY) });
    // bob has no limits: the test store takes none.
    assert.equal(ok.status, 200, `${name}: a client key still works`);
    assert.equal(h.fake.received.length, 1, name);
  }
  // No client keys: the client's own Authorization goes upstream, so the admin key must not.
  const open = await startHarness({ env: { ADMIN_KEY } });
  t.after(() => open.close());
  const refused = await rawRequest(open.url, { method: 'POST', path: '/v1/chat/completions', headers: { 'content-type': 'application/json', authorization: `Bearer ${ADMIN_KEY}` }, body: JSON.stringify(CHAT_BODY) });
  assert.equal(refused.status, 401);
  assert.equal(open.fake.received.length, 0, 'the admin key never reaches upstream');
  const passed = await rawRequest(open.url, { method: 'POST', path: '/v1/chat/completions', headers: { 'content-type': 'application/json', authorization: 'Bearer sk-or-client-own' }, body: JSON.stringify(CHAT_BODY) });
  assert.equal(passed.status, 200);
});

test('GET /admin/spend sums today\'s day counters by key, most spent first, with this month\'s totals', async (t) => {
  const h = await harness(t);
  const res = await get(h, '/admin/spend');
  assert.equal(res.status, 200);
  assert.deepEqual(json(res), {
    by: 'key', timezone: 'UTC', from: '2026-11-30', to: '2026-11-30',
    rows: [
      { key: 'bob', spent_usd: 3, reserved_usd: 0 },
      { key: 'alice', spent_usd: 1.5, reserved_usd: 0.25 },
      { key: 'alice2', spent_usd: 0.5, reserved_usd: 0 },
    ],
    month: { month: '2026-11', rows: [{ key: 'alice', spent_usd: 3.5, reserved_usd: 0.25 }, { key: 'bob', spent_usd: 3, reserved_usd: 0 }] },
  });
});

test('GET /admin/spend groups by team, user, model and day, over a range, and filters by key', async (t) => {
  const h = await harness(t);
  const range = json(await get(h, '/admin/spend?from=2026-11-29&to=2026-11-30'));
  assert.deepEqual(range.rows, [{ key: 'alice', spent_usd: 3.5, reserved_usd: 0.25 }, { key: 'bob', spent_usd: 3, reserved_usd: 0 }, { key: 'alice2', spent_usd: 0.5, reserved_usd: 0 }]);
  assert.deepEqual(json(await get(h, '/admin/spend?by=team')).rows, [{ team: 'research', spent_usd: 1.5, reserved_usd: 0.25 }]);
  assert.deepEqual(json(await get(h, '/admin/spend?by=user')).rows, [{ user: 'alice:u:1', spent_usd: 1, reserved_usd: 0 }, { user: 'alice:u2', spent_usd: 0.5, reserved_usd: 0.25 }]);
  const models = json(await get(h, '/admin/spend?by=model'));
  assert.deepEqual(models.rows, [{ model: 'openai/gpt-4o', spent_usd: 4, reserved_usd: 0 }, { model: 'anthropic/claude', spent_usd: 1, reserved_usd: 0.25 }]);
  assert.deepEqual(models.month.rows, [{ model: 'openai/gpt-4o', spent_usd: 6.5, reserved_usd: 0 }]);
  // by=day sums the key counters only: the team's and models' count the same spend again.
  const days = json(await get(h, '/admin/spend?by=day&from=2026-11-28&to=2026-11-30'));
  assert.deepEqual(days.rows, [{ day: '2026-11-30', spent_usd: 5, reserved_usd: 0.25 }, { day: '2026-11-29', spent_usd: 2, reserved_usd: 0 }]);
  assert.deepEqual(days.month, { month: '2026-11', rows: [{ month: '2026-11', spent_usd: 6.5, reserved_usd: 0.25 }] });
  // key=alice is alice's alone, not alice2's.
  const alice = json(await get(h, '/admin/spend?by=day&key=alice&from=2026-11-29'));
  assert.equal(alice.to, '2026-11-29', 'from alone is one day');
  assert.deepEqual(alice.rows, [{ day: '2026-11-29', spent_usd: 2, reserved_usd: 0 }]);
  assert.deepEqual(json(await get(h, '/admin/spend?key=alice')).rows, [{ key: 'alice', spent_usd: 1.5, reserved_usd: 0.25 }]);
  assert.deepEqual(json(await get(h, '/admin/spend?by=user&key=alice2')).rows, []);
});

test('GET /admin/spend refuses bad query values with 400 in the envelope', async (t) => {
  const h = await harness(t);
  for (const query of [
    'by=tier', 'by=key&by=team', 'from=2026-02-30', 'from=30-11-2026', 'to=2026-11-31', 'from=2026-11-30&to=2026-11-29',
    'from=2026-10-25&to=2026-11-30', 'key=al:ice', 'key=alice&by=team', 'key=alice&by=model', 'limit=10',
  ]) {
    const res = await get(h, `/admin/spend?${query}`);
    assert.equal(res.status, 400, query);
    assert.equal(json(res).error.code, 'bad_request', query);
    assert.equal(json(res).error.type, 'invalid_request_error', query);
  }
  // SPEND_HISTORY_DAYS (35) + 1 days is the longest range.
  assert.equal((await get(h, '/admin/spend?from=2026-10-26&to=2026-11-30')).status, 200);
});

test('a failing spend store is a 503 spend_store_unavailable, logged without the key', async (t) => {
  const store = new SpendListStore(SPEND_FIXTURE);
  store.failing = true;
  const h = await harness(t, { store });
  for (const res of [await get(h, '/admin/spend'), await get(h, '/admin/keys'), await post(h, '/admin/keys/alice/reset')]) {
    assert.equal(res.status, 503);
    assert.equal(res.headers['x-should-retry'], 'true');
    assert.deepEqual(json(res).error.code, 'spend_store_unavailable');
  }
  await h.logs.waitFor((r) => r.msg === 'admin API: the spend store could not list counters');
  assert.equal(h.logs.text.includes(ADMIN_KEY), false);
});

test('GET /admin/keys lists every key\'s policy and spend, never a digest or an env variable\'s name', async (t) => {
  const h = await harness(t);
  const res = await get(h, '/admin/keys');
  assert.equal(res.status, 200);
  const body = json(res);
  assert.equal(res.body.includes(hex(ALICE)) || res.body.includes('BOB_KEY_FOR_ADMIN_TEST') || res.body.includes(BOB), false);
  assert.deepEqual(body, {
    timezone: 'UTC', day: '2026-11-30', month: '2026-11',
    keys: [
      {
        name: 'alice', tier: 'pro', team: 'research', meta: { department: 'sales' }, models: ['openai/*'],
        rpm: 60, tpm: null, daily_usd: 5, monthly_usd: null, users: { rpm: null, tpm: null, daily_usd: 1, monthly_usd: null },
        today: { spent_usd: 1.5, reserved_usd: 0.25 }, this_month: { spent_usd: 3.5, reserved_usd: 0.25 },
      },
      {
        name: 'bob', tier: null, team: null, meta: {}, models: null, rpm: null, tpm: null, daily_usd: null, monthly_usd: null, users: null,
        today: { spent_usd: 3, reserved_usd: 0 }, this_month: { spent_usd: 3, reserved_usd: 0 },
      },
      {
        name: 'alice2', tier: null, team: null, meta: {}, models: null, rpm: null, tpm: null, daily_usd: null, monthly_usd: null, users: null,
        today: { spent_usd: 0.5, reserved_usd: 0 }, this_month: { spent_usd: 0, reserved_usd: 0 },
      },
    ],
  });
});

test('GET /admin/keys works with the flat list (names only) and says keys: [] without client keys', async (t) => {
  const flat = await harness(t, { keys: undefined, env: { SIGNALBOX_API_KEYS: `${ALICE},${BOB}` } });
  const names = json(await get(flat, '/admin/keys')).keys.map((k: { name: string; tier: unknown }) => [k.name, k.tier]);
  assert.deepEqual(names, [['key-1', null], ['key-2', null]]);
  const store = new SpendListStore(SPEND_FIXTURE);
  const none = await harness(t, { keys: undefined, store });
  assert.deepEqual(json(await get(none, '/admin/keys')).keys, []);
  assert.deepEqual(store.prefixes, [], 'no keys, no store call');
});

test('POST /admin/keys/:name/reset zeroes the key\'s current day and/or month, logs the action, and 404s an unknown key', async (t) => {
  const store = new SpendListStore(SPEND_FIXTURE);
  const h = await harness(t, { store });
  const all = await post(h, '/admin/keys/alice/reset');
  assert.equal(all.status, 200);
  assert.deepEqual(json(all), { key: 'alice', period: 'all', reset: ['2026-11-30', '2026-11'] });
  assert.deepEqual(json(await post(h, '/admin/keys/alice/reset?period=day')).reset, ['2026-11-30']);
  assert.deepEqual(json(await post(h, '/admin/keys/bob/reset?period=month')).reset, ['2026-11']);
  assert.deepEqual(store.resets, [['sp:key:alice:d:2026-11-30', 'sp:key:alice:m:2026-11'], ['sp:key:alice:d:2026-11-30'], ['sp:key:bob:m:2026-11']]);
  const line = await h.logs.waitFor((r) => r.admin_action === 'spend_reset' && r.period === 'all');
  assert.equal(line.level, 30);
  assert.equal(line.client_key, 'alice');
  const unknown = await post(h, '/admin/keys/carol/reset');
  assert.equal(unknown.status, 404);
  assert.deepEqual(json(unknown).error, { message: 'No client key named "carol"', type: 'not_found_error', code: 'key_not_found' });
  assert.equal((await post(h, '/admin/keys/alice/reset?period=week')).status, 400);
  assert.equal(store.resets.length, 3, 'nothing reset by refused requests');
  assert.equal(h.logs.text.includes(ADMIN_KEY), false);
});
