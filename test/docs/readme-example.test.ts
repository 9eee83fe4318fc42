import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test, type TestContext } from 'node:test';
import { startHarness } from '../support/harness.js';
import { REPO_ROOT } from '../support/main-process.js';

/** The README's Node example, exactly as a user would copy it. */
function readmeNodeExample(): string {
  const readme = readFileSync(join(REPO_ROOT, 'README.md'), 'utf8');
  const section = readme.slice(readme.indexOf('## Use it from an OpenAI SDK'));
  const match = /```js\n([\s\S]*?)```/.exec(section);
  assert.ok(match?.[1], 'the README has a js example under "Use it from an OpenAI SDK"');
  return match[1];
}

/**
 * Runs the example against `origin` with only `env` in the client's environment. The file is
 * written inside the repository so that `import 'openai'` resolves from its node_modules.
 */
function runExample(t: TestContext, origin: string, env: Record<string, string>): Promise<{ code: number; out: string; err: string }> {
  const source = readmeNodeExample();
  assert.ok(source.includes('http://127.0.0.1:8080/v1'));
  const dir = mkdtempSync(join(REPO_ROOT, 'dist', 'readme-example-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, 'example.mjs');
  writeFileSync(file, source.replace('http://127.0.0.1:8080/v1', `${origin}/v1`));
  return new Promise((resolve) => {
    execFile(process.execPath, [file], { env: { PATH: process.env.PATH ?? '', ...env }, timeout: 30_000 }, (error, stdout, stderr) => {
      resolve({ code: error ? (typeof error.code === 'number' ? error.code : 1) : 0, out: stdout, err: stderr });
    });
  });
}

const MODES = [
  { name: 'pass-through: the client sends its own OpenRouter key', proxyEnv: {}, clientEnv: { OPENROUTER_API_KEY: 'sk-or-client-key' }, upstreamKey: 'sk-or-client-key' },
  { name: 'server key: the client has no key at all', proxyEnv: { OPENROUTER_API_KEY: 'sk-or-server-key' }, clientEnv: {}, upstreamKey: 'sk-or-server-key' },
  {
    name: 'server key and client keys: the client sends its Signalbox key',
    proxyEnv: { OPENROUTER_API_KEY: 'sk-or-server-key', SIGNALBOX_API_KEYS: 'sb-client-key' },
    clientEnv: { SIGNALBOX_CLIENT_KEY: 'sb-client-key' },
    upstreamKey: 'sk-or-server-key',
  },
] as const;

for (const mode of MODES) {
  test(`the README's Node example works in every key mode: ${mode.name}`, { timeout: 60_000 }, async (t) => {
    const h = await startHarness({ env: mode.proxyEnv, fake: { requireAuth: true } });
    t.after(() => h.close());
    const run = await runExample(t, h.url, mode.clientEnv);
    assert.equal(run.code, 0, run.err);
    assert.ok(run.out.length > 0, 'the streamed answer was printed');
    assert.equal(h.fake.received.length, 1);
    assert.equal(h.fake.received[0]!.headers.authorization, `Bearer ${mode.upstreamKey}`);
  });
}
