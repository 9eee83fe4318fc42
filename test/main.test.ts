import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { REPO_ROOT, startMain } from './support/main-process.js';

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

/** Issue 13 item 6: main.ts flushes the buffered log when the process crashes. */
for (const how of ['exception', 'rejection'] as const) {
  test(`a running server that crashes (${how}) writes its fatal line and keeps Node's exit code`, async (t) => {
    const entry = join(REPO_ROOT, 'dist', 'test', 'support', 'main-crash-entry.js');
    const main = await startMain(t, 'http://127.0.0.1:9/api/v1', {}, [entry, how]);
    main.child.kill('SIGUSR2');
    const crashed = await main.waitForLog((r) => r.msg === 'crashed').catch(() => undefined);
    const exit = await main.exit;
    assert.equal(exit.code, 1, main.stderr());
    assert.equal(crashed?.origin, how === 'exception' ? 'uncaughtException' : 'unhandledRejection', main.stderr());
  });
}
/** Issue 13, item 8: Node's compile cache, in its default place, on runtimes that have it. */
test('the server fills Node\'s compile cache in the temporary directory where the runtime has one (Node >= 22.1)', async (t) => {
  const nodeModule = await import('node:module');
  if (typeof (nodeModule as { enableCompileCache?: unknown }).enableCompileCache !== 'function') {
    t.skip(`${process.version} has no module.enableCompileCache: start-up compiles as before`);
    return;
  }
  const tmp = mkdtempSync(join(tmpdir(), 'signalbox-compile-cache-'));
  t.after(() => rmSync(tmp, { recursive: true, force: true }));
  // TMPDIR, not NODE_COMPILE_CACHE: that variable alone would turn the cache on without our call.
  const main = await startMain(t, 'http://127.0.0.1:9/api/v1', { TMPDIR: tmp });
  main.child.kill('SIGTERM');
  assert.equal((await main.exit).code, 0);
  // Node writes the cache at exit: one directory per Node version, holding the compiled modules.
  const [versionDir, ...others] = readdirSync(join(tmp, 'node-compile-cache'));
  assert.deepEqual(others, []);
  assert.ok(readdirSync(join(tmp, 'node-compile-cache', versionDir!)).length > 50, 'the modules of a start are cached');
});
