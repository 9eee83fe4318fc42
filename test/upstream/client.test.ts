import assert from 'node:assert/strict';
import { test } from 'node:test';
import { withTimeout } from '../support/timeout.js';
import { errors } from 'undici';
import { FakeOpenRouter } from '../../src/dev/fake-openrouter.js';
import { UpstreamClient } from '../../src/upstream/client.js';

function client(baseUrl = 'http://127.0.0.1:9/api/v1'): UpstreamClient {
  return new UpstreamClient({ baseUrl, connectTimeoutMs: 1000, headersTimeoutMs: 1000, idleTimeoutMs: 1000, keepAliveTimeoutMs: 1000 });
}

function systemError(code: string, syscall: string): Error {
  return Object.assign(new Error(`${syscall} ${code}`), { code, syscall });
}

test('network and upstream faults are upstream_unreachable (retried, counted against the model)', () => {
  const c = client();
  for (const err of [
    systemError('ECONNREFUSED', 'connect'), systemError('ECONNRESET', 'read'), systemError('EPIPE', 'write'),
    systemError('ENOTFOUND', 'getaddrinfo'), new errors.SocketError('other side closed'),
    Object.assign(new Error('Response does not match the HTTP/1.1 protocol'), { code: 'HPE_INVALID_CONSTANT' }),
    Object.assign(new Error('certificate has expired'), { code: 'CERT_HAS_EXPIRED' }),
    new errors.ResponseContentLengthMismatchError(),
  ]) {
    assert.equal(c.mapError(err).code, 'upstream_unreachable', String(err));
  }
  assert.equal(c.mapError(new errors.ConnectTimeoutError()).code, 'upstream_timeout');
});

test('local errors are internal_error: no retry, no cooldown', () => {
  const c = client();
  for (const err of [
    new errors.InvalidArgumentError('invalid x-title header'),
    new errors.NotSupportedError('nope'),
    Object.assign(new TypeError('Invalid character in header content ["x-title"]'), { code: 'ERR_INVALID_CHAR' }),
    new TypeError('cannot read properties of undefined'),
    new Error('something unknown'),
    'a thrown string',
    null,
  ]) {
    const mapped = c.mapError(err);
    assert.equal(mapped.code, 'internal_error', String(err));
    assert.equal(mapped.shouldRetry, false);
  }
});

test('a header value undici refuses fails as internal_error without reaching the upstream', async (t) => {
  const fake = new FakeOpenRouter();
  const c = client(await fake.listen());
  t.after(() => Promise.all([c.close(), fake.close()]));
  const failed = new Promise<unknown>((resolve, reject) => {
    c.dispatch({ method: 'POST', path: '/chat/completions', headers: { 'x-title': 'a\nb' }, body: '{}' }, {
      onConnect: () => undefined,
      onHeaders: () => {
        reject(new Error('the request must not be answered'));
        return true;
      },
      onData: () => true,
      onComplete: () => undefined,
      onError: (err) => resolve(err),
    });
  });
  assert.equal(c.mapError(await withTimeout(failed, 'the refusal')).code, 'internal_error');
  assert.equal(fake.received.length, 0);
});

test('the proxy loads undici\'s Pool and parseHeaders modules, which are undici\'s own, and never its index', async () => {
  const { createRequire } = await import('node:module');
  const { execFileSync } = await import('node:child_process');
  const require = createRequire(import.meta.url);
  const undici = require('undici') as typeof import('undici');
  const deepPool = (await import('undici/lib/dispatcher/pool.js')).default;
  const { parseHeaders } = await import('undici/lib/core/util.js');
  assert.equal(deepPool, undici.Pool, 'the Pool module is the one the index exports');
  assert.equal(parseHeaders, undici.util.parseHeaders);
  // A fresh process that builds the app: undici's index (about 110 modules) stays unloaded.
  const app = new URL('../../src/server/app.js', import.meta.url).href;
  const loaded = execFileSync(process.execPath, ['--input-type=module', '-e',
    `await import(${JSON.stringify(app)}); const { createRequire } = await import('node:module'); ` +
    `const cache = Object.keys(createRequire(import.meta.url).cache); console.log(JSON.stringify(cache.filter((f) => f.includes('/undici/'))));`,
  ], { encoding: 'utf8' });
  const files = JSON.parse(loaded) as string[];
  assert.ok(files.some((f) => f.endsWith('/undici/lib/dispatcher/pool.js')), 'the Pool module is loaded');
  assert.ok(!files.some((f) => f.endsWith('/undici/index.js')), `undici's index was loaded: ${files.length} undici modules`);
});
