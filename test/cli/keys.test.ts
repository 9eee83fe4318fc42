import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { test, type TestContext } from 'node:test';
import { fileURLToPath } from 'node:url';
import { loadKeysFile } from '../../src/accounts/keys-file.js';
import { keysCommand } from '../../src/cli/keys.js';

const BIN = fileURLToPath(new URL('../../src/cli/signalbox.js', import.meta.url));
const hex = (key: string): string => createHash('sha256').update(key).digest('hex');

async function keys(args: string[], stdin = ''): Promise<{ code: number; out: string[]; err: string[] }> {
  const out: string[] = [];
  const err: string[] = [];
  const code = await keysCommand(args, { out: (l) => out.push(l), err: (l) => err.push(l), env: {} }, Readable.from([Buffer.from(stdin)]));
  return { code, out, err };
}

function tempDir(t: TestContext): string {
  const dir = mkdtempSync(join(tmpdir(), 'signalbox-keys-cli-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

test('keys hash prints the SHA-256 of the key on stdin, one trailing newline ignored', async () => {
  assert.deepEqual(await keys(['hash'], 'sk-sb-abc\n'), { code: 0, out: [hex('sk-sb-abc')], err: [] });
  assert.deepEqual((await keys(['hash'], 'sk-sb-abc')).out, [hex('sk-sb-abc')]);
  assert.equal((await keys(['hash'], '')).code, 1);
  assert.equal((await keys(['hash'], 'x'.repeat(5000))).code, 1);
  // The real bin, through the command list.
  assert.equal(execFileSync(process.execPath, [BIN, 'keys', 'hash'], { input: 'sk-sb-abc\n' }).toString().trim(), hex('sk-sb-abc'));
});

test('keys new prints a random sk-sb- key once and its entry, which holds only the digest', async () => {
  const run = await keys(['new', '--name', 'carol', '--tier', 'pro']);
  assert.equal(run.code, 0);
  const key = /^key: (sk-sb-[A-Za-z0-9_-]{43})$/.exec(run.out[0]!)?.[1];
  assert.ok(key, run.out[0]);
  const entry = run.out.slice(2).join('\n');
  assert.ok(entry.includes(`sha256: "${hex(key)}"`) && entry.includes('name: "carol"') && entry.includes('tier: "pro"'), entry);
  assert.equal(entry.includes(key), false, 'the entry never holds the key');
  const other = (await keys(['new'])).out[0];
  assert.notEqual(other, run.out[0]);
  assert.equal((await keys(['new', '--colour', 'x'])).code, 2);
});

test('keys new --append adds the entry to the keys file, validated, atomically, keeping its comments', async (t) => {
  const dir = tempDir(t);
  const file = join(dir, 'keys.yaml');
  writeFileSync(file, `# the team's keys\nversion: 1\nteams:\n  research: {}\nkeys:\n  - name: alice # the first\n    sha256: ${hex('sk-sb-alice')}\n`);
  const run = await keys(['new', '--name', 'carol', '--team', 'research', '--append', file]);
  assert.equal(run.code, 0, run.err.join('\n'));
  const key = run.out[0]!.slice('key: '.length);
  const text = readFileSync(file, 'utf8');
  assert.ok(text.startsWith("# the team's keys\n") && text.includes('# the first'), text);
  const ring = loadKeysFile(file, {});
  assert.equal(ring.lookup(key)?.name, 'carol');
  assert.equal(ring.lookup(key)?.team?.name, 'research');
  assert.equal(ring.lookup('sk-sb-alice')?.name, 'alice');

  // Refused: a duplicate name, an unknown team. The file is left as it was, with no temporary file beside it.
  for (const args of [['--name', 'alice'], ['--team', 'nowhere']]) {
    const refused = await keys(['new', ...args, '--append', file]);
    assert.equal(refused.code, 1);
    assert.match(refused.err[0]!, /^.*keys\.yaml:\d+:\d+: /);
    assert.equal(refused.out.length, 0, 'no key is printed for an entry that was not added');
    assert.equal(readFileSync(file, 'utf8'), text);
  }
  assert.deepEqual(readdirSync(dir), ['keys.yaml']);

  // A file that does not exist yet is created.
  const fresh = join(dir, 'new-keys.yaml');
  const created = await keys(['new', '--name', 'dave', '--append', fresh]);
  assert.equal(created.code, 0);
  assert.equal(loadKeysFile(fresh, {}).lookup(created.out[0]!.slice('key: '.length))?.name, 'dave');
});
