import assert from 'node:assert/strict';
import crypto, { createHash } from 'node:crypto';
import { syncBuiltinESMExports } from 'node:module';
import { test } from 'node:test';
import { compileKeys, flatKeyRing, KeysError, modelAllowed } from '../../src/accounts/keys-file.js';

const ALICE = 'sk-sb-alice-secret';
const BOB = 'sk-sb-bob-secret';
const hex = (key: string): string => createHash('sha256').update(key).digest('hex');

const FILE = `version: 1
users: { daily_usd: 0.5, monthly_usd: 5, tpm: 1000 }
teams:
  research: { rpm: 600, tpm: 200000, daily_usd: 50, monthly_usd: 1000 }
keys:
  - name: alice
    sha256: ${hex(ALICE)}
    tier: pro
    team: research
    models: [openai/*, anthropic/claude-3.5-sonnet]
    rpm: 60
    tpm: 100000
    daily_usd: 5
    monthly_usd: 100
    users: { daily_usd: 2, rpm: 10 }
    meta: { department: sales, seats: 3 }
  - name: bob
    env: BOB_KEY
`;

function problemsOf(text: string, env: NodeJS.ProcessEnv = {}): readonly string[] {
  try {
    compileKeys(text, 'keys.yaml', env);
  } catch (err) {
    assert.ok(err instanceof KeysError, String(err));
    return err.problems;
  }
  assert.fail('the file was accepted');
}

test('a keys file compiles to callers found by their key: name, tier, team with its policy, meta, allow-list, limits, budgets', () => {
  const ring = compileKeys(FILE, 'keys.yaml', { BOB_KEY: BOB });
  const alice = ring.lookup(ALICE);
  assert.deepEqual(alice, {
    name: 'alice', tier: 'pro',
    team: { name: 'research', rpm: 600, tpm: 200000, dailyUsd: 50, monthlyUsd: 1000 },
    meta: { department: 'sales', seats: 3 },
    models: ['openai/*', 'anthropic/claude-3.5-sonnet'],
    limits: { rpm: 60, tpm: 100000 },
    budgets: { dailyUsd: 5, monthlyUsd: 100 },
    users: { dailyUsd: 2, rpm: 10 },
  });
  assert.ok(Object.isFrozen(alice) && Object.isFrozen(ring));
  // Bob has no users: of his own: the file's.
  assert.deepEqual(ring.lookup(BOB)?.users, { dailyUsd: 0.5, monthlyUsd: 5, tpm: 1000 });
  // `env:` keys are read from the environment at load.
  assert.equal(ring.lookup(BOB)?.name, 'bob');
  assert.equal(ring.lookup(BOB)?.tier, undefined);
  assert.equal(ring.lookup('sk-sb-nobody'), undefined);
  assert.equal(ring.lookup(hex(ALICE)), undefined, 'the digest is not a key');
  assert.equal(ring.size, 2);
});

test('a lookup compares SHA-256 digests, never keys, and as many times whatever the number of keys', (t) => {
  const ring = compileKeys(FILE, 'keys.yaml', { BOB_KEY: BOB });
  const many = flatKeyRing(Array.from({ length: 1000 }, (_, i) => `sk-sb-many-${i}`));
  const spy = t.mock.method(crypto, 'timingSafeEqual');
  syncBuiltinESMExports();
  t.after(() => {
    spy.mock.restore();
    syncBuiltinESMExports();
  });
  for (const [r, key, found] of [[ring, ALICE, true], [ring, BOB, true], [ring, 'sk-sb-wrong', false], [ring, '', false], [many, 'sk-sb-many-999', true], [many, 'sk-sb-many-1000', false]] as const) {
    spy.mock.resetCalls();
    assert.equal(r.lookup(key) !== undefined, found, key);
    assert.equal(spy.mock.callCount(), found ? 1 : 0, `one confirmation of a match, none for a miss (${JSON.stringify(key)})`);
    for (const call of spy.mock.calls) {
      assert.equal((call.arguments[0] as Buffer).length, 32, 'SHA-256 digests, not keys, are compared');
      assert.equal((call.arguments[1] as Buffer).length, 32);
    }
  }
});

test('keys file problems are positioned (file:line:col) and never print a digest or an environment value', () => {
  const badDigest = 'ab'.repeat(31) + 'zz';
  const problems = problemsOf(`version: 1
keys:
  - name: alice
    sha256: ${badDigest}
    team: nowhere
  - name: alice
    env: MISSING_KEY
  - name: carol
    sha256: ${hex(ALICE)}
    env: ALSO
    meta: { tier: x }
    colour: blue
  - name: "bad name!"
    env: PRESENT
  - name: dave
    env: PRESENT
`, { PRESENT: 'sk-sb-present-secret' });
  assert.deepEqual(problems, [
    'keys.yaml:4:13: keys.0.sha256 must be 64 hex digits (the key\'s SHA-256: `signalbox keys hash`)',
    'keys.yaml:12:5: unknown key "colour" in keys.2',
    'keys.yaml:13:11: keys.3.name must match pattern "^[A-Za-z0-9_.-]{1,64}$"',
  ]);
  // The schema passed: the semantic checks.
  const semantic = problemsOf(`version: 1
keys:
  - name: alice
    sha256: ${hex(ALICE)}
    team: nowhere
  - name: alice
    env: MISSING_KEY
  - name: carol
    env: PRESENT
    meta: { tier: x }
    models: [openai/gpt-*]
  - name: dave
    env: PRESENT
  - name: erin
    sha256: ${hex(BOB)}
    env: PRESENT
`, { PRESENT: 'sk-sb-present-secret' });
  assert.deepEqual(semantic, [
    'keys.yaml:5:11: unknown team "nowhere" (teams: none)',
    'keys.yaml:6:11: duplicate key name "alice": key 1 has it too',
    'keys.yaml:7:10: key "alice": the environment variable MISSING_KEY is not set (or empty)',
    'keys.yaml:10:13: meta field "tier" would be shadowed by key.tier: choose another name',
    'keys.yaml:11:14: "openai/gpt-*": a pattern is "provider/*"; other names are exact model ids',
    'keys.yaml:13:10: key "dave" is the same key as "carol"',
    'keys.yaml:14:5: key "erin": give exactly one of sha256 (the key\'s SHA-256: `signalbox keys hash`) and env (a variable holding the key)',
  ]);
  for (const p of [...problems, ...semantic]) {
    for (const secret of [badDigest, hex(ALICE), 'sk-sb-present-secret', hex('sk-sb-present-secret')]) assert.equal(p.includes(secret), false, p);
  }
});

test('a file that is not a keys file is refused with its position', () => {
  assert.deepEqual(problemsOf('[1, 2]'), ['keys.yaml:1:1: expected a mapping with "version: 1" and a "keys" list']);
  assert.match(problemsOf('version: 1\nkeys: [\n')[0]!, /^keys\.yaml:\d+:\d+: /);
  assert.deepEqual(problemsOf('version: 2\nkeys: []\n'), ['keys.yaml:1:10: version must be equal to constant']);
});

test('the allow-list admits exact ids and provider/* only; no allow-list admits every model', () => {
  const ring = compileKeys(FILE, 'keys.yaml', { BOB_KEY: BOB });
  const alice = ring.lookup(ALICE);
  assert.equal(modelAllowed(alice, 'openai/gpt-4o'), true);
  assert.equal(modelAllowed(alice, 'anthropic/claude-3.5-sonnet'), true);
  assert.equal(modelAllowed(alice, 'anthropic/claude-3-opus'), false);
  assert.equal(modelAllowed(alice, 'openai'), false);
  assert.equal(modelAllowed(alice, 'openaiX/gpt-4o'), false);
  assert.equal(modelAllowed(ring.lookup(BOB), 'anything/at-all'), true);
});

test('the flat SIGNALBOX_API_KEYS list names its keys key-1, key-2... by position, with no metadata', () => {
  const ring = flatKeyRing(['k-one', 'k-two']);
  assert.equal(ring.lookup('k-two')?.name, 'key-2');
  assert.deepEqual(ring.lookup('k-one'), { name: 'key-1', tier: undefined, team: undefined, meta: {}, models: undefined, limits: {}, budgets: {}, users: undefined });
  assert.equal(ring.lookup('k-three'), undefined);
});
