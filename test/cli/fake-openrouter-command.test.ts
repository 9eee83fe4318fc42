import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { join } from 'node:path';
import { test, type TestContext } from 'node:test';
import { fileURLToPath } from 'node:url';
import { main, type CliIo } from '../../src/cli/commands.js';

const REPO_ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const BIN = join(REPO_ROOT, 'dist/src/cli/signalbox.js');
const LISTENING = /^fake OpenRouter listening: OPENROUTER_BASE_URL=(\S+)$/;
const AUTH = { authorization: 'Bearer sk-or-test', 'content-type': 'application/json' };

/** Rejects after `ms`: every wait of these tests is bounded. */
function within<T>(t: TestContext, promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms: ${what}`)), ms);
  });
  t.after(() => clearTimeout(timer));
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/** `signalbox fake-openrouter` in-process: its output lines, its base URL once listening, and a stop. */
function startInProcess(args: string[], env: NodeJS.ProcessEnv = {}) {
  const out: string[] = [];
  const err: string[] = [];
  let stop!: () => void;
  const interrupted = new Promise<void>((resolve) => (stop = resolve));
  let listening!: (url: string) => void;
  const url = new Promise<string>((resolve) => (listening = resolve));
  const io: CliIo = {
    out: (line) => {
      out.push(line);
      const m = LISTENING.exec(line);
      if (m) listening(m[1]!);
    },
    err: (line) => err.push(line),
    env,
    interrupted: () => interrupted,
  };
  const exit = main(['fake-openrouter', ...args], io);
  return { out, err, url, exit, stop };
}

test('signalbox fake-openrouter serves until interrupted, with --model ids in its catalog, and exits 0', async (t) => {
  const run = startInProcess(['--port', '0', '--model', 'mine/one', '--model', 'mine/two'], { FAKE_OPENROUTER_MODELS: 'env/one, env/*' });
  t.after(() => run.stop());
  const url = await within(t, Promise.race([run.url, run.exit.then((code) => { throw new Error(`exited ${code}: ${run.err.join('\n')}`); })]), 10_000, 'listening');

  const ids = ((await (await fetch(`${url}/models`)).json()) as { data: { id: string }[] }).data.map((m) => m.id);
  for (const id of ['openai/gpt-4o-mini', 'mine/one', 'mine/two', 'env/one']) assert.ok(ids.includes(id), id);
  assert.ok(!ids.some((id) => id.startsWith('env/*')), 'a prefix is served, not listed');
  for (const model of ['mine/two', 'env/anything']) {
    const res = await fetch(`${url}/chat/completions`, { method: 'POST', headers: AUTH, body: JSON.stringify({ model, messages: [{ role: 'user', content: 'hi' }] }) });
    assert.equal(res.status, 200, model);
    await res.arrayBuffer();
  }
  // Not quiet: one line per request.
  assert.ok(run.out.includes('POST /api/v1/chat/completions'), run.out.join('\n'));

  run.stop();
  assert.equal(await within(t, run.exit, 10_000, 'exit'), 0);
  await assert.rejects(fetch(`${url}/models`), 'the port is closed');
});

test('signalbox fake-openrouter refuses a bad port or an unknown option with exit code 2 and its usage', async () => {
  for (const args of [['--port', 'eighty'], ['--port', '70000'], ['--colour']]) {
    const run = startInProcess(args, {});
    assert.equal(await run.exit, 2, args.join(' '));
    assert.match(run.err.join('\n'), /usage:\n {2}signalbox fake-openrouter/);
  }
  const env = startInProcess([], { FAKE_OPENROUTER_PORT: '-1' });
  assert.equal(await env.exit, 2);
});

test('the signalbox bin runs fake-openrouter (port from FAKE_OPENROUTER_PORT, quiet) and stops on SIGTERM with exit code 0', async (t) => {
  const child = spawn(process.execPath, [BIN, 'fake-openrouter', '--quiet'], {
    cwd: REPO_ROOT, env: { PATH: process.env.PATH ?? '', FAKE_OPENROUTER_PORT: '0' }, stdio: ['ignore', 'pipe', 'pipe'],
  });
  t.after(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  });
  const exited = once(child, 'exit') as Promise<[number | null, NodeJS.Signals | null]>;
  let stdout = '';
  const url = await within(t, new Promise<string>((resolve, reject) => {
    child.stdout.on('data', (c: Buffer) => {
      stdout += c.toString('utf8');
      const m = /OPENROUTER_BASE_URL=(\S+)\n/.exec(stdout);
      if (m) resolve(m[1]!);
    });
    void exited.then(([code]) => reject(new Error(`exited ${code} before listening`)));
  }), 20_000, 'the bin listening');
  assert.match(url, /^http:\/\/127\.0\.0\.1:\d+\/api\/v1$/);
  const res = await fetch(`${url}/models`);
  assert.equal(res.status, 200);
  await res.arrayBuffer();

  child.kill('SIGTERM');
  const [code, signal] = await within(t, exited, 10_000, 'exit after SIGTERM');
  assert.deepEqual({ code, signal }, { code: 0, signal: null });
  assert.equal(stdout.trim().split('\n').length, 1, 'quiet: the listening line only');
});
