import assert from 'node:assert/strict';
import { test } from 'node:test';
import { startMain } from './support/main-process.js';

/** Issue 12, defect 23: credentials in OPENROUTER_BASE_URL are never logged. */
test('the startup line names the upstream without the credentials of its URL', async (t) => {
  const password = 's3cret-base-url-password';
  // Port 9 (discard): nothing is sent upstream in this test.
  const main = await startMain(t, `http://gateway-user:${password}@127.0.0.1:9/api/v1`, {});
  const ready = await main.waitForLog((r) => r.msg === 'signalbox ready');
  assert.equal(ready.upstream, 'http://[redacted]@127.0.0.1:9/api/v1');
  main.child.kill('SIGTERM');
  const exit = await main.exit;
  assert.equal(exit.code, 0);
  for (const secret of [password, 'gateway-user']) {
    assert.equal(main.logs.text.includes(secret), false, `stdout names ${secret}`);
    assert.equal(main.stderr().includes(secret), false, `stderr names ${secret}`);
  }
});
