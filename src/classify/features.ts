import type { ClassifierInput } from './window.js';

/**
 * Feature extraction for the local classifier: hashed character trigrams and words of the window,
 * words and word pairs at its two edges (where the instruction usually is: "prove that", "with
 * tests") in a namespace of their own, and a
 * few dense structural counts. One pass over the window's characters fills a preallocated buffer
 * with bucket numbers; nothing is allocated per character or per feature, and there is no regex
 * (src/classify/model.ts reads the buffer).
 */

/** Sparse feature groups, each scaled by 1/sqrt(its count) so that a long window does not outvote a short one. */
export const GROUP_CHARS = 0;
export const GROUP_WORDS = 1;
export const GROUP_EDGE = 2;
export const GROUPS = 3;

/** Characters at each end of the window whose words also go into the edge group. */
export const EDGE_CHARS = 256;
/**
 * Character trigrams are taken from this many characters at each end of the window (words from
 * all of it): trigrams are most of a long window's features and of its cost, and those of the
 * middle of a paste measured no better in cross-validation (docs/classifiers.md, "Training").
 */
export const TRIGRAM_EDGE_CHARS = 1024;

export const DENSE_FEATURES = [
  'turn_length', 'window_words', 'conversation_length', 'messages', 'turn_code_fences', 'history_code_fences',
  'code_symbols', 'lines', 'math_symbols', 'digits', 'questions', 'list_lines', 'has_system', 'has_tools',
  'assistant_share', 'script_latin', 'script_cyrillic', 'script_arabic', 'script_devanagari', 'script_han',
  'script_kana', 'script_hangul', 'last_paragraph', 'first_paragraph',
] as const;
export const DENSE = DENSE_FEATURES.length;

/**
 * Upper bound of sparse features per window: a trigram per character (at most); a word per character (CJK
 * ideographs and kana are one-character words); a word, a pair and a word with the turn's length
 * per character of the two edges.
 */
export function maxSparseFeatures(windowChars: number): number {
  return 2 * windowChars + MAX_EDGE_FEATURES;
}

export class FeatureBuffer {
  /** Bucket numbers, group after group. */
  readonly buckets: Int32Array;
  /** End (exclusive) of each group in `buckets`. */
  readonly groupEnd = new Int32Array(GROUPS);
  readonly dense = new Float64Array(DENSE);

  constructor(capacity: number) {
    this.buckets = new Int32Array(capacity);
  }
}

const FNV_PRIME = 0x01000193;
const SEED_CHARS = 0x811c9dc5 | 0;
const SEED_WORDS = 0x2545f491;
const SEED_EDGE = 0x6a09e667;
const SEED_EDGE_LENGTH = 0x3c6ef372;

/**
 * The turn's length as one of six classes (under 64 characters, under 192, 448, 960, 1,984, more):
 * an edge word is also hashed with it, so that "prove" in a one-line prompt and "prove" at the
 * end of a page are different features. The one interaction a linear model cannot learn alone,
 * and the one that measured (cross-validation, docs/classifiers.md): +2.7 points of complexity
 * agreement.
 */
function lengthClass(turnChars: number): number {
  return Math.min(5, Math.floor(Math.log2(1 + turnChars / 64)));
}

/** Murmur3's finaliser: FNV's low bits are poor, and buckets are taken from the low bits. */
function fmix(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b | 0);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35 | 0);
  return h ^ (h >>> 16); // int32: callers mask it, and int32s stay unboxed in V8
}

// What a character is, as bit flags: a table for ASCII (nearly every character of most prompts),
// range tests for the rest (charFlags).
const WORD = 1;
const SPACE = 2;
const CODE = 4;
const MATH = 8;
const DIGIT = 16;
const QUESTION = 32;
/** One character per word: CJK ideographs and kana, whose scripts do not separate words with spaces. */
const IDEOGRAPH = 64;

const ASCII_FLAGS = new Uint8Array(128);
/** ASCII folded: lower case, every digit as `0` (that there is a number says more than its digits), controls as a space. */
const ASCII_FOLD = new Uint8Array(128);
for (let c = 0; c < 128; c++) {
  let f = 0;
  if ((c >= 97 && c <= 122) || (c >= 65 && c <= 90) || c === 95) f |= WORD;
  if (c >= 48 && c <= 57) f |= WORD | DIGIT;
  if (c <= 32) f |= SPACE;
  if ('{}();=<>[]$'.includes(String.fromCharCode(c))) f |= CODE;
  if (c === 94 || c === 92) f |= MATH; // ^ and \ (LaTeX)
  if (c === 63) f |= QUESTION;
  ASCII_FLAGS[c] = f;
  ASCII_FOLD[c] = c >= 65 && c <= 90 ? c + 32 : c >= 48 && c <= 57 ? 48 : c <= 32 ? 32 : c;
}

/** Flags of a character outside ASCII. */
function charFlags(c: number): number {
  if ((c >= 0x4e00 && c <= 0x9fff) || (c >= 0x3400 && c <= 0x4dbf) || (c >= 0x3040 && c <= 0x30ff) || (c >= 0xf900 && c <= 0xfaff)) return IDEOGRAPH;
  if (c === 0xa0 || c === 0x3000 || (c >= 0x2000 && c <= 0x200b)) return SPACE;
  if (c === 0xff1f || c === 0x61f) return QUESTION;
  if ((c >= 0x2200 && c <= 0x22ff) || c === 0xb1 || c === 0xd7 || c === 0xf7 || (c >= 0x3b1 && c <= 0x3c9)) return MATH | ((c >= 0x3b1 && c <= 0x3c9) ? WORD : 0);
  if (c >= 0x2000 && c <= 0x2bff) return 0; // general punctuation, arrows, symbols
  if (c >= 0x3000 && c <= 0x303f) return 0; // CJK punctuation
  if (c >= 0xff00 && c <= 0xff0f) return 0; // fullwidth punctuation
  if (c >= 0xff1a && c <= 0xff20) return 0;
  if (c === 0x60c || c === 0x61b || c === 0x6d4 || c === 0x964 || c === 0x965) return 0; // Arabic and Devanagari punctuation
  if (c >= 0xd800 && c <= 0xdfff) return 0; // surrogates: emoji and the like
  if (c === 0xa1 || c === 0xbf || c === 0xab || c === 0xbb) return 0;
  return WORD;
}

/** Script of a letter, as a dense feature index, or -1. */
function scriptOf(c: number): number {
  if ((c >= 97 && c <= 122) || (c >= 65 && c <= 90) || (c >= 0xc0 && c <= 0x24f)) return 15;
  if (c < 0x400) return -1;
  if (c <= 0x4ff) return 16;
  if (c >= 0x600 && c <= 0x6ff) return 17;
  if (c >= 0x900 && c <= 0x97f) return 18;
  if ((c >= 0x4e00 && c <= 0x9fff) || (c >= 0x3400 && c <= 0x4dbf)) return 19;
  if (c >= 0x3040 && c <= 0x30ff) return 20;
  if (c >= 0xac00 && c <= 0xd7af) return 21;
  return -1;
}

/**
 * Fills `out` with the features of `input`, buckets in [0, 2^bits), in one pass over the window.
 * `out` must hold maxSparseFeatures(input.text.length) buckets: trigrams are written from 0, words
 * from `n` (there are at most n trigrams) and moved down after them at the end, edge words go
 * to a scratch array and are appended last.
 */
export function extractFeatures(input: ClassifierInput, bits: number, out: FeatureBuffer): void {
  const text = input.text;
  const n = text.length;
  const mask = (1 << bits) - 1;
  const buckets = out.buckets;
  const dense = out.dense;
  dense.fill(0);
  const edge = EDGE_SCRATCH;
  const edgeEnd = n - EDGE_CHARS;
  const trigramTail = n - TRIGRAM_EDGE_CHARS;
  const length = lengthClass(input.turnChars);

  let k = 0; // next trigram
  let kw = n; // next word bucket
  let e = 0; // next edge bucket
  let c1 = 32;
  let c2 = 32;
  let codeSymbols = 0;
  let mathSymbols = 0;
  let digits = 0;
  let questions = 0;
  let newlines = 0;
  let listLines = 0;
  let letters = 0;
  let fences = 0;
  let lastBreak = -1; // the last blank line
  let firstBreak = -1;
  let lineStart = true;
  let words = 0;
  let inWord = false;
  /** The word in progress is an ideograph: it ends at the next character whatever that is. */
  let single = false;
  let wordStart = 0;
  let h = SEED_WORDS;
  let prevEdge = 0;
  for (let i = 0; i <= n; i++) {
    // i === n ends the last word.
    const raw = i < n ? text.charCodeAt(i) : 32;
    const flags = raw < 128 ? ASCII_FLAGS[raw]! : charFlags(raw);
    const c = raw < 128 ? ASCII_FOLD[raw]! : flags & SPACE ? 32 : raw;

    // A word ends at a character that is no part of one, and after a one-character word (an
    // ideograph): its bucket, and when it starts near either end, its bucket, its pair with the
    // previous edge word and its bucket with the turn's length class in the edge namespace. (Pairs over the whole window cost a fifth of
    // the features and measured no better in cross-validation: docs/classifiers.md.)
    const wordChar = (flags & (WORD | IDEOGRAPH)) !== 0;
    if (inWord && (!wordChar || single || (flags & IDEOGRAPH) !== 0)) {
      words++;
      buckets[kw++] = fmix(h) & mask;
      if (wordStart < EDGE_CHARS || wordStart >= edgeEnd) {
        edge[e++] = fmix(h ^ SEED_EDGE) & mask;
        edge[e++] = fmix(Math.imul(prevEdge ^ SEED_EDGE, FNV_PRIME) ^ h) & mask;
        edge[e++] = fmix(Math.imul(h ^ (SEED_EDGE_LENGTH + length), FNV_PRIME)) & mask;
        prevEdge = h;
      }
      inWord = false;
    }
    if (wordChar) {
      if (!inWord) {
        inWord = true;
        wordStart = i;
        h = SEED_WORDS;
      }
      h = Math.imul(h ^ c, FNV_PRIME);
      single = (flags & IDEOGRAPH) !== 0;
    }
    if (i === n) break;

    if ((i < TRIGRAM_EDGE_CHARS || i >= trigramTail) && !(c === 32 && c1 === 32 && c2 === 32)) {
      buckets[k++] = fmix(Math.imul(Math.imul(Math.imul(SEED_CHARS ^ c2, FNV_PRIME) ^ c1, FNV_PRIME) ^ c, FNV_PRIME)) & mask;
    }
    c2 = c1;
    c1 = c;
    if (raw === 10) {
      newlines++;
      if (lineStart) {
        lastBreak = i;
        if (firstBreak === -1 && i > 0) firstBreak = i;
      }
      lineStart = true;
      continue;
    }
    if (lineStart && !(flags & SPACE)) {
      lineStart = false;
      const next = i + 1 < n ? text.charCodeAt(i + 1) : 0;
      if (((raw === 45 || raw === 42 || raw === 0x2022) && next === 32) || (flags & DIGIT && (next === 46 || next === 41))) listLines++;
    }
    if (raw === 96 && i + 2 < n && text.charCodeAt(i + 1) === 96 && text.charCodeAt(i + 2) === 96) fences++;
    if (flags & DIGIT) digits++;
    else if (flags & QUESTION) questions++;
    else if (flags & CODE) codeSymbols++;
    if (flags & MATH) mathSymbols++;
    if (flags & (WORD | IDEOGRAPH) && !(flags & DIGIT)) {
      const script = scriptOf(raw);
      if (script !== -1) {
        letters++;
        dense[script]!++;
      }
    }
  }
  out.groupEnd[GROUP_CHARS] = k;
  buckets.copyWithin(k, n, kw);
  k += kw - n;
  out.groupEnd[GROUP_WORDS] = k;
  for (let j = 0; j < e; j++) buckets[k++] = edge[j]!;
  out.groupEnd[GROUP_EDGE] = k;

  const conversation = input.conversation;
  dense[0] = Math.log1p(input.turnChars) / 10;
  dense[1] = Math.log1p(words) / 8;
  dense[2] = Math.log1p(conversation.totalChars) / 13;
  dense[3] = Math.log1p(conversation.messages) / 3;
  dense[4] = Math.min(fences, 12) / 12;
  dense[5] = Math.min(conversation.historyFences, 20) / 20;
  dense[6] = n === 0 ? 0 : Math.min(1, (codeSymbols / n) * 5);
  dense[7] = Math.log1p(newlines) / 6;
  dense[8] = Math.log1p(mathSymbols) / 4;
  dense[9] = n === 0 ? 0 : Math.min(1, (digits / n) * 3);
  dense[10] = Math.log1p(questions) / 3;
  dense[11] = Math.log1p(listLines) / 3;
  dense[12] = conversation.hasSystem ? 1 : 0;
  dense[13] = conversation.toolMessages > 0 ? 1 : 0;
  dense[14] = conversation.messages === 0 ? 0 : conversation.assistantTurns / conversation.messages;
  for (let s = 15; s <= 21; s++) dense[s] = letters === 0 ? 0 : dense[s]! / letters;
  dense[22] = Math.log1p(lastBreak === -1 ? n : n - lastBreak) / 8;
  dense[23] = Math.log1p(firstBreak === -1 ? n : firstBreak) / 8;
}

/** Edge features of one window: at most three buckets per character of the 2 * EDGE_CHARS edge characters. */
export const MAX_EDGE_FEATURES = 6 * EDGE_CHARS + 6;
/** Edge words of one window, before they are appended. */
const EDGE_SCRATCH = new Int32Array(MAX_EDGE_FEATURES);
