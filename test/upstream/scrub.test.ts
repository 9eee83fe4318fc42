import assert from 'node:assert/strict';
import { test } from 'node:test';
import { SecretScrubber, scrubSecret } from '../../src/upstream/scrub.js';

const KEY = 'sk-or-v1-0123456789abcdef';

function scrubbedBytes(chunks: readonly Buffer[], secret = KEY): Buffer {
  const scrubber = new SecretScrubber(secret);
  const out: Buffer[] = [];
  for (const chunk of chunks) {
    const passed = scrubber.push(chunk);
    if (passed !== undefined) out.push(passed);
  }
  const rest = scrubber.flush();
  if (rest !== undefined) out.push(rest);
  return Buffer.concat(out);
}

function scrubbed(chunks: readonly string[], secret = KEY): string {
  return scrubbedBytes(chunks.map((c) => Buffer.from(c, 'latin1')), secret).toString('latin1');
}

test('scrubSecret replaces every occurrence and leaves other text as it is', () => {
  assert.equal(scrubSecret(`a ${KEY} b ${KEY}`, KEY), 'a [redacted] b [redacted]');
  assert.equal(scrubSecret('nothing here', KEY), 'nothing here');
});

test('SecretScrubber finds the key split across chunks at every position', () => {
  const body = `{"error":"bad key ${KEY}, and again ${KEY}${KEY}"}`;
  const expected = body.replaceAll(KEY, '[redacted]');
  for (let cut = 0; cut <= body.length; cut++) {
    assert.equal(scrubbed([body.slice(0, cut), body.slice(cut)]), expected, `cut at ${cut}`);
  }
  assert.equal(scrubbed([...body]), expected, 'one byte per chunk');
});

test('SecretScrubber keeps a near miss and non-ASCII bytes unchanged', () => {
  const body = `${KEY.slice(0, -1)}! héllo ✓ ${KEY.slice(1)}`;
  const bytes = Buffer.from(body, 'utf8');
  assert.deepEqual(scrubbedBytes([bytes.subarray(0, 7), bytes.subarray(7)]), bytes);
});
