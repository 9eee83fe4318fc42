import assert from 'node:assert/strict';
import { test } from 'node:test';
import { DENSE, extractFeatures, FeatureBuffer, GROUP_CHARS, GROUP_EDGE, GROUP_WORDS, MAX_EDGE_FEATURES, maxSparseFeatures } from '../../src/classify/features.js';
import { WINDOW_HEAD_CHARS, WINDOW_TAIL_CHARS, classifierInput, textInput, type ClassifierInput } from '../../src/classify/window.js';

const BITS = 12;
const WINDOW = WINDOW_HEAD_CHARS + WINDOW_TAIL_CHARS;

/**
 * Features of `input` in a buffer of exactly the documented bound, and in one far larger: a
 * typed array drops writes past its end silently, so an overflow shows as a group end past the
 * capacity or as contents that differ from the large buffer's.
 */
function extractBounded(input: ClassifierInput): FeatureBuffer {
  const capacity = maxSparseFeatures(input.text.length);
  const exact = new FeatureBuffer(capacity);
  extractFeatures(input, BITS, exact);
  const large = new FeatureBuffer(capacity * 4 + 4096);
  extractFeatures(input, BITS, large);
  const used = large.groupEnd[GROUP_EDGE]!;
  assert.ok(used <= capacity, `${used} features for ${input.text.length} characters, bound ${capacity}`);
  assert.deepEqual(exact.groupEnd, large.groupEnd);
  assert.deepEqual(exact.buckets.subarray(0, used), large.buckets.subarray(0, used));
  // Edge words go through a fixed scratch of MAX_EDGE_FEATURES before they are appended.
  assert.ok(used - large.groupEnd[GROUP_WORDS]! <= MAX_EDGE_FEATURES);
  return exact;
}

const SAMPLES = [
  'hi',
  '',
  'What is the capital of Peru?',
  'Prove that sqrt(2) is irrational: assume √2 = p/q with gcd(p, q) = 1 ∀ p,q ∈ ℤ ...',
  '```ts\nconst f = (a: number[]) => a.map((x) => x * 2);\n```\nwhy is this slow?',
  '请根据上面的数据分析公司的增长趋势。日本市場への進出を検討してください。한국어도 있습니다.',
  'Сколько дней в году? كم عدد الأيام؟ कितने दिन? 😀😀 \u0000\u200b\u3000 ¿Qué? «non»',
];

test('features: every bucket is in [0, 2^bits), group ends are ordered and dense features are finite', () => {
  for (const text of SAMPLES) {
    const buffer = extractBounded(textInput(text));
    const ends = [buffer.groupEnd[GROUP_CHARS]!, buffer.groupEnd[GROUP_WORDS]!, buffer.groupEnd[GROUP_EDGE]!];
    assert.ok(ends[0]! <= ends[1]! && ends[1]! <= ends[2]!, `${text}: ${ends.join(',')}`);
    for (let i = 0; i < ends[2]!; i++) assert.ok(buffer.buckets[i]! >= 0 && buffer.buckets[i]! < 1 << BITS, `${text}: bucket ${buffer.buckets[i]}`);
    assert.equal(buffer.dense.length, DENSE);
    for (const x of buffer.dense) assert.ok(Number.isFinite(x) && x >= 0, `${text}: dense ${x}`);
  }
});

test('features: the buffer bound holds at the full window for CJK, one-letter words and a mix', () => {
  const cjk = '字'.repeat(WINDOW + 1);
  const letters = Array.from({ length: WINDOW + 1 }, () => 'a').join(' '); // 4,097 one-letter words
  let mixed = '';
  for (let i = 0; mixed.length < WINDOW + 1; i++) mixed += ['a ', '字', '```', '\n- ', 'é', '٣', '√'][i % 7];
  for (const text of [cjk, letters, mixed.slice(0, WINDOW + 1)]) {
    // As given (the extractor's own bound) and as the window cuts it (what a request reaches).
    extractBounded({ text, turnChars: text.length, conversation: textInput('').conversation });
    const windowed = classifierInput([{ role: 'user', content: text }]);
    assert.ok(windowed.text.length <= WINDOW + 1);
    extractBounded(windowed);
  }
});

test('features: deterministic, and a reused buffer gives what a fresh one gives', () => {
  const reused = new FeatureBuffer(maxSparseFeatures(WINDOW + 1));
  for (const text of SAMPLES) {
    const fresh = new FeatureBuffer(maxSparseFeatures(text.length));
    extractFeatures(textInput(text), BITS, fresh);
    extractFeatures(textInput(SAMPLES[5]!), BITS, reused); // leave other contents behind
    extractFeatures(textInput(text), BITS, reused);
    const used = fresh.groupEnd[GROUP_EDGE]!;
    assert.deepEqual(reused.groupEnd, fresh.groupEnd);
    assert.deepEqual(reused.buckets.subarray(0, used), fresh.buckets.subarray(0, used));
    assert.deepEqual(reused.dense, fresh.dense);
  }
});
