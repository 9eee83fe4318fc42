import assert from 'node:assert/strict';
import { test, type TestContext } from 'node:test';
import { compileKeys } from '../../src/accounts/keys-file.js';
import { main } from '../../src/cli/commands.js';
import { startHarness, type Harness } from '../support/harness.js';
import { freePort } from '../support/ports.js';
import { ADMIN_NOW, SPEND_FIXTURE, SpendListStore, nano } from '../support/spend-store.js';

const ADMIN_KEY = 'sk-sb-admin-0123456789abcdef';
const KEYS = `version: 1
keys:
  - name: alice
    sha256: ${'a'.repeat(64)}
  - name: bob
    sha256: ${'b'.repeat(64)}
`;

async function server(t: TestContext, store = new SpendListStore(SPEND_FIXTURE), env: Record<string, string> = { ADMIN_KEY }): Promise<Harness> {
  const h = await startHarness({
    keys: { current: compileKeys(KEYS, 'keys.yaml', {}) },
    env: { OPENROUTER_API_KEY: 'sk-or-server-0123456789', ...env },
    app: { limits: { store, clock: () => ADMIN_NOW } },
  });
  t.after(() => h.close());
  return h;
}

async function spend(args: string[], env: NodeJS.ProcessEnv = { ADMIN_KEY }): Promise<{ code: number; out: string[]; err: string[] }> {
  const out: string[] = [];
  const err: string[] = [];
  const code = await main(['spend', ...args], { out: (l) => out.push(l), err: (l) => err.push(l), env });
  return { code, out, err };
}

test('signalbox spend prints an aligned table of the range and the month, or the JSON with --json', async (t) => {
  const h = await server(t);
  const table = await spend(['--url', h.url]);
  assert.equal(table.code, 0, table.err.join('\n'));
  assert.deepEqual(table.out, [
    'spend by key, 2026-11-30 (UTC)',
    'key     spent_usd  reserved_usd',
    'bob      3.000000      0.000000',
    'alice    1.500000      0.250000',
    'alice2   0.500000      0.000000',
    '',
    'this month, 2026-11',
    'key    spent_usd  reserved_usd',
    'alice   3.500000      0.250000',
    'bob     3.000000      0.000000',
  ]);
  const days = await spend(['--by', 'day', '--from', '2026-11-29', '--to', '2026-11-30', '--key', 'alice', '--url', h.url, '--json']);
  assert.equal(days.code, 0, days.err.join('\n'));
  const answer = JSON.parse(days.out.join('\n'));
  assert.equal(answer.key, 'alice');
  assert.deepEqual(answer.rows, [{ day: '2026-11-29', spent_usd: 2, reserved_usd: 0 }, { day: '2026-11-30', spent_usd: 1.5, reserved_usd: 0.25 }]);
});

test('signalbox spend escapes control characters of end user ids before they reach the terminal', async (t) => {
  const h = await server(t, new SpendListStore([{ key: 'sp:user:alice:\u001b[2Jevil:d:2026-11-30', spentNano: nano(1), reservedNano: 0 }]));
  const res = await spend(['--by', 'user', '--url', h.url]);
  assert.equal(res.code, 0, res.err.join('\n'));
  assert.equal(res.out.join('\n').includes('\u001b'), false);
  assert.ok(res.out.some((l) => l.startsWith('alice:\\u001b[2Jevil')), res.out.join('\n'));
});

test('signalbox spend reset zeroes a key\'s counters through the admin API', async (t) => {
  const store = new SpendListStore(SPEND_FIXTURE);
  const h = await server(t, store);
  const res = await spend(['reset', 'alice', '--period', 'day', '--url', h.url]);
  assert.equal(res.code, 0, res.err.join('\n'));
  assert.deepEqual(res.out, ['reset the spend of alice for 2026-11-30']);
  assert.deepEqual(store.resets, [['sp:key:alice:d:2026-11-30']]);
  const unknown = await spend(['reset', 'carol', '--url', h.url]);
  assert.equal(unknown.code, 1);
  assert.match(unknown.err.join('\n'), /404 key_not_found: No client key named "carol"/);
});

test('signalbox spend: usage errors exit 2, a wrong key, a server without the admin API or an unreachable one exit 1 with a clear message', async (t) => {
  const h = await server(t);
  for (const args of [['--by'], ['--bogus', 'x'], ['reset'], ['reset', '--period', 'day'], ['--by', 'key', '--by', 'team'], ['--url', 'ftp://x']]) {
    assert.equal((await spend(args)).code, 2, args.join(' '));
  }
  const noKey = await spend(['--url', h.url], {});
  assert.equal(noKey.code, 2);
  assert.match(noKey.err[0]!, /set ADMIN_KEY in the environment/);
  const wrong = await spend(['--url', h.url], { ADMIN_KEY: 'sk-sb-not-the-admin-key' });
  assert.equal(wrong.code, 1);
  assert.match(wrong.err[0]!, /refused ADMIN_KEY/);
  const bad = await spend(['--by', 'tier', '--url', h.url]);
  assert.equal(bad.code, 1);
  assert.match(bad.err[0]!, /400 bad_request: by must be one of/);
  const off = await server(t, undefined, {});
  const none = await spend(['--url', off.url]);
  assert.equal(none.code, 1);
  assert.match(none.err[0]!, /has no admin API: ADMIN_KEY is not set on the server/);
  const down = await spend(['--url', `http://127.0.0.1:${await freePort()}`]);
  assert.equal(down.code, 1);
  assert.match(down.err[0]!, /cannot reach Signalbox at http:\/\/127\.0\.0\.1:\d+ \(ECONNREFUSED\)/);
});
