import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { test } from 'node:test';
import { parseCatalog } from '../../src/catalog/catalog.js';
import { caseContext, parseCases, runCases } from '../../src/rules/cases.js';
import { compileRules, RulesError } from '../../src/rules/compile.js';
import { compileRulesText } from '../../src/rules-file/loader.js';

function problemsOf(text: string): readonly string[] {
  try {
    compileRules(text, 'test.yaml');
  } catch (err) {
    assert.ok(err instanceof RulesError, String(err));
    return err.problems;
  }
  assert.fail('expected a RulesError');
}

/** 1-based `line:col` of a character offset in `text`. */
function lineCol(text: string, offset: number): string {
  const before = text.slice(0, offset).split('\n');
  return `${before.length}:${before[before.length - 1]!.length + 1}`;
}

/** 1-based `line:col` of `needle`, which must occur exactly once in `text`. */
function at(text: string, needle: string): string {
  const offset = text.indexOf(needle);
  assert.ok(offset >= 0, `${JSON.stringify(needle)} not in the text`);
  assert.equal(text.indexOf(needle, offset + 1), -1, `${JSON.stringify(needle)} is not unique in the text`);
  return lineCol(text, offset);
}

/**
 * Asserts the problems, in order: each is `test.yaml:<line:col of needle>: <message start>`.
 * Only the start of each message is compared (the end may list known fields, tiers, ...).
 */
function assertProblems(text: string, expected: [needle: string, message: string][]): void {
  const want = expected.map(([needle, message]) => `test.yaml:${at(text, needle)}: ${message}`);
  const got = problemsOf(text).map((p, i) => {
    const [, where = '', message = p] = /^(test\.yaml:\d+:\d+): (.*)$/s.exec(p) ?? [];
    const length = expected[i]?.[1].length;
    return `${where}: ${length === undefined ? message : message.slice(0, length)}`;
  });
  assert.deepEqual(got, want);
}

const lines = (...l: string[]) => `${l.join('\n')}\n`;

// ---- each load error, positioned ----

test('an unknown tier is an error at the tier name', () => {
  const text = lines(
    'version: 1',
    'tiers:',
    '  fast: { model: m/fast }',
    'rules:',
    '  - name: r',
    '    route: { tier: ghost }',
  );
  assertProblems(text, [['ghost', 'rules[0] "r": unknown tier "ghost" (tiers: fast)']]);
});

test('a duplicate rule name is an error at the second name', () => {
  const text = lines(
    'version: 1',
    'rules:',
    '  - name: twice',
    '    when: { model: a }',
    '    route: { model: m }',
    '  - name:   twice',
    '    when: { model: b }',
    '    route: { model: m }',
  );
  assertProblems(text, [['twice\n    when: { model: b }', 'rules[1] "twice": duplicate rule name: rules[0] "twice" has it too']]);
});

test('the rule name none is reserved', () => {
  const text = lines('version: 1', 'rules:', '  - name: none', '    route: { model: m }');
  assertProblems(text, [['none', 'rules[0] "none": the name "none" is reserved']]);
});

test('the rule name unrouted is reserved: metrics use it for requests the rules never saw', () => {
  const text = lines('version: 1', 'rules:', '  - name: unrouted', '    route: { model: m }');
  assertProblems(text, [['unrouted', 'rules[0] "unrouted": the name "unrouted" is reserved: it names requests the rules never saw']]);
});

test('a rule after a catch-all without when can never match', () => {
  const text = lines(
    'version: 1',
    'rules:',
    '  - name: everything',
    '    route: { model: m }',
    '  - name: late',
    '    when: { model: x }',
    '    route: { model: m }',
  );
  assertProblems(text, [['name: late', 'rules[1] "late": can never match: rules[0] "everything" before it matches every request']]);
});

test('a rule after a catch-all with an empty when can never match', () => {
  const text = lines(
    'version: 1',
    'rules:',
    '  - name: everything',
    '    when: {}',
    '    route: { model: m }',
    '  - name: late',
    '    when: { model: x }',
    '    route: { model: m }',
    '  - name: later',
    '    route: { model: m }',
  );
  assertProblems(text, [
    ['name: late\n', 'rules[1] "late": can never match: rules[0] "everything" before it matches every request'],
    ['name: later', 'rules[2] "later": can never match: rules[0] "everything" before it matches every request'],
  ]);
});

test('an invalid regular expression is an error at the pattern', () => {
  const text = lines(
    'version: 1',
    'rules:',
    '  - name: r',
    '    when:',
    '      request.text:',
    '        matches: "a(b"',
    '    route: { model: m }',
  );
  assertProblems(text, [['"a(b"', 'rules[0] "r": invalid regular expression "a(b": ']]);
});

test('an unknown field is an error at the field name', () => {
  const text = lines(
    'version: 1',
    'rules:',
    '  - name: r',
    '    when:',
    '      request.colour:',
    '        in: [blue, green]',
    '    route: { model: m }',
  );
  assertProblems(text, [['request.colour', 'rules[0] "r": unknown field "request.colour" (known: ']]);
});

test('unknown keys in a tier, a rule and a route are errors at the key', () => {
  const text = lines(
    'version: 1',
    'tiers:',
    '  t: { model: m, fallback: [x] }',
    'rules:',
    '  - name: r',
    '    wen: { model: x }',
    '    route: { tier: t, temprature: 1 }',
  );
  const problems = [...problemsOf(text)].sort();
  assert.deepEqual(problems, [
    `test.yaml:${at(text, 'fallback')}: unknown key "fallback" in tiers.t`,
    `test.yaml:${at(text, 'wen')}: rules[0] "r": unknown key "wen" in the rule`,
    `test.yaml:${at(text, 'temprature')}: rules[0] "r": unknown key "temprature" in route`,
  ].sort());
});

test('a list used as a matcher is an error that suggests in', () => {
  const text = lines('version: 1', 'rules:', '  - name: r', '    when: { header.x-tier: [free, trial] }', '    route: { model: m }');
  assertProblems(text, [['[free, trial]', 'rules[0] "r": when.header.x-tier a list is not a matcher here: write { in: [...] }']]);
});

test('a missing version is an error', () => {
  const text = lines('rules:', '  - name: r', '    route: { model: m }');
  assertProblems(text, [['rules:', "the rules file must have required property 'version'"]]);
});

test('version 2 is an error at the version', () => {
  const text = lines('version: 2', 'rules:', '  - name: r', '    route: { model: m }');
  assertProblems(text, [['2', 'version must be 1']]);
});

test('a route with both model and tier is an error', () => {
  const text = lines('version: 1', 'tiers:', '  t: { model: m }', 'rules:', '  - name: r', '    route: { model: m, tier: t }');
  assertProblems(text, [['{ model: m, tier: t }', 'rules[0] "r": a route needs exactly one of "model" or "tier"']]);
});

test('a route with neither model nor tier is an error', () => {
  const text = lines('version: 1', 'rules:', '  - name: r', '    route: { max_tokens: 5 }');
  assertProblems(text, [['{ max_tokens: 5 }', 'rules[0] "r": a route needs exactly one of "model" or "tier"']]);
});

test('pass and reject stand alone', () => {
  const text = lines(
    'version: 1',
    'rules:',
    '  - name: p',
    '    when: { model: x }',
    '    route: { pass: true, model: m }',
    '  - name: j',
    '    route: { reject: { status: 403 }, max_tokens: 5, headers: { x-a: b } }',
  );
  assertProblems(text, [
    ['{ pass: true, model: m }', 'rules[0] "p": route.pass stands alone; remove "model"'],
    ['{ reject:', 'rules[1] "j": route.reject stands alone; remove "max_tokens", "headers"'],
  ]);
});

test('params may not set model, models, messages, stream, max_tokens or provider (routes and tiers)', () => {
  const text = lines(
    'version: 1',
    'tiers:',
    '  t: { model: m, params: { stream: true } }',
    'rules:',
    '  - name: r',
    '    route:',
    '      model: m',
    '      params:',
    '        temperature: 0',
    '        model: x',
    '        models: [x]',
    '        messages: []',
    '        stream: false',
    '        max_tokens: 5',
    '        provider:',
    '          sort: price',
  );
  assertProblems(text, [
    ['stream: true', 'params may not set "stream": the client decides whether it reads a stream'],
    ['model: x', 'rules[0] "r": params may not set "model": use route.model or route.tier'],
    ['models: [x]', 'rules[0] "r": params may not set "models": use route.fallbacks'],
    ['messages: []', 'rules[0] "r": params may not set "messages": use route.system_prompt'],
    ['stream: false', 'rules[0] "r": params may not set "stream": the client decides whether it reads a stream'],
    ['max_tokens: 5', 'rules[0] "r": params may not set "max_tokens": use route.max_tokens (a cap)'],
    ['provider:', 'rules[0] "r": params may not set "provider": use route.provider'],
  ]);
});

test('headers may not set credentials or what the proxy computes, nor use invalid names', () => {
  const text = lines(
    'version: 1',
    'rules:',
    '  - name: r',
    '    route:',
    '      model: m',
    '      headers:',
    '        X-Title: fine',
    '        Authorization: Bearer stolen',
    '        host: example.test',
    '        Content-Length: "5"',
    '        cookie: a=b',
    '        bad header: x',
  );
  assertProblems(text, [
    ['Authorization', 'rules[0] "r": header "Authorization" is set by the proxy and may not come from a rule'],
    ['host', 'rules[0] "r": header "host" is set by the proxy and may not come from a rule'],
    ['Content-Length', 'rules[0] "r": header "Content-Length" is set by the proxy and may not come from a rule'],
    ['cookie', 'rules[0] "r": header "cookie" is set by the proxy and may not come from a rule'],
    ['bad header', 'rules[0] "r": "bad header" is not a valid header name'],
  ]);
});

test('a header value with a line break, a control character or a non-ASCII letter is refused at the value, never printed', () => {
  const text = lines(
    'version: 1',
    'tiers:',
    '  t: { model: m, headers: { x-tier: "secret\\u0000" } }',
    'rules:',
    '  - name: r',
    '    route:',
    '      model: m',
    '      headers:',
    '        x-fine: "a value\\twith a tab"',
    '        x-empty: ""',
    '        x-split: "sk-provider-secret\\nx-injected: 1"',
    '        x-cr: "a\\rb"',
    '        x-latin: "café"',
    '        x-padded: " padded"',
  );
  const why = 'must be visible ASCII characters, with spaces or tabs only between them (RFC 9110 §5.5): no line break, control character or non-ASCII letter';
  assertProblems(text, [
    ['"secret', `the value of header "x-tier" ${why}`],
    ['"sk-provider-secret', `rules[0] "r": the value of header "x-split" ${why}`],
    ['"a\\rb"', `rules[0] "r": the value of header "x-cr" ${why}`],
    ['"café"', `rules[0] "r": the value of header "x-latin" ${why}`],
    ['" padded"', `rules[0] "r": the value of header "x-padded" ${why}`],
  ]);
  assert.equal(problemsOf(text).join('\n').includes('sk-provider-secret'), false);
});

test('an unknown time zone is an error at the timezone', () => {
  const text = lines('version: 1', 'timezone: Mars/Olympus', 'rules:', '  - name: r', '    route: { model: m }');
  assertProblems(text, [['Mars/Olympus', 'unknown time zone "Mars/Olympus"']]);
});

test('a YAML syntax error is positioned', () => {
  const text = lines('version: 1', 'rules:', '  - name: r', '    route: { model: m }}');
  const extraBrace = text.lastIndexOf('}');
  assert.deepEqual(problemsOf(text), [`test.yaml:${lineCol(text, extraBrace)}: Unexpected flow-map-end token in YAML stream: "}"`]);
});

test('a YAML key written twice is an error at the second one', () => {
  const text = lines('version: 1', 'rules:', '  - name: r', '    route: { model: m }', '    name: s');
  assertProblems(text, [['name: s', 'Map keys must be unique']]);
});

test('every problem of a file is reported at once', () => {
  const text = lines(
    'version: 1',
    'timezone: Europe/Atlantis',
    'rules:',
    '  - name: a',
    '    when: { request.text: { matches: "(" } }',
    '    route: { tier: ghost }',
    '  - name: a',
    '    route: { model: m }',
  );
  assertProblems(text, [
    ['Europe/Atlantis', 'unknown time zone "Europe/Atlantis"'],
    ['"("', 'rules[0] "a": invalid regular expression "("'],
    ['ghost', 'rules[0] "a": unknown tier "ghost"'],
    ['a\n    route: { model: m }', 'rules[1] "a": duplicate rule name: rules[0] "a" has it too'],
  ]);
});

test('schema problems do not stop the semantic checks: a misspelt key and an unknown tier come in one run, in file order', () => {
  const text = lines(
    'version: 1',
    'tiers:',
    '  fast: { model: m/fast }',
    'rules:',
    '  - name: code-tasks',
    '    when: { header.x-task: code }',
    '    route: { tier: fsat }',
    '  - name: default',
    '    route: { tier: fast, max_tokns: 100 }',
  );
  assertProblems(text, [
    ['fsat', 'rules[0] "code-tasks": unknown tier "fsat" (tiers: fast)'],
    ['max_tokns', 'rules[1] "default": unknown key "max_tokns" in route'],
  ]);
});

test('inside a rule the schema refuses, the parts that are well-formed are still checked', () => {
  const text = lines(
    'version: 1',
    'rules:',
    '  - name: broken',
    '    when: { request.text: { matches: "(" }, header.x-a: { gt: high } }',
    '    route: { tier: ghost, max_tokens: 0, temprature: 1 }',
  );
  assertProblems(text, [
    ['"("', 'rules[0] "broken": invalid regular expression "("'],
    ['high', 'rules[0] "broken": when.header.x-a.gt must be number'],
    ['ghost', 'rules[0] "broken": unknown tier "ghost" (tiers: none defined)'],
    ['0, temprature', 'rules[0] "broken": route.max_tokens must be >= 1'],
    ['temprature', 'rules[0] "broken": unknown key "temprature" in route'],
  ]);
});

test('what the schema cut out raises no second, made-up problem', () => {
  const text = lines(
    'version: 1',
    'tiers:',
    '  big: { model: m, fallbacks: oops }',
    'rules:',
    '  - name: misspelt-when',
    '    wehn: { header.x-a: "1" }',
    '    route: { model: m }',
    '  - name: bad-when',
    '    when: { any: nope }',
    '    route: { modle: m }',
    '  - name: uses-big',
    '    route: { tier: big }',
  );
  // Not: "unknown tier big", "can never match" after the first two rules (whose conditions were
  // cut, not absent), nor "a route needs exactly one of model or tier" for the misspelt model.
  assertProblems(text, [
    ['oops', 'tiers.big.fallbacks must be array'],
    ['wehn', 'rules[0] "misspelt-when": unknown key "wehn" in the rule'],
    ['nope', 'rules[1] "bad-when": when.any must be array'],
    ['modle', 'rules[1] "bad-when": unknown key "modle" in route'],
  ]);
});

test('a rule without a usable name is named by its index, a long name is shortened', () => {
  const long = 'x'.repeat(500);
  const text = lines('version: 1', 'rules:', '  - name: 42', '    route: { tier: a }', `  - name: ${long}`, '    route: { tier: b }');
  const problems = problemsOf(text);
  assert.ok(problems.includes(`test.yaml:${at(text, 'a }')}: rules[0]: unknown tier "a" (tiers: none defined)`), problems.join('\n'));
  assert.ok(problems.includes(`test.yaml:${at(text, 'b }')}: rules[1] "${'x'.repeat(64)}…": unknown tier "b" (tiers: none defined)`), problems.join('\n'));
});

test('a tier with an invalid name is named at its key, and rules that use it still find it', () => {
  const text = lines('version: 1', 'tiers:', '  "fast tier": { model: m }', 'rules:', '  - name: r', '    route: { tier: fast tier }');
  assertProblems(text, [['"fast tier":', 'invalid name "fast tier" in tiers: use letters, digits']]);
});

test('an empty file, a file of comments and a null document get one readable message', () => {
  for (const text of ['', '# nothing yet\n', 'null\n', '~\n']) {
    assert.deepEqual(problemsOf(text), ['test.yaml: the file is empty: expected a mapping with "version: 1" and a "rules" list'], JSON.stringify(text));
  }
  assert.deepEqual(problemsOf('- a\n'), ['test.yaml:1:1: expected a mapping with "version: 1" and a "rules" list, not a list']);
});

test('a RulesError message lists every problem', () => {
  const text = lines('version: 1', 'rules:', '  - name: none', '    route: { tier: ghost }');
  assert.throws(() => compileRules(text, 'test.yaml'), (err: unknown) => {
    assert.ok(err instanceof RulesError);
    assert.equal(err.problems.length, 2);
    for (const p of err.problems) assert.ok(err.message.includes(p), p);
    return true;
  });
});

// ---- the compiled RuleSet ----

const VALID = lines(
  'version: 1',
  'rules:',
  '  - name: a',
  '    when: { model: x }',
  '    route: { model: m }',
  '  - name: b',
  '    route: { pass: true }',
);

test('the compiled RuleSet and its rules array are frozen', () => {
  const rs = compileRules(VALID, 'test.yaml');
  assert.equal(Object.isFrozen(rs), true);
  assert.equal(Object.isFrozen(rs.rules), true);
  assert.deepEqual(rs.rules.map((r) => r.name), ['a', 'b']);
  assert.throws(() => (rs.rules as unknown[]).push({}), TypeError);
  assert.throws(() => { (rs as { hash: string }).hash = 'x'; }, TypeError);
  assert.equal(rs.rules.length, 2);
});

test('the hash changes when the text changes, and not otherwise', () => {
  const first = compileRules(VALID, 'test.yaml').hash;
  assert.match(first, /^[0-9a-f]{12}$/);
  assert.equal(compileRules(VALID, 'other-name.yaml').hash, first);
  assert.equal(compileRules(VALID, 'test.yaml').hash, first);
  assert.notEqual(compileRules(`${VALID}# a comment\n`, 'test.yaml').hash, first);
  assert.notEqual(compileRules(VALID.replace('model: m', 'model: n'), 'test.yaml').hash, first);
});

// ---- the shipped example ----

test('the shipped rules.yaml compiles', () => {
  const rs = compileRulesText(readFileSync('rules.yaml', 'utf8'), 'rules.yaml');
  assert.ok(rs.rules.length >= 10, `${rs.rules.length} rules`);
  assert.equal(rs.timezone, 'UTC');
});

test('rules.test.yaml passes and exercises every rule of rules.yaml', () => {
  const cases = parseCases(readFileSync('rules.test.yaml', 'utf8'), 'rules.test.yaml');
  assert.equal(cases.rules, './rules.yaml');
  const rulesFile = resolve(dirname('rules.test.yaml'), cases.rules);
  const rs = compileRulesText(readFileSync(rulesFile, 'utf8'), rulesFile);
  assert.ok(cases.catalog, 'the example cases pin a catalog');
  const catalog = parseCatalog(JSON.parse(readFileSync(resolve(dirname('rules.test.yaml'), cases.catalog), 'utf8')));

  const failed = runCases(rs, cases, catalog).filter((r) => !r.passed).map((r) => `${r.name}: ${r.mismatches.join('; ')}`);
  assert.deepEqual(failed, []);

  // the rule each case actually reaches, built the way runCase builds its request
  const seen = new Set(cases.cases.map((c) => rs.explain(caseContext(c, cases.now, catalog)).rule));
  const untested = rs.rules.map((r) => r.name).filter((name) => !seen.has(name));
  assert.deepEqual(untested, []);
});
