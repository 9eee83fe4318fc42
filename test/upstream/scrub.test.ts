import assert from 'node:assert/strict';
import { Readable } from 'node:stream';
import { text } from 'node:stream/consumers';
import { test } from 'node:test';
import { pipeline } from 'node:stream/promises';
import { SecretScrubber, scrubSecret } from '../../src/upstream/scrub.js';

const KEY = 'sk-or-v1-0123456789abcdef';

async function scrubbed(chunks: readonly string[], secret = KEY): Promise<string> {
  const scrubber = new SecretScrubber(secret);
  const [out] = await Promise.all([text(scrubber), pipeline(Readable.from(chunks.map((c) => Buffer.from(c, 'latin1'))), scrubber)]);
  return out;
}

test('scrubSecret replaces every occurrence and leaves other text as it is', () => {
  assert.equal(scrubSecret(`a ${KEY} b ${KEY}`, KEY), 'a [redacted] b [redacted]');
  assert.equal(scrubSecret('nothing here', KEY), 'nothing here');
});

test('SecretScrubber finds the key split across chunks at every position', async () => {
  const body = `{"error":"bad key ${KEY}, and again ${KEY}${KEY}"}`;
  const expected = body.replaceAll(KEY, '[redacted]');
  for (let cut = 0; cut <= body.length; cut++) {
    assert.equal(await scrubbed([body.slice(0, cut), body.slice(cut)]), expected, `cut at ${cut}`);
  }
  assert.equal(await scrubbed([...body]), expected, 'one byte per chunk');
});

test('SecretScrubber keeps a near miss and non-ASCII bytes unchanged', async () => {
  const body = `${KEY.slice(0, -1)}! héllo ✓ ${KEY.slice(1)}`;
  const bytes = Buffer.from(body, 'utf8');
  const scrubber = new SecretScrubber(KEY);
  const chunks: Buffer[] = [];
  scrubber.on('data', (c: Buffer) => chunks.push(c));
  await pipeline(Readable.from([bytes.subarray(0, 7), bytes.subarray(7)]), scrubber);
  assert.deepEqual(Buffer.concat(chunks), bytes);
});
