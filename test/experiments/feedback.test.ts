import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { test } from 'node:test';
import { FeedbackTokens, MAX_CLOCK_SKEW_MS, MAX_FIELD_CHARS, MAX_TOKEN_CHARS, issueToken, verifyToken } from '../../src/experiments/feedback.js';

const SECRET = 'feedback-secret-0123456789abcdef-0123';
const KEY = Buffer.from(SECRET);
const T0 = Date.UTC(2026, 0, 1);
const DAY = 86_400_000;

function tokens(at: { now: number }): FeedbackTokens {
  return new FeedbackTokens(SECRET, 7 * DAY, () => at.now);
}

test('a token round-trips its rule, variant and model, and the time it was issued', () => {
  const clock = { now: T0 };
  const t = tokens(clock);
  const token = t.issue('split-rule', 'candidate', 'anthropic/claude-3.5-haiku')!;
  assert.match(token, /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]{43}$/);
  clock.now = T0 + DAY;
  assert.deepEqual(t.verify(token), { ok: true, claims: { rule: 'split-rule', variant: 'candidate', model: 'anthropic/claude-3.5-haiku', issuedAt: T0 } });
  // No split, no model: both stay undefined.
  assert.deepEqual(t.verify(t.issue('none', undefined, undefined)), { ok: true, claims: { rule: 'none', variant: undefined, model: undefined, issuedAt: T0 + DAY } });
});

test('a token with a changed payload or signature, or signed with another secret, is forged', () => {
  const token = issueToken(KEY, { rule: 'r', variant: 'control', model: 'm/a', issuedAt: T0 })!;
  const [payload, signature] = token.split('.') as [string, string];
  const changed = Buffer.from(JSON.stringify({ r: 'r', v: 'candidate', m: 'm/a', t: T0 })).toString('base64url');
  assert.deepEqual(verifyToken(KEY, `${changed}.${signature}`, T0, DAY), { ok: false, problem: 'forged' });
  const flipped = Buffer.from(signature, 'base64url');
  flipped[0]! ^= 1;
  assert.deepEqual(verifyToken(KEY, `${payload}.${flipped.toString('base64url')}`, T0, DAY), { ok: false, problem: 'forged' });
  assert.deepEqual(verifyToken(Buffer.from('another-secret-0123456789abcdef-0123'), token, T0, DAY), { ok: false, problem: 'forged' });
});

test('a token older than the TTL is expired, one from beyond the clock skew is future-dated; both limits are inclusive', () => {
  const token = issueToken(KEY, { rule: 'r', variant: undefined, model: undefined, issuedAt: T0 })!;
  assert.equal(verifyToken(KEY, token, T0 + DAY, DAY).ok, true);
  assert.deepEqual(verifyToken(KEY, token, T0 + DAY + 1, DAY), { ok: false, problem: 'expired' });
  assert.equal(verifyToken(KEY, token, T0 - MAX_CLOCK_SKEW_MS, DAY).ok, true);
  assert.deepEqual(verifyToken(KEY, token, T0 - MAX_CLOCK_SKEW_MS - 1, DAY), { ok: false, problem: 'future' });
});

test('malformed tokens are refused: not a string, no or two dots, a short signature, a signed payload that is not the claims', () => {
  const sign = (payload: string): string => `${payload}.${createHmac('sha256', KEY).update(payload).digest('base64url')}`;
  const b64 = (s: string): string => Buffer.from(s).toString('base64url');
  for (const token of [undefined, 42, {}, '', 'abc', '.abc', 'a.b.c', `${b64('{}')}.${b64('short')}`,
    sign(b64('not json')), sign(b64('[1]')), sign(b64('null')), sign(b64('{"r":1,"t":1}')), sign(b64('{"r":"x"}')),
    sign(b64('{"r":"x","t":"1"}')), sign(b64('{"r":"x","v":3,"t":1}')), sign(b64('{"r":"x","m":null,"t":1}'))]) {
    assert.deepEqual(verifyToken(KEY, token, T0, DAY), { ok: false, problem: 'malformed' }, String(token));
  }
});

test('a token longer than MAX_TOKEN_CHARS is refused as oversized before its signature is checked', () => {
  const token = issueToken(KEY, { rule: 'r', variant: undefined, model: undefined, issuedAt: T0 })!;
  assert.deepEqual(verifyToken(KEY, token + 'A'.repeat(MAX_TOKEN_CHARS), T0, DAY), { ok: false, problem: 'oversized' });
  assert.deepEqual(verifyToken(KEY, 'x'.repeat(10 * 1024 * 1024), T0, DAY), { ok: false, problem: 'oversized' });
});

test('long rule, variant and model names are cut so that every issued token verifies', () => {
  const long = 'é'.repeat(5000);
  const token = issueToken(KEY, { rule: long, variant: long, model: long, issuedAt: T0 })!;
  assert.ok(token.length <= MAX_TOKEN_CHARS, String(token.length));
  const verdict = verifyToken(KEY, token, T0, DAY);
  assert.equal(verdict.ok, true);
  if (verdict.ok) assert.equal(verdict.claims.model, 'é'.repeat(MAX_FIELD_CHARS));
});
