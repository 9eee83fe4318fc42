import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { test, type TestContext } from 'node:test';
import { fileURLToPath } from 'node:url';
import type { DestinationStream } from 'pino';
import { ConfigError } from '../../src/errors.js';
import { createLogger, loadPrettyFormatter, writeLine } from '../../src/server/logger.js';
import { testConfig } from '../support/harness.js';
import { withTimeout } from '../support/timeout.js';

/** Collects what a logger writes, as text: the pretty format is not JSON, so LogCapture cannot read it. */
class TextSink implements DestinationStream {
  text = '';
  write(line: string): void {
    this.text += line;
  }
}

test('LOG_FORMAT is json unless set to pretty, and nothing else', () => {
  assert.equal(testConfig({}).log.format, 'json');
  assert.equal(testConfig({ LOG_FORMAT: 'pretty' }).log.format, 'pretty');
  assert.throws(() => testConfig({ LOG_FORMAT: 'xml' }), (err: unknown) => {
    assert.ok(err instanceof ConfigError);
    assert.match(err.message, /LOG_FORMAT.*must be one of: json, pretty/);
    return true;
  });
});

test('the json format writes one JSON object per line', () => {
  const sink = new TextSink();
  const logger = createLogger('info', sink);
  logger.info({ a: 1 }, 'plain');
  writeLine(logger, 'info', { method: 'POST', status: 200 }, 'request');
  const lines = sink.text.trimEnd().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
  assert.deepEqual(lines.map((l) => [l.msg, l.level]), [['plain', 30], ['request', 30]]);
});

test('the pretty format writes readable lines, the request line included, and still redacts', () => {
  const sink = new TextSink();
  const logger = createLogger('info', sink, 'pretty');
  writeLine(logger, 'info', { method: 'POST', path: '/v1/chat/completions', status: 200 }, 'request');
  logger.info({ headers: { authorization: 'Bearer pretty-secret' } }, 'headers');
  const lines = sink.text.trimEnd().split('\n');
  assert.equal(lines.length, 2, sink.text);
  for (const line of lines) assert.throws(() => JSON.parse(line), SyntaxError, `not pretty: ${line}`);
  assert.match(lines[0]!, /^\[\d\d:\d\d:\d\d\.\d{3}\] INFO: request .*"path":"\/v1\/chat\/completions"/);
  assert.equal(sink.text.includes('\u001b['), false, 'no colour codes outside a terminal');
  assert.equal(sink.text.includes('pretty-secret'), false);
});

test('a missing pino-pretty stops startup with a message that says what to do', () => {
  const missing = (id: string): never => {
    throw Object.assign(new Error(`Cannot find module '${id}'`), { code: 'MODULE_NOT_FOUND' });
  };
  assert.throws(() => loadPrettyFormatter(false, missing), (err: unknown) => {
    assert.ok(err instanceof ConfigError);
    assert.match(err.message, /pino-pretty is not installed/);
    assert.match(err.message, /LOG_FORMAT=json/);
    return true;
  });
  // Any other failure is not hidden behind that message.
  const broken = (): never => {
    throw new TypeError('broken module');
  };
  assert.throws(() => loadPrettyFormatter(false, broken), TypeError);
});

/**
 * Golden test for the fast path: `writeLine` must produce pino's own line byte for byte (only the
 * timestamp differs between two calls), for every kind of value a request line carries.
 */
test('writeLine writes the bytes pino itself writes for the same fields', () => {
  const cases: Record<string, unknown>[] = [
    {},
    { method: 'POST', path: '/v1/chat/completions', status: 200, duration_ms: 12.345, client_key: 'k1', model: 'auto' },
    { rule: 'cheap "short" \\ rule', routed_model: 'openai/gpt-4o-mini', stream: true, upstream_status: 502, upstream_attempts: 2 },
    { prompt_tokens: 0, completion_tokens: 3, cost_usd: 1e-7, overhead_ms: -0, big: 2 ** 60, nan: Number.NaN, inf: Number.POSITIVE_INFINITY },
    { error: 'control \u0000\u001f\n\t chars', error_code: 'upstream_error', skipped: undefined, nothing: null },
    { prompt: 'ü€😀 \u2028\u2029 ' + 'x'.repeat(150) + '"\\', finish_reason: 'x'.repeat(100), served_model: 'y'.repeat(101) },
    { 'key "quoted"': 1, 'ключ': 'значение', upstream_error: 'rate_limited' },
  ];
  for (const fields of cases) {
    const viaPino = new TextSink();
    createLogger('info', viaPino).info(fields, 'request');
    const viaWriteLine = new TextSink();
    writeLine(createLogger('info', viaWriteLine), 'info', fields, 'request');
    const untimed = (line: string): string => line.replace(/^\{"level":30,"time":\d+,/, '{"level":30,"time":0,');
    assert.equal(untimed(viaWriteLine.text), untimed(viaPino.text), JSON.stringify(fields));
  }
  // The one known difference: a lone surrogate in a string of at most 100 characters. pino's own
  // escaper (node_modules/pino/lib/tools.js, _asString) copies it raw, which becomes U+FFFD in
  // UTF-8; JSON.stringify escapes it (\ud800), which is what pino itself does on Node 25 and later
  // (asString = JSON.stringify there). Both parse to the same value.
  const lone = new TextSink();
  writeLine(createLogger('info', lone), 'info', { model: 'a\ud800b' }, 'request');
  assert.ok(lone.text.includes('"model":"a\\ud800b"'), lone.text);
  assert.equal((JSON.parse(lone.text) as { model: string }).model, 'a\ud800b');
});

const LOG_THEN_CRASH = fileURLToPath(new URL('../support/log-then-crash.js', import.meta.url));

/** Runs test/support/log-then-crash.ts; resolves with its stdout, stderr and exit code. */
async function logThenCrash(t: TestContext, how: string, count: number): Promise<{ stdout: string; stderr: string; code: number | null }> {
  const child = spawn(process.execPath, [LOG_THEN_CRASH, how, String(count)], { stdio: ['ignore', 'pipe', 'pipe'] });
  t.after(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
  const code = await withTimeout(new Promise<number | null>((resolve) => child.once('close', resolve)), `log-then-crash ${how} to exit`);
  return { stdout, stderr, code };
}

for (const [how, code] of [['exception', 1], ['rejection', 1], ['exit', 3]] as const) {
  test(`every line logged before an ${how} reaches stdout, though fewer bytes than the buffer's minimum wait`, async (t) => {
    const count = 40;
    const result = await logThenCrash(t, how, count);
    assert.equal(result.code, code, result.stderr);
    const records = result.stdout.trimEnd().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
    const before = records.filter((r) => r.msg === 'before the crash').map((r) => r.line);
    assert.deepEqual(before, Array.from({ length: count }, (_, i) => i), result.stdout);
    if (how !== 'exit') {
      // Logged from the crash itself, then flushed; Node's own handling is unchanged.
      const crashed = records.find((r) => r.msg === 'crashed');
      assert.equal(crashed?.level, 60);
      assert.equal(crashed?.origin, how === 'exception' ? 'uncaughtException' : 'unhandledRejection');
      assert.match(result.stderr, how === 'exception' ? /Error: test crash/ : /Error: test rejection/);
    }
  });
}
