import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { DestinationStream } from 'pino';
import { ConfigError } from '../../src/errors.js';
import { createLogger, loadPrettyFormatter, writeLine } from '../../src/server/logger.js';
import { testConfig } from '../support/harness.js';

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
