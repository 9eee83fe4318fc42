import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { FakeOpenRouter } from '../../src/dev/fake-openrouter.js';
import { startMain } from '../support/main-process.js';
import { withTimeout } from '../support/timeout.js';

/**
 * Issue 16, item 7: embedded spend survives a restart. The real main.js (no REDIS_URL) spends,
 * stops on SIGTERM (its last snapshot written to DATA_DIR), and a second process started on the
 * same DATA_DIR reports the same spend through the admin API.
 */
test('embedded spend survives a restart: snapshotted to DATA_DIR on shutdown and reloaded at start', { timeout: 60_000 }, async (t) => {
  const fake = new FakeOpenRouter();
  const upstream = await fake.listen();
  t.after(() => fake.close());
  const dir = mkdtempSync(join(tmpdir(), 'signalbox-restart-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const keysFile = join(dir, 'keys.yaml');
  writeFileSync(keysFile, `version: 1\nkeys:\n  - { name: alice, sha256: ${createHash('sha256').update('sk-sb-alice').digest('hex')}, daily_usd: 10 }\n`);
  const adminKey = 'sk-sb-admin-key-for-the-restart-test';
  const env = { KEYS_FILE: keysFile, ADMIN_KEY: adminKey, DATA_DIR: join(dir, 'data') };

  const spendOf = async (origin: string): Promise<unknown> => {
    const res = await fetch(`${origin}/admin/spend?by=key`, { headers: { authorization: `Bearer ${adminKey}` } });
    assert.equal(res.status, 200);
    return ((await res.json()) as { rows: unknown }).rows;
  };
  const stop = async (main: Awaited<ReturnType<typeof startMain>>) => {
    main.child.kill('SIGTERM');
    assert.equal((await withTimeout(main.exit, 'signalbox to exit')).code, 0);
  };

  const first = await startMain(t, upstream, env);
  for (let i = 0; i < 3; i++) {
    const res = await fetch(`${first.origin}/v1/chat/completions`, {
      method: 'POST', headers: { 'content-type': 'application/json', authorization: 'Bearer sk-sb-alice', 'x-fake-usage': '{"prompt_tokens":1000000}' },
      body: JSON.stringify({ model: 'openai/gpt-4o-mini', messages: [{ role: 'user', content: 'hi' }] }),
    });
    assert.equal(res.status, 200);
    await res.arrayBuffer();
  }
  // A scrape flushes the recorder, which settles the spend.
  await (await fetch(`${first.origin}/metrics`)).text();
  const before = await spendOf(first.origin) as { key: string; spent_usd: number; reserved_usd: number }[];
  assert.equal(before.length, 1);
  assert.equal(before[0]!.key, 'alice');
  assert.equal(before[0]!.reserved_usd, 0);
  // Three requests at $0.15 (a million prompt tokens of gpt-4o-mini) and a few completion tokens.
  assert.ok(Math.abs(before[0]!.spent_usd - 0.45) < 0.001, `spent ${before[0]!.spent_usd}`);
  await stop(first);

  const second = await startMain(t, upstream, env);
  assert.deepEqual(await spendOf(second.origin), before, 'the spend came back from the snapshot');
  await stop(second);
});
