import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { once } from 'node:events';
import { closeSync, mkdirSync, mkdtempSync, openSync, renameSync, rmSync, symlinkSync, writeFileSync, writeSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test, type TestContext } from 'node:test';
import { FakeOpenRouter } from '../../src/dev/fake-openrouter.js';
import { compileRules } from '../../src/rules/compile.js';
import type { RequestContext } from '../../src/rules/decision.js';
import { startRulesReloader, type RulesReloader } from '../../src/rules-file/reloader.js';
import { loadRulesFile, MAX_RULES_FILE_BYTES } from '../../src/rules-file/loader.js';
import { RulesError } from '../../src/rules/compile.js';
import type { LiveRules, ReloadEvent } from '../../src/rules-file/live-rules.js';
import { buildApp } from '../../src/server/app.js';
import { createLogger } from '../../src/server/logger.js';
import { LogCapture, testConfig } from '../support/harness.js';
import { spawnMain } from '../support/main-process.js';
import { TEST_MODELS } from '../support/models.js';
import { withTimeout } from '../support/timeout.js';

/** Every test waits on events; this only turns a lost event into a failure instead of a hang. */
const EVENT_TEST = { timeout: 20_000 };

/** A rules file with one catch-all rule `name` routing to `model`. */
function rulesText(name: string, model: string): string {
  return `version: 1\nrules:\n  - name: ${name}\n    route: { model: ${model} }\n`;
}

/** The hash a RuleSet gets for this text (the file name plays no part in it). */
function hashOf(text: string): string {
  return compileRules(text, 'hash-only.yaml').hash;
}

const CONTEXT: RequestContext = { headers: {}, body: { model: 'auto', messages: [{ role: 'user', content: 'hi' }] }, requestedModel: 'auto' };

function routedBy(rules: LiveRules): { rule: string; model: string | undefined } {
  const d = rules.current.decide(CONTEXT);
  return { rule: d.rule, model: d.model };
}

function tempDir(t: TestContext): string {
  const dir = mkdtempSync(join(tmpdir(), 'signalbox-reload-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/**
 * The next 'reload' event that satisfies `predicate`. Call it before causing the change: the
 * listener is registered synchronously, so no event can slip between the call and the change.
 */
async function nextReload(rules: LiveRules, predicate: (e: ReloadEvent) => boolean = () => true): Promise<ReloadEvent> {
  for (;;) {
    const [event] = (await withTimeout(once(rules, 'reload'), 'a reload event')) as [ReloadEvent];
    if (predicate(event)) return event;
  }
}

/** The next reload that is not `unchanged` (a spurious event may re-read the same file). */
const changedOrRefused = (e: ReloadEvent): boolean => e.result !== 'unchanged';

interface Live {
  readonly reloader: RulesReloader;
  readonly rules: LiveRules;
  readonly logs: LogCapture;
  /** Every reload event since start, in order. */
  readonly events: ReloadEvent[];
}

function startLive(t: TestContext, file: string, options: { debounceMs?: number; pollIntervalMs?: number } = {}): Live {
  const logs = new LogCapture();
  const reloader = startRulesReloader(file, createLogger('debug', logs), { debounceMs: options.debounceMs ?? 20, pollIntervalMs: options.pollIntervalMs ?? 0 });
  t.after(() => reloader.close());
  // The watcher's handles are unref'd (they must not keep a server process alive on their own);
  // this keeps the test's event loop running while it waits for them.
  const keepAlive = setInterval(() => undefined, 60_000);
  t.after(() => clearInterval(keepAlive));
  const events: ReloadEvent[] = [];
  reloader.rules.on('reload', (e: ReloadEvent) => events.push(e));
  return { reloader, rules: reloader.rules, logs, events };
}

/** A temp dir with `rules.yaml` holding rules A (rule `rule-a` -> model/a). */
function liveOnRulesA(t: TestContext, options?: { debounceMs?: number; pollIntervalMs?: number }): Live & { file: string; dir: string } {
  const dir = tempDir(t);
  const file = join(dir, 'rules.yaml');
  writeFileSync(file, rulesText('rule-a', 'model/a'));
  return { ...startLive(t, file, options), file, dir };
}

/** Replaces `file` the way editors save: write a sibling temp file, rename it over the original. */
function saveByRename(file: string, text: string): void {
  writeFileSync(`${file}.tmp`, text);
  renameSync(`${file}.tmp`, file);
}

test('an in-place write of the rules file takes effect', EVENT_TEST, async (t) => {
  const { rules, file } = liveOnRulesA(t);
  const before = rules.current.hash;
  const textB = rulesText('rule-b', 'model/b');

  const reloaded = nextReload(rules, changedOrRefused);
  writeFileSync(file, textB);
  const event = await reloaded;

  assert.equal(event.result, 'success');
  assert.equal(event.trigger, 'watch');
  assert.equal(event.previousHash, before);
  assert.equal(event.hash, hashOf(textB));
  assert.equal(rules.current.hash, hashOf(textB));
  assert.deepEqual(routedBy(rules), { rule: 'rule-b', model: 'model/b' });
});

test('saves by rename are picked up, two in a row (the watch follows the name, not the inode)', EVENT_TEST, async (t) => {
  const { rules, file } = liveOnRulesA(t);
  for (const [name, model] of [['rule-b', 'model/b'], ['rule-c', 'model/c']] as const) {
    const text = rulesText(name, model);
    const reloaded = nextReload(rules, changedOrRefused);
    saveByRename(file, text);
    const event = await reloaded;
    assert.equal(event.result, 'success', `save of ${name}`);
    assert.equal(event.hash, hashOf(text));
    assert.deepEqual(routedBy(rules), { rule: name, model });
  }
});

test('a Kubernetes ConfigMap update (..data symlink swap) takes effect', EVENT_TEST, async (t) => {
  const dir = tempDir(t);
  // The layout kubelet writes: a timestamped directory, `..data` pointing at it, and the key as a
  // symlink through `..data`.
  mkdirSync(join(dir, '..2026_a'));
  writeFileSync(join(dir, '..2026_a', 'rules.yaml'), rulesText('rule-a', 'model/a'));
  symlinkSync('..2026_a', join(dir, '..data'));
  symlinkSync('..data/rules.yaml', join(dir, 'rules.yaml'));
  const { rules } = startLive(t, join(dir, 'rules.yaml'));
  assert.deepEqual(routedBy(rules), { rule: 'rule-a', model: 'model/a' });

  const textB = rulesText('rule-b', 'model/b');
  const reloaded = nextReload(rules, changedOrRefused);
  mkdirSync(join(dir, '..2026_b'));
  writeFileSync(join(dir, '..2026_b', 'rules.yaml'), textB);
  symlinkSync('..2026_b', join(dir, '..data_tmp'));
  renameSync(join(dir, '..data_tmp'), join(dir, '..data'));
  const event = await reloaded;

  assert.equal(event.result, 'success');
  assert.equal(event.hash, hashOf(textB));
  assert.deepEqual(routedBy(rules), { rule: 'rule-b', model: 'model/b' });
});

test('a broken rules file is refused with positioned problems, logged, and the running rules keep serving', EVENT_TEST, async (t) => {
  const { rules, file, logs } = liveOnRulesA(t);
  const original = rules.current;
  const broken = [
    {
      what: 'YAML syntax error',
      text: 'version: 1\nrules:\n  - name: main\n    route: { model: x ]\n',
      problems: [`${file}:4:23: Flow map in block collection must be sufficiently indented and end with a }`],
    },
    {
      what: 'schema error',
      text: 'version: 1\nrules:\n  - name: main\n    route: { model: x, modle: y }\n',
      problems: [`${file}:4:24: rules[0] "main": unknown key "modle" in route`],
    },
    {
      what: 'unknown tier',
      text: 'version: 1\nrules:\n  - name: main\n    route: { tier: gold }\n',
      problems: [`${file}:4:20: rules[0] "main": unknown tier "gold" (tiers: none defined)`],
    },
    {
      what: 'a misspelt key and an unknown tier, in one refusal',
      text: 'version: 1\nrules:\n  - name: code-tasks\n    route: { tier: gold, fallbaks: [x] }\n',
      problems: [
        `${file}:4:20: rules[0] "code-tasks": unknown tier "gold" (tiers: none defined)`,
        `${file}:4:26: rules[0] "code-tasks": unknown key "fallbaks" in route`,
      ],
    },
    {
      what: 'an empty file',
      text: '',
      problems: [`${file}: the file is empty: expected a mapping with "version: 1" and a "rules" list`],
    },
  ];
  for (const b of broken) {
    const reloaded = nextReload(rules, changedOrRefused);
    writeFileSync(file, b.text);
    const event = await reloaded;

    assert.equal(event.result, 'failure', b.what);
    assert.deepEqual(event.problems, b.problems, b.what);
    assert.equal(event.hash, original.hash, b.what);
    assert.equal(rules.current, original, `${b.what}: the same RuleSet keeps serving`);
    assert.deepEqual(routedBy(rules), { rule: 'rule-a', model: 'model/a' }, b.what);

    const line = await logs.waitFor((r) => r.level === 50 && Array.isArray(r.problems) && (r.problems as string[])[0] === b.problems[0]);
    assert.equal(line.rules_file, file);
    assert.equal(line.rules_hash, original.hash);
    assert.equal(line.trigger, 'watch');
    assert.equal(line.msg, `rules file refused, still serving rules ${original.hash}: ${b.problems.join('; ')}`);
  }

  const fixed = rulesText('rule-fixed', 'model/fixed');
  const reloaded = nextReload(rules, changedOrRefused);
  writeFileSync(file, fixed);
  const event = await reloaded;
  assert.equal(event.result, 'success');
  assert.equal(event.previousHash, original.hash);
  assert.equal(event.hash, hashOf(fixed));
  assert.deepEqual(routedBy(rules), { rule: 'rule-fixed', model: 'model/fixed' });
  const ok = await logs.waitFor((r) => r.msg === 'rules reloaded');
  assert.equal(ok.level, 30);
  assert.equal(ok.rules_hash, hashOf(fixed));
  assert.equal(ok.previous_hash, original.hash);
  assert.equal(ok.rules, 1);
});

const FULL_FILE = [
  'version: 1',
  'tiers:',
  '  big: { model: partial/full, fallbacks: [partial/backup] }',
  'rules:',
  '  - name: first',
  '    when: { header.x-a: "1" }',
  '    route: { tier: big }',
  '  - name: second',
  '    route: { model: partial/second }',
  '',
].join('\n');
/** Cut inside `route: { tier: big }`: an unclosed flow map, which does not parse. */
const HALF = FULL_FILE.slice(0, FULL_FILE.indexOf('{ tier') + 4);

/**
 * What a partial write may and may not do: a reload may read the half-written file, but it must
 * refuse it. So every `success` has the full file's hash, every `failure` still serves the
 * original hash, and the rules go from the original straight to the full file's.
 */
function assertOnlyTheFullFileWentLive(events: readonly ReloadEvent[], originalHash: string): void {
  const fullHash = hashOf(FULL_FILE);
  for (const e of events) {
    if (e.result === 'success') assert.deepEqual([e.previousHash, e.hash], [originalHash, fullHash], 'a success is the full file, replacing the original');
    if (e.result === 'failure') assert.equal(e.hash, originalHash, 'a refused read keeps the original rules');
    if (e.result === 'unchanged') assert.ok(e.hash === originalHash || e.hash === fullHash);
  }
  assert.equal(events.filter((e) => e.result === 'success').length, 1, 'exactly one swap');
}

test('a file written in two pieces: the half-written file is refused, the complete one goes live', EVENT_TEST, async (t) => {
  assert.throws(() => compileRules(HALF, 'half.yaml'), /invalid rules file/, 'precondition: the first half does not compile');
  const { rules, file, events } = liveOnRulesA(t);
  const original = rules.current;

  const fd = openSync(file, 'w');
  t.after(() => closeSync(fd));
  const refused = nextReload(rules, changedOrRefused);
  writeSync(fd, HALF);
  // The reload reads the half-written file (nothing else is written until it has).
  const halfEvent = await refused;
  assert.equal(halfEvent.result, 'failure');
  assert.equal(rules.current, original);

  const completed = nextReload(rules, (e) => e.result === 'success');
  writeSync(fd, FULL_FILE.slice(HALF.length));
  const fullEvent = await completed;
  assert.equal(fullEvent.hash, hashOf(FULL_FILE));
  assert.deepEqual(rules.current.rules.map((r) => r.name), ['first', 'second']);
  assertOnlyTheFullFileWentLive(events, original.hash);
});

test('a file written in two quick pieces never serves the half-written file', EVENT_TEST, async (t) => {
  const { rules, file, events } = liveOnRulesA(t);
  const original = rules.current;
  const completed = nextReload(rules, (e) => e.result === 'success');
  const fd = openSync(file, 'w');
  try {
    writeSync(fd, HALF);
    writeSync(fd, FULL_FILE.slice(HALF.length));
  } finally {
    closeSync(fd);
  }
  const event = await completed;
  assert.equal(event.hash, hashOf(FULL_FILE));
  // Whether the debounce saw one burst or the half file on its own depends on timing; either way
  // no other content ever went live.
  assertOnlyTheFullFileWentLive(events, original.hash);
});

test('the stat poll catches a change that the directory watch cannot see', EVENT_TEST, async (t) => {
  // The watched directory holds only a symlink to a file elsewhere: writing that file in place
  // produces no event in the watched directory, deterministically. Only the poll (stat() follows
  // the symlink) can notice, and it reports trigger `poll`.
  const dir = tempDir(t);
  mkdirSync(join(dir, 'elsewhere'));
  mkdirSync(join(dir, 'watched'));
  const target = join(dir, 'elsewhere', 'rules.yaml');
  writeFileSync(target, rulesText('rule-a', 'model/a'));
  symlinkSync(target, join(dir, 'watched', 'rules.yaml'));
  const { rules } = startLive(t, join(dir, 'watched', 'rules.yaml'), { debounceMs: 10, pollIntervalMs: 50 });

  const textB = rulesText('rule-b-from-poll', 'model/b');
  const reloaded = nextReload(rules, changedOrRefused);
  writeFileSync(target, textB);
  const event = await reloaded;
  assert.equal(event.result, 'success');
  assert.equal(event.trigger, 'poll');
  assert.equal(event.hash, hashOf(textB));
  assert.deepEqual(routedBy(rules), { rule: 'rule-b-from-poll', model: 'model/b' });
});

test('rewriting identical bytes is `unchanged` and keeps the same RuleSet', EVENT_TEST, async (t) => {
  const { rules, file, logs } = liveOnRulesA(t);
  const original = rules.current;
  const reloaded = nextReload(rules);
  writeFileSync(file, rulesText('rule-a', 'model/a'));
  const event = await reloaded;
  assert.equal(event.result, 'unchanged');
  assert.equal(event.hash, original.hash);
  assert.equal(event.previousHash, original.hash);
  assert.equal(rules.current, original);
  const line = await logs.waitFor((r) => r.msg === 'rules file unchanged');
  assert.equal(line.level, 20);
  assert.equal(line.rules_hash, original.hash);
});

test('restoring the rules in force after a refused file is logged at info and clears the failure', EVENT_TEST, async (t) => {
  const { rules, file, logs } = liveOnRulesA(t);
  const original = rules.current;
  const refused = nextReload(rules, changedOrRefused);
  writeFileSync(file, 'version: 1\nrules:\n  - name: rule-a\n    route: { tier: gold }\n');
  assert.equal((await refused).result, 'failure');
  assert.equal(rules.failing, true);

  const fixed = nextReload(rules, (e) => e.result !== 'failure');
  writeFileSync(file, rulesText('rule-a', 'model/a'));
  const event = await fixed;
  assert.equal(event.result, 'unchanged');
  assert.equal(event.recovered, true);
  assert.equal(rules.failing, false);
  assert.equal(rules.current, original);
  // The first reload line after the refusal lines (the only ones with problems) is the recovery's.
  const line = await logs.waitFor((r) => r.rules_file === file && r.problems === undefined);
  assert.equal(line.msg, 'rules file valid again; rules in force unchanged');
  assert.equal(line.level, 30);
  assert.equal(line.rules_hash, original.hash);
  assert.equal(line.trigger, 'watch');
});

test('a reload asked for (SIGHUP) that finds the file unchanged is logged at info', EVENT_TEST, async (t) => {
  const { reloader, logs } = liveOnRulesA(t);
  const event = await reloader.reload('sighup');
  assert.equal(event.result, 'unchanged');
  assert.equal(event.recovered, false);
  const line = await logs.waitFor((r) => r.msg === 'rules file unchanged' && r.trigger === 'sighup');
  assert.equal(line.level, 30);
  assert.equal(line.rules_hash, event.hash);
});

test('a RuleSet taken before a reload keeps deciding with the old rules', EVENT_TEST, async (t) => {
  const { rules, file } = liveOnRulesA(t);
  const taken = rules.current;
  const reloaded = nextReload(rules, changedOrRefused);
  writeFileSync(file, rulesText('rule-b', 'model/b'));
  assert.equal((await reloaded).result, 'success');

  assert.notEqual(rules.current, taken);
  assert.ok(Object.isFrozen(taken));
  const old = taken.decide(CONTEXT);
  assert.deepEqual([old.rule, old.model], ['rule-a', 'model/a']);
  assert.deepEqual(routedBy(rules), { rule: 'rule-b', model: 'model/b' });
});

test('a stream in flight finishes under the rules it started with; the next request uses the new rules', EVENT_TEST, async (t) => {
  const { rules, file, reloader } = liveOnRulesA(t);
  const fake = new FakeOpenRouter({ extraModels: TEST_MODELS });
  const baseUrl = await fake.listen();
  const config = testConfig({ OPENROUTER_BASE_URL: baseUrl, OPENROUTER_API_KEY: 'sk-or-test' });
  const { app, lifecycle } = await buildApp({ config, logger: createLogger('debug', new LogCapture()), rules: reloader.rules });
  t.after(async () => {
    await Promise.allSettled([app.close(), fake.close()]);
  });
  await app.listen({ host: '127.0.0.1', port: 0 });
  lifecycle.markReady();
  const url = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}/v1/chat/completions`;
  const post = (stream: boolean): Promise<Response> =>
    fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ ...CONTEXT.body, stream }) });

  fake.enqueue({ type: 'manual' });
  const manual = fake.nextManual();
  const streaming = post(true);
  const upstream = await manual;
  assert.equal((upstream.request.json as { model: string }).model, 'model/a');

  // The rules change while the upstream has not even answered yet.
  const reloaded = nextReload(rules, changedOrRefused);
  writeFileSync(file, rulesText('rule-b', 'model/b'));
  assert.equal((await reloaded).result, 'success');

  const events = 'data: {"choices":[{"delta":{"content":"hi"}}]}\n\ndata: [DONE]\n\n';
  upstream.writeHead(200, { 'content-type': 'text/event-stream' });
  await upstream.write(events.slice(0, 20));
  await upstream.end(events.slice(20));
  const res = await streaming;
  assert.equal(res.status, 200);
  assert.equal(res.headers.get('x-signalbox-rule'), 'rule-a');
  assert.equal(res.headers.get('x-signalbox-model'), 'model/a');
  assert.equal(await res.text(), events);

  const next = await post(false);
  assert.equal(next.status, 200);
  await next.arrayBuffer();
  assert.equal(next.headers.get('x-signalbox-rule'), 'rule-b');
  assert.equal(next.headers.get('x-signalbox-model'), 'model/b');
  assert.equal(fake.received.length, 2);
  assert.equal((fake.received[1]!.json as { model: string }).model, 'model/b');
});

// --- the real process -------------------------------------------------------------------------



test('SIGHUP reloads the rules of the running server', { timeout: 30_000 }, async (t) => {
  const dir = tempDir(t);
  const rulesFile = join(dir, 'rules.yaml');
  writeFileSync(rulesFile, rulesText('rule-a', 'model/a'));
  const configFile = join(dir, 'signalbox.yaml');
  writeFileSync(configFile, 'log:\n  level: info\n');
  const fake = new FakeOpenRouter({ extraModels: TEST_MODELS });
  const baseUrl = await fake.listen();
  t.after(() => fake.close());

  const main = spawnMain(t, {
    PORT: '0',
    CONFIG_FILE: configFile,
    RULES_FILE: rulesFile,
    RULES_POLL_INTERVAL_MS: '0',
    // The watcher's debounce never fires during the test: only SIGHUP can reload.
    RULES_DEBOUNCE_MS: '600000',
    SHUTDOWN_GRACE_MS: '2000',
    OPENROUTER_BASE_URL: baseUrl,
    OPENROUTER_API_KEY: 'sk-or-test',
  });
  const ready = await main.waitForLog((r) => r.msg === 'signalbox ready');
  assert.equal(ready.rules_hash, hashOf(rulesText('rule-a', 'model/a')));
  const chatUrl = `${String(ready.address)}/chat/completions`;
  const routedRule = async (): Promise<string | null> => {
    const res = await fetch(chatUrl, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(CONTEXT.body) });
    await res.arrayBuffer();
    assert.equal(res.status, 200);
    return res.headers.get('x-signalbox-rule');
  };
  assert.equal(await routedRule(), 'rule-a');

  const textB = rulesText('rule-b', 'model/b');
  writeFileSync(rulesFile, textB);
  main.child.kill('SIGHUP');
  const reloaded = await main.waitForLog((r) => r.msg === 'rules reloaded');
  assert.equal(reloaded.trigger, 'sighup');
  assert.equal(reloaded.rules_hash, hashOf(textB));
  assert.equal(await routedRule(), 'rule-b');
  assert.equal((fake.received.at(-1)!.json as { model: string }).model, 'model/b');

  main.child.kill('SIGTERM');
  assert.deepEqual(await main.exit, { code: 0, signal: null });
});

/**
 * Starts the real process on a rules file holding `text`; asserts it exits 1 with `problem` (its
 * `{file}` replaced by the file's path) on stderr, no stack trace, and never gets ready.
 */
async function assertStartupRefuses(t: TestContext, text: string, problem: string): Promise<void> {
  const dir = tempDir(t);
  const rulesFile = join(dir, 'rules.yaml');
  writeFileSync(rulesFile, text);
  const configFile = join(dir, 'signalbox.yaml');
  writeFileSync(configFile, 'log:\n  level: info\n');

  const main = spawnMain(t, { PORT: '0', CONFIG_FILE: configFile, RULES_FILE: rulesFile, OPENROUTER_BASE_URL: 'http://127.0.0.1:9/api/v1' });
  assert.deepEqual(await main.exit, { code: 1, signal: null });
  const stderr = main.stderr();
  assert.ok(stderr.includes(problem.replace('{file}', rulesFile)), stderr);
  assert.doesNotMatch(stderr, /^\s+at /m, 'no stack trace');
  assert.equal(main.logs.records.find((r) => r.msg === 'signalbox ready'), undefined);
}

test('startup with an invalid rules file exits 1 with the positioned problem and no stack trace', { timeout: 30_000 }, async (t) => {
  await assertStartupRefuses(t, 'version: 1\nrules:\n  - name: main\n    route: { tier: gold }\n', '{file}:4:20: rules[0] "main": unknown tier "gold" (tiers: none defined)');
});

test('startup with a YAML alias bomb in the rules file exits 1 with the positioned problem and no stack trace', { timeout: 30_000 }, async (t) => {
  const bomb = 'a: &a [x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]\nc: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]\nd: [*c, *c, *c, *c, *c, *c, *c, *c, *c]\n';
  await assertStartupRefuses(t, bomb, '{file}:2:8: Excessive alias count indicates a resource exhaustion attack');
});

test('a hot reload refuses a regular expression over the instruction budget and keeps serving the old rules', EVENT_TEST, async (t) => {
  const { rules, file } = liveOnRulesA(t);
  const original = rules.current;
  const refused = nextReload(rules, changedOrRefused);
  writeFileSync(file, "version: 1\nrules:\n  - name: secrets\n    when: { request.text: { matches: '(.|\\s){0,1000}secret' } }\n    route: { model: model/b }\n");
  const event = await refused;
  assert.equal(event.result, 'failure');
  assert.deepEqual(event.problems, [`${file}:4:38: rules[0] "secrets": regular expression "(.|\\\\s){0,1000}secret" compiles to 4008 instructions; the limit is 2000 (a repeat {n,m} copies what it repeats m times: lower m, or use * or +)`]);
  assert.equal(rules.current, original);
});

test('a rules file over 1 MiB is refused on reload with a clear message, and the running rules keep serving', EVENT_TEST, async (t) => {
  const { reloader, rules, file } = liveOnRulesA(t);
  const original = rules.current;
  // Valid YAML all the way (a comment pads it), so only the size can refuse it.
  writeFileSync(file, `${rulesText('rule-b', 'model/b')}#${'x'.repeat(MAX_RULES_FILE_BYTES)}\n`);
  const event = await reloader.reload('sighup');
  assert.equal(event.result, 'failure');
  assert.deepEqual(event.problems, [`${file}: the rules file is larger than 1048576 bytes (1 MiB), the limit`]);
  assert.equal(rules.current, original);
  assert.throws(() => loadRulesFile(file), (err: unknown) => err instanceof RulesError && err.problems[0] === event.problems[0], 'startup and check refuse it alike');
});

test('a FIFO at the rules path is refused on reload and at startup without hanging', EVENT_TEST, async (t) => {
  const { reloader, rules, file } = liveOnRulesA(t);
  const original = rules.current;
  rmSync(file);
  // No writer ever opens it: a blocking open would wait forever (the test's timeout would fail it).
  execFileSync('mkfifo', [file]);
  const event = await reloader.reload('sighup');
  assert.equal(event.result, 'failure');
  const problem = `${file}: the rules file is not a regular file (symlinks are followed; a FIFO, device or directory is refused)`;
  assert.deepEqual(event.problems, [problem]);
  assert.equal(rules.current, original);
  assert.throws(() => loadRulesFile(file), (err: unknown) => err instanceof RulesError && err.problems[0] === problem);
});

test('a symlink to a regular file is followed on reload', EVENT_TEST, async (t) => {
  const { reloader, rules, file, dir } = liveOnRulesA(t);
  const textB = rulesText('rule-b', 'model/b');
  writeFileSync(join(dir, 'real-rules.yaml'), textB);
  rmSync(file);
  symlinkSync('real-rules.yaml', file);
  const event = await reloader.reload('sighup');
  assert.equal(event.result, 'success');
  assert.equal(rules.current.hash, hashOf(textB));
  assert.equal(loadRulesFile(file).hash, hashOf(textB));
});
