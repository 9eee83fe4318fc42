import assert from 'node:assert/strict';
import type { IncomingHttpHeaders } from 'node:http';
import { test } from 'node:test';
import { compileRules, RulesError } from '../../src/rules/compile.js';
import type { JsonObject, RequestContext } from '../../src/rules/decision.js';

const NOW = new Date('2026-03-04T15:00:00Z');

function ctx(headers: IncomingHttpHeaders = {}, body: JsonObject = {}, now: Date = NOW): RequestContext {
  return { headers, body, requestedModel: typeof body.model === 'string' ? body.model : undefined, now };
}

function rulesOf(rules: object[]) {
  return compileRules(JSON.stringify({ version: 1, rules }), 'test.yaml');
}

/** Whether a `when` map holds for a request. */
function holds(when: object, body: JsonObject = {}, headers: IncomingHttpHeaders = {}): boolean {
  return rulesOf([{ name: 'r', when, route: { pass: true } }]).decide(ctx(headers, body)).rule === 'r';
}

/** Whether `body.v` satisfies `{ [op]: expected }`; `undefined` leaves v out of the body. */
function opHolds(op: string, expected: unknown, value: unknown): boolean {
  return holds({ 'body.v': { [op]: expected } }, value === undefined ? {} : { v: value });
}

function problemsOf(text: string): readonly string[] {
  try {
    compileRules(text, 'test.yaml');
  } catch (err) {
    assert.ok(err instanceof RulesError);
    return err.problems;
  }
  assert.fail('expected a RulesError');
}

/** 1-based `line:col` of the first occurrence of `needle` in `text`. */
function at(text: string, needle: string): string {
  const offset = text.indexOf(needle);
  assert.ok(offset >= 0, `${needle} not in text`);
  const before = text.slice(0, offset).split('\n');
  return `${before.length}:${before[before.length - 1]!.length + 1}`;
}

// ---- every operator: match, no match, missing, wrong type ----

interface OperatorCase {
  op: string;
  expected: unknown;
  match: unknown;
  noMatch: unknown;
  /** A value of the wrong type, and whether the operator holds on it. */
  wrongType?: [unknown, boolean];
}

const OPERATOR_CASES: OperatorCase[] = [
  { op: 'eq', expected: 'a', match: 'a', noMatch: 'b', wrongType: [{ a: 1 }, false] },
  { op: 'ne', expected: 'a', match: 'b', noMatch: 'a', wrongType: [['a'], true] },
  { op: 'in', expected: ['a', 'b'], match: 'b', noMatch: 'c', wrongType: [['a'], false] },
  { op: 'not_in', expected: ['a', 'b'], match: 'c', noMatch: 'a' },
  { op: 'gt', expected: 10, match: 11, noMatch: 10, wrongType: ['eleven', false] },
  { op: 'gte', expected: 10, match: 10, noMatch: 9, wrongType: [true, false] },
  { op: 'lt', expected: 10, match: 9, noMatch: 10, wrongType: ['', false] },
  { op: 'lte', expected: 10, match: 10, noMatch: 11, wrongType: [[5], false] },
  { op: 'contains', expected: 'ell', match: 'hello', noMatch: 'world', wrongType: [{ ell: 'ell' }, false] },
  { op: 'starts_with', expected: '12', match: '123', noMatch: '312', wrongType: [123, false] },
  { op: 'ends_with', expected: 'lo', match: 'hello', noMatch: 'hey', wrongType: [['hello'], false] },
  { op: 'matches', expected: '^h.l+o$', match: 'hello', noMatch: 'yellow', wrongType: [{ text: 'hello' }, false] },
];

for (const c of OPERATOR_CASES) {
  test(`${c.op}: holds on a matching value, not on another value, never on a missing field`, () => {
    assert.equal(opHolds(c.op, c.expected, c.match), true, 'matching value');
    assert.equal(opHolds(c.op, c.expected, c.noMatch), false, 'non-matching value');
    assert.equal(opHolds(c.op, c.expected, undefined), false, 'absent field');
    assert.equal(opHolds(c.op, c.expected, null), false, 'null field');
    if (c.wrongType) assert.equal(opHolds(c.op, c.expected, c.wrongType[0]), c.wrongType[1], `wrong type ${JSON.stringify(c.wrongType[0])}`);
  });
}

test('matches: a number is not text, even when its digits would match', () => {
  assert.equal(opHolds('matches', '^12', 123), false);
});

test('gt/lt read numeric strings (header values) as numbers', () => {
  assert.equal(holds({ 'header.x-budget': { lt: 1 } }, {}, { 'x-budget': '0.40' }), true);
  assert.equal(holds({ 'header.x-budget': { lt: 1 } }, {}, { 'x-budget': '25' }), false);
  assert.equal(holds({ 'header.x-budget': { gt: 1 } }, {}, { 'x-budget': 'lots' }), false);
});

test('exists: true holds on a present value, exists: false on a missing one (the only operator true on missing)', () => {
  assert.equal(opHolds('exists', true, 'x'), true);
  assert.equal(opHolds('exists', true, 0), true);
  assert.equal(opHolds('exists', true, false), true);
  assert.equal(opHolds('exists', true, undefined), false);
  assert.equal(opHolds('exists', true, null), false);
  assert.equal(opHolds('exists', false, undefined), true);
  assert.equal(opHolds('exists', false, null), true);
  assert.equal(opHolds('exists', false, ''), false);
});

test('contains on an array field: an element equals the value (not a substring of one)', () => {
  assert.equal(opHolds('contains', 'b', ['a', 'b', 'c']), true);
  assert.equal(opHolds('contains', 'b', ['abc']), false);
  assert.equal(opHolds('contains', 2, [1, 2, 3]), true);
  assert.equal(opHolds('contains', 4, [1, 2, 3]), false);
  assert.equal(holds({ 'body.metadata.tags': { contains: 'urgent' } }, { metadata: { tags: ['billing', 'urgent'] } }), true);
});

test('in / not_in with lists of mixed scalars', () => {
  const list = [1, 'two', true, null];
  assert.equal(opHolds('in', list, 1), true);
  assert.equal(opHolds('in', list, 'two'), true);
  assert.equal(opHolds('in', list, true), true);
  assert.equal(opHolds('in', list, 2), false);
  assert.equal(opHolds('not_in', list, 2), true);
  assert.equal(opHolds('not_in', list, 'two'), false);
  assert.equal(opHolds('not_in', list, null), false); // missing, even though null is not "in" as a value
});

test('equality concession: header "5" equals 5 and "true" equals true', () => {
  assert.equal(holds({ 'header.x-n': 5 }, {}, { 'x-n': '5' }), true);
  assert.equal(holds({ 'header.x-n': 5 }, {}, { 'x-n': '6' }), false);
  assert.equal(holds({ 'header.x-flag': true }, {}, { 'x-flag': 'true' }), true);
  assert.equal(holds({ 'header.x-flag': true }, {}, { 'x-flag': 'yes' }), false);
  assert.equal(holds({ 'header.x-n': { in: [4, 5] } }, {}, { 'x-n': '5' }), true);
  assert.equal(holds({ 'header.x-n': { ne: 5 } }, {}, { 'x-n': '5' }), false);
  assert.equal(holds({ 'body.n': '5' }, { n: 5 }), true);
});

test('several operators in one matcher must all hold', () => {
  const when = { 'body.v': { gte: 10, lt: 20, ne: 15 } };
  assert.equal(holds(when, { v: 12 }), true);
  assert.equal(holds(when, { v: 15 }), false);
  assert.equal(holds(when, { v: 20 }), false);
  assert.equal(holds(when, { v: 9 }), false);
});

test('several keys in a when map must all hold', () => {
  const when = { 'header.x-task': 'code', 'header.x-tier': { in: ['pro', 'enterprise'] }, 'request.stream': true };
  assert.equal(holds(when, { stream: true }, { 'x-task': 'code', 'x-tier': 'pro' }), true);
  assert.equal(holds(when, { stream: false }, { 'x-task': 'code', 'x-tier': 'pro' }), false);
  assert.equal(holds(when, { stream: true }, { 'x-task': 'chat', 'x-tier': 'pro' }), false);
  assert.equal(holds(when, { stream: true }, { 'x-task': 'code' }), false);
});

test('any holds when one alternative holds', () => {
  const when = { any: [{ 'header.x-a': '1' }, { 'header.x-b': '1' }] };
  assert.equal(holds(when, {}, { 'x-a': '1' }), true);
  assert.equal(holds(when, {}, { 'x-b': '1' }), true);
  assert.equal(holds(when, {}, { 'x-a': '0', 'x-b': '0' }), false);
  assert.equal(holds(when, {}, {}), false);
});

test('all holds when every alternative holds', () => {
  const when = { all: [{ 'header.x-a': '1' }, { 'header.x-b': '1' }] };
  assert.equal(holds(when, {}, { 'x-a': '1', 'x-b': '1' }), true);
  assert.equal(holds(when, {}, { 'x-a': '1', 'x-b': '0' }), false);
  assert.equal(holds(when, {}, { 'x-b': '1' }), false);
});

test('not inverts its condition (and so holds on a missing field)', () => {
  const when = { not: { 'header.x-a': '1' } };
  assert.equal(holds(when, {}, { 'x-a': '1' }), false);
  assert.equal(holds(when, {}, { 'x-a': '2' }), true);
  assert.equal(holds(when, {}, {}), true);
});

test('any, all and not nest', () => {
  // (a and not b) or (c and (d or e))
  const when = {
    any: [
      { all: [{ 'header.x-a': '1' }, { not: { 'header.x-b': '1' } }] },
      { 'header.x-c': '1', any: [{ 'header.x-d': '1' }, { 'header.x-e': '1' }] },
    ],
  };
  assert.equal(holds(when, {}, { 'x-a': '1' }), true);
  assert.equal(holds(when, {}, { 'x-a': '1', 'x-b': '1' }), false);
  assert.equal(holds(when, {}, { 'x-c': '1', 'x-e': '1' }), true);
  assert.equal(holds(when, {}, { 'x-c': '1' }), false);
  assert.equal(holds(when, {}, { 'x-d': '1', 'x-e': '1' }), false);
});

test('the first matching rule wins, in file order', () => {
  const a = { name: 'a', when: { 'header.x-a': '1' }, route: { model: 'model/a' } };
  const b = { name: 'b', when: { 'header.x-b': '1' }, route: { model: 'model/b' } };
  const both = ctx({ 'x-a': '1', 'x-b': '1' }, { model: 'auto' });
  assert.equal(rulesOf([a, b]).decide(both).rule, 'a');
  assert.equal(rulesOf([a, b]).decide(both).model, 'model/a');
  assert.equal(rulesOf([b, a]).decide(both).rule, 'b');
  assert.equal(rulesOf([b, a]).decide(both).model, 'model/b');
});

test('no matching rule: rule none, the client body untouched and unchanged', () => {
  const rs = rulesOf([{ name: 'a', when: { 'header.x-a': '1' }, route: { model: 'model/a', max_tokens: 5 } }]);
  const body = { model: 'openai/gpt-4o', messages: [{ role: 'user', content: 'hi' }] };
  const decision = rs.decide(ctx({}, body));
  assert.equal(decision.rule, 'none');
  assert.equal(decision.bodyChanged, false);
  assert.equal(decision.body, body);
  assert.equal(decision.model, 'openai/gpt-4o');
  assert.equal(decision.reject, undefined);
  assert.equal(decision.upstreamHeaders, undefined);
});

// ---- matches (RE2) ----

test('matches: a valid pattern searches the text (not anchored unless written so)', () => {
  assert.equal(opHolds('matches', 'urgent', 'this is urgent, really'), true);
  assert.equal(opHolds('matches', '^urgent', 'this is urgent'), false);
  assert.equal(opHolds('matches', '\\b(asap|now)\\b', 'answer asap please'), true);
  assert.equal(opHolds('matches', '\\b(asap|now)\\b', 'answer asapx please'), false);
});

test('matches: (?i) makes the pattern case-insensitive', () => {
  assert.equal(opHolds('matches', '(?i)urgent', 'URGENT: build down'), true);
  assert.equal(opHolds('matches', 'urgent', 'URGENT: build down'), false);
});

test('matches: an invalid pattern is a load error at its line:col', () => {
  const text = [
    'version: 1',
    'rules:',
    '  - name: bad-regex',
    '    when:',
    '      body.x: { matches: "(unclosed" }',
    '    route: { pass: true }',
    '',
  ].join('\n');
  const problems = problemsOf(text);
  assert.equal(problems.length, 1);
  assert.match(problems[0]!, new RegExp(`^test\\.yaml:${at(text, '"(unclosed"')}: rules\\[0\\] "bad-regex": invalid regular expression "\\(unclosed": `));
});

test('matches: a pattern over 1000 characters is refused; 1000 is accepted', () => {
  const withPattern = (pattern: string) => `version: 1\nrules:\n  - name: r\n    when: { body.x: { matches: "${pattern}" } }\n    route: { pass: true }\n`;
  const text = withPattern('a'.repeat(1001));
  assert.deepEqual(problemsOf(text), [`test.yaml:${at(text, '"aaa')}: rules[0] "r": pattern is 1001 characters long; the limit is 1000`]);
  assert.equal(compileRules(withPattern('a'.repeat(1000)), 'test.yaml').rules.length, 1);
});

test('matches: catastrophic backtracking is impossible (^(a+)+$ on 50,000 a\'s and a !)', (t) => {
  // With JavaScript's backtracking RegExp, /^(a+)+$/ against "aaaa…a!" takes time exponential in the
  // number of a's: 40 a's would already run for hours. RE2 matches in linear time, so 50,000 is instant.
  const input = 'a'.repeat(50_000) + '!';
  const started = process.hrtime.bigint();
  const result = opHolds('matches', '^(a+)+$', input);
  const ms = Number(process.hrtime.bigint() - started) / 1e6;
  t.diagnostic(`^(a+)+$ on ${input.length} characters: ${ms.toFixed(1)} ms`);
  assert.equal(result, false);
  assert.equal(opHolds('matches', '^(a+)+$', 'a'.repeat(50_000)), true);
  assert.ok(ms < 2000, `took ${ms.toFixed(1)} ms`);
});

test('matches: only the first 65,536 characters are read', () => {
  assert.equal(opHolds('matches', 'needle', 'x'.repeat(65_536 - 6) + 'needle'), true); // ends at 65,536
  assert.equal(opHolds('matches', 'needle', 'x'.repeat(65_536 - 5) + 'needle'), false); // ends one past
  assert.equal(opHolds('matches', 'needle', 'x'.repeat(100_000) + 'needle'), false);
});

// ---- explain ----

test('explain: the trace gives each earlier rule its first failed condition, then the match; fields hold every used field', () => {
  const rs = rulesOf([
    { name: 'free', when: { 'header.x-tier': 'free' }, route: { model: 'm/free' } },
    { name: 'pro-core', when: { 'header.x-tier': 'pro', 'body.metadata.team': 'core' }, route: { model: 'm/pro' } },
    { name: 'summaries', when: { 'body.metadata.feature': { starts_with: 'summar' } }, route: { model: 'm/long' } },
    { name: 'fast', when: { any: [{ 'header.x-latency': 'low' }, { 'request.tokens': { gt: 100000 } }] }, route: { model: 'm/fast' } },
    { name: 'short', when: { 'request.text': 'short' }, route: { model: 'm/short' } },
    { name: 'auto', when: { model: 'auto' }, route: { model: 'm/auto' } },
    { name: 'later', when: { 'header.x-never': 'set' }, route: { model: 'm/later' } },
  ]);
  const prompt = 'x'.repeat(300);
  const shortened = `${'x'.repeat(200)}… (300 characters)`;
  const explanation = rs.explain(ctx(
    { 'x-tier': 'pro', 'x-latency': 'high' },
    { model: 'auto', metadata: { team: 'infra' }, messages: [{ role: 'user', content: prompt }] },
  ));
  const tokens = Math.ceil(300 / 4) + 4;
  assert.deepEqual(explanation.trace, [
    { rule: 'free', matched: false, failed: { field: 'header.x-tier', operator: 'eq', expected: 'free', actual: 'pro' } },
    { rule: 'pro-core', matched: false, failed: { field: 'body.metadata.team', operator: 'eq', expected: 'core', actual: 'infra' } },
    { rule: 'summaries', matched: false, failed: { field: 'body.metadata.feature', operator: 'starts_with', expected: 'summar', actual: null, missing: true } },
    { rule: 'fast', matched: false, failed: {
      field: 'any', operator: 'any', expected: 'one of 2 conditions', actual: [
        { field: 'header.x-latency', operator: 'eq', expected: 'low', actual: 'high' },
        { field: 'request.tokens', operator: 'gt', expected: 100000, actual: tokens },
      ],
    } },
    { rule: 'short', matched: false, failed: { field: 'request.text', operator: 'eq', expected: 'short', actual: shortened } },
    { rule: 'auto', matched: true },
  ]);
  assert.deepEqual(explanation.fields, {
    'header.x-tier': 'pro',
    'body.metadata.team': 'infra',
    'body.metadata.feature': null,
    'header.x-latency': 'high',
    'request.tokens': tokens,
    'request.text': shortened,
    model: 'auto',
    'header.x-never': null,
  });
  assert.equal(explanation.rule, 'auto');
  assert.equal(explanation.model, 'm/auto');
});

test('explain: a not that fails and no match at all', () => {
  const rs = rulesOf([{ name: 'not-core', when: { not: { 'header.x-team': 'core' } }, route: { pass: true } }]);
  const explanation = rs.explain(ctx({ 'x-team': 'core' }, { model: 'auto' }));
  assert.equal(explanation.rule, 'none');
  assert.equal(explanation.action, 'none');
  assert.equal(explanation.trace.length, 1);
  assert.equal(explanation.trace[0]!.matched, false);
  assert.equal(explanation.trace[0]!.failed?.field, 'not');
  assert.equal(explanation.body_changed, false);
});

test('matches: a pattern compiling to more than 2000 instructions is refused at its line:col, naming it', () => {
  // Legal RE2, linear, yet {0,1000} copies (.|\s) a thousand times: about 4,000 instructions,
  // seconds per request on 64 KiB of text.
  const text = 'version: 1\nrules:\n  - name: r\n    when: { request.text: { matches: "(.|\\\\s){0,1000}secret" } }\n    route: { pass: true }\n';
  assert.deepEqual(problemsOf(text), [
    `test.yaml:${at(text, '"(.|')}: rules[0] "r": regular expression "(.|\\\\s){0,1000}secret" compiles to 4008 instructions; the limit is 2000 (a repeat {n,m} copies what it repeats m times: lower m, or use * or +)`,
  ]);
  // The same pattern with a small bound, and the unbounded one, are fine.
  const ok = (pattern: string) => compileRules(`version: 1\nrules:\n  - name: r\n    when: { request.text: { matches: '${pattern}' } }\n    route: { pass: true }\n`, 'test.yaml');
  assert.equal(ok('(.|\\s){0,100}secret').rules.length, 1);
  assert.equal(ok('(.|\\s)*secret').rules.length, 1);
});

test('matches: the patterns of a file together may compile to at most 5000 instructions; the one crossing it is named', () => {
  // Each (.|\s){0,300}kN compiles to about 1,200 instructions: four fit, the fifth does not.
  const when = (n: number) => `    when: { body.f${n}: { matches: '(.|\\s){0,300}k${n}' } }`;
  const rules = [0, 1, 2, 3, 4].map((n) => `  - name: r${n}\n${when(n)}\n    route: { pass: true }`).join('\n');
  const text = `version: 1\nrules:\n${rules}\n`;
  const problems = problemsOf(text);
  assert.equal(problems.length, 1, JSON.stringify(problems));
  assert.match(problems[0]!, new RegExp(`^test\\.yaml:${at(text, "'(.|\\s){0,300}k4'")}: rules\\[4\\] "r4": regular expression "\\(\\.\\|\\\\\\\\s\\)\\{0,300\\}k4" takes the file's patterns to \\d+ instructions; together they may compile to at most 5000`));
  assert.equal(compileRules(`version: 1\nrules:\n${rules.split('\n').slice(0, 12).join('\n')}\n`, 'test.yaml').rules.length, 4);
});
