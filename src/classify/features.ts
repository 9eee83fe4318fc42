import type { ClassifierInput } from './window.js';

/**
 * Feature extraction for the local classifier: hashed character trigrams and words of the window,
 * words at its two edges (where the instruction usually is) in a namespace of their own, and a
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

export const DENSE_FEATURES = [
  'turn_length', 'window_words', 'conversation_length', 'messages', 'turn_code_fences', 'history_code_fences',
  'code_symbols', 'lines', 'math_symbols', 'digits', 'questions', 'list_lines', 'has_system', 'has_tools',
  'assistant_share', 'script_latin', 'script_cyrillic', 'script_arabic', 'script_devanagari', 'script_han',
  'script_kana', 'script_hangul', 'last_paragraph', 'first_paragraph',
] as const;
export const DENSE = DENSE_FEATURES.length;

/**
 * Upper bound of sparse features per window: a trigram per character; a word and a bigram per
 * character (CJK ideographs and kana are one-character words); the same for the two edges.
 */
export function maxSparseFeatures(windowChars: number): number {
  return 3 * windowChars + 4 * EDGE_CHARS + 4;
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
const SEED_CHARS = 0x811c9dc5;
const SEED_WORDS = 0x2545f491;
const SEED_BIGRAMS = 0x9e3779b9;
const SEED_EDGE = 0x6a09e667;

/** Murmur3's finaliser: FNV's low bits are poor, and buckets are taken from the low bits. */
function fmix(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/** Whitespace and control characters, as far as the classifier cares. */
function isSpace(c: number): boolean {
  return c <= 32 || c === 0xa0 || c === 0x3000 || (c >= 0x2000 && c <= 0x200b);
}

/** CJK ideographs and kana: each character is a word (these scripts do not separate words with spaces). */
function isIdeographic(c: number): boolean {
  return (c >= 0x4e00 && c <= 0x9fff) || (c >= 0x3400 && c <= 0x4dbf) || (c >= 0x3040 && c <= 0x30ff) || (c >= 0xf900 && c <= 0xfaff);
}

/** Letters and digits of any script; ASCII and Unicode punctuation blocks are separators. */
function isWordChar(c: number): boolean {
  if (c < 0x80) return (c >= 97 && c <= 122) || (c >= 48 && c <= 57) || c === 95 || (c >= 65 && c <= 90);
  if (c >= 0x2000 && c <= 0x2bff) return false; // general punctuation, arrows, math operators, symbols
  if (c >= 0x3000 && c <= 0x303f) return false; // CJK punctuation
  if (c >= 0xff00 && c <= 0xff0f) return false; // fullwidth punctuation
  if (c >= 0xff1a && c <= 0xff20) return false;
  if (c === 0x60c || c === 0x61b || c === 0x61f || c === 0x6d4 || c === 0x964 || c === 0x965) return false; // Arabic and Devanagari punctuation
  if (c >= 0xd800 && c <= 0xdfff) return false; // surrogates: emoji and the like
  return !isSpace(c) && c !== 0xa1 && c !== 0xbf && c !== 0xab && c !== 0xbb;
}

function isMathSymbol(c: number): boolean {
  return c === 94 /* ^ */ || c === 92 /* \ (LaTeX) */ || (c >= 0x2200 && c <= 0x22ff) || c === 0xb1 || c === 0xd7 || c === 0xf7
    || (c >= 0x3b1 && c <= 0x3c9) || c === 0x221a;
}

function isCodeSymbol(c: number): boolean {
  return c === 123 || c === 125 || c === 40 || c === 41 || c === 59 || c === 61 || c === 60 || c === 62 || c === 91 || c === 93 || c === 36;
}

/** Lower-cases ASCII and folds digits together (a number's digits say little, that there is one says much). */
function fold(c: number): number {
  if (c >= 65 && c <= 90) return c + 32;
  if (c >= 48 && c <= 57) return 48;
  if (c <= 32) return 32;
  return c;
}

/** Script of a letter, as a dense feature index, or -1. */
function scriptOf(c: number): number {
  if ((c >= 97 && c <= 122) || (c >= 65 && c <= 90) || (c >= 0xc0 && c <= 0x24f)) return 15;
  if (c >= 0x400 && c <= 0x4ff) return 16;
  if (c >= 0x600 && c <= 0x6ff) return 17;
  if (c >= 0x900 && c <= 0x97f) return 18;
  if ((c >= 0x4e00 && c <= 0x9fff) || (c >= 0x3400 && c <= 0x4dbf)) return 19;
  if (c >= 0x3040 && c <= 0x30ff) return 20;
  if (c >= 0xac00 && c <= 0xd7af) return 21;
  return -1;
}

/**
 * Fills `out` with the features of `input`, buckets in [0, 2^bits). `out` must hold
 * maxSparseFeatures(input.text.length) buckets.
 */
export function extractFeatures(input: ClassifierInput, bits: number, out: FeatureBuffer): void {
  const text = input.text;
  const n = text.length;
  const mask = (1 << bits) - 1;
  const buckets = out.buckets;
  const dense = out.dense;
  dense.fill(0);

  // Pass 1: character trigrams, and the dense counts.
  let k = 0;
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
  let lastBreak = -1; // end of the last blank line
  let firstBreak = -1;
  let lineStart = true;
  for (let i = 0; i < n; i++) {
    const raw = text.charCodeAt(i);
    const c = fold(raw);
    if (!(c === 32 && c1 === 32 && c2 === 32)) {
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
    if (lineStart && !isSpace(raw)) {
      lineStart = false;
      const next = i + 1 < n ? text.charCodeAt(i + 1) : 0;
      if (((raw === 45 || raw === 42 || raw === 0x2022) && next === 32) || (raw >= 48 && raw <= 57 && (next === 46 || next === 41))) listLines++;
    }
    if (raw === 96 && i + 2 < n && text.charCodeAt(i + 1) === 96 && text.charCodeAt(i + 2) === 96) {
      fences++;
      i += 2;
      c2 = 96;
      c1 = 96;
      continue;
    }
    if (raw >= 48 && raw <= 57) digits++;
    else if (raw === 63 || raw === 0xff1f || raw === 0x61f) questions++;
    else if (isCodeSymbol(raw)) codeSymbols++;
    else if (isMathSymbol(raw)) mathSymbols++;
    const script = scriptOf(raw);
    if (script !== -1) {
      letters++;
      dense[script]!++;
    }
  }
  out.groupEnd[GROUP_CHARS] = k;

  // Pass 2: words and word bigrams; words near either edge again in the edge namespace.
  let words = 0;
  let h = SEED_WORDS;
  let inWord = false;
  let prev = 0;
  let prevEdge = 0;
  // Edge buckets go after the word buckets: collected apart first.
  const edge = EDGE_SCRATCH;
  let e = 0;
  const emit = (wordHash: number, start: number): void => {
    words++;
    buckets[k++] = fmix(wordHash) & mask;
    buckets[k++] = fmix(Math.imul(prev ^ SEED_BIGRAMS, FNV_PRIME) ^ wordHash) & mask;
    if (start < EDGE_CHARS || start >= n - EDGE_CHARS) {
      edge[e++] = fmix(wordHash ^ SEED_EDGE) & mask;
      edge[e++] = fmix(Math.imul(prevEdge ^ SEED_EDGE, FNV_PRIME) ^ wordHash) & mask;
      prevEdge = wordHash;
    }
    prev = wordHash;
  };
  let wordStart = 0;
  for (let i = 0; i < n; i++) {
    const raw = text.charCodeAt(i);
    if (isIdeographic(raw)) {
      if (inWord) emit(h, wordStart);
      inWord = false;
      emit(Math.imul(SEED_WORDS ^ raw, FNV_PRIME), i);
    } else if (isWordChar(raw)) {
      if (!inWord) {
        inWord = true;
        wordStart = i;
        h = SEED_WORDS;
      }
      h = Math.imul(h ^ fold(raw), FNV_PRIME);
    } else if (inWord) {
      emit(h, wordStart);
      inWord = false;
    }
  }
  if (inWord) emit(h, wordStart);
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

/** Edge words of one window, before they are appended: at most two buckets per character of the 2 * EDGE_CHARS edge characters. */
const EDGE_SCRATCH = new Int32Array(4 * EDGE_CHARS + 4);
