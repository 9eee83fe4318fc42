import { clipText } from '../bounded-text.js';
import { InvalidJsonError, InvalidRequestError } from '../errors.js';

/**
 * The deepest nesting of objects and arrays a chat body may have. Rust's serde_json stops at the
 * same 128; OpenAI's structured outputs allow 10 levels of schema nesting, so no real request comes
 * near it. Without a limit, 10 KB of `[` (5,000 levels) overflowed the stack of every recursive
 * walk of the body (JSON.stringify of a rewritten body, of the explain answer): a 500 per request.
 */
export const MAX_JSON_DEPTH = 128;

/** The longest key a refusal quotes: a client chooses it, so an error message must not carry 20 MB of it. */
const MAX_QUOTED_KEY_CHARS = 64;

/** Integers with at most this many digits are exact doubles (2^53 has 16 digits). */
const ALWAYS_EXACT_DIGITS = 15;

/** A key written as `.key` in a path; others are quoted. */
const PLAIN_KEY = /^[A-Za-z_$][\w$]*$/;

/** What the scan learnt about a body that JSON.parse already accepted. */
export interface JsonBodyScan {
  /**
   * The JSON path of the first number whose literal JSON.stringify would not give back (see
   * `unsafeNumber`), or undefined. Forwarding the client's own bytes is fine; re-serialising is not.
   */
  readonly unsafeNumberPath: string | undefined;
}

const enum Char {
  Quote = 0x22, Backslash = 0x5c, Comma = 0x2c, Colon = 0x3a,
  OpenBrace = 0x7b, CloseBrace = 0x7d, OpenBracket = 0x5b, CloseBracket = 0x5d,
  Minus = 0x2d, Zero = 0x30, Nine = 0x39, Dot = 0x2e, LowerE = 0x65, UpperE = 0x45, LowerU = 0x75,
}

/**
 * One pass over the text of a body JSON.parse accepted (so its grammar is known to be right),
 * refusing what JSON.parse lets through but the proxy cannot honour. Each refusal follows I-JSON
 * (RFC 7493), the profile of JSON that parsers agree on:
 * - nesting deeper than MAX_JSON_DEPTH (`json_too_deep`);
 * - an unpaired surrogate escape such as `\ud800` (RFC 7493 §2.1; `invalid_json`): the string is
 *   not text, and used as a model it broke the `x-signalbox-model` header;
 * - a key repeated in the top-level object or in a message object (RFC 7493 §2.3;
 *   `duplicate_key`): JSON.parse keeps the last one for the router while the upstream, reading the
 *   forwarded bytes, may keep the first, so routing and upstream would disagree on the model;
 * and notes the first number a re-serialisation would change (RFC 7493 §2.2; see JsonBodyScan).
 *
 * Linear: strings are skipped with indexOf, keys are materialised only in the objects whose
 * duplicates are refused, and the path of a finding is built only when there is one.
 */
export function scanJsonBody(text: string): JsonBodyScan {
  // Per open container, indexed by depth (1 = the top-level value): array or object, the array's
  // current index, the offsets of the object's current key.
  const isArray: boolean[] = [];
  const index: number[] = [];
  const keyStart: number[] = [];
  const keyEnd: number[] = [];
  // Keys of the top-level object, and of the message object being read (one at a time).
  const topKeys = new Set<string>();
  const messageKeys = new Set<string>();
  let messagesDepth = 0; // the depth of the top-level `messages` array while inside it
  let expectKey = false;
  let depth = 0;
  let unsafeNumberPath: string | undefined;
  // The next quote and backslash at or after the read position, cached so that strings are
  // skipped in linear time however many there are.
  let nextQuote = -1;
  let nextBackslash = -1;
  const n = text.length;

  const pathHere = (): string => pathOf(text, depth, isArray, index, keyStart, keyEnd);

  /** The offset of the quote closing the string that opens at `open`; checks its \u escapes. */
  const stringEnd = (open: number): number => {
    let pos = open + 1;
    for (;;) {
      if (nextQuote < pos) nextQuote = text.indexOf('"', pos);
      if (nextBackslash !== -2 && nextBackslash < pos) {
        nextBackslash = text.indexOf('\\', pos);
        if (nextBackslash === -1) nextBackslash = -2; // none left in the whole body
      }
      if (nextBackslash === -2 || nextBackslash > nextQuote) return nextQuote;
      const b = nextBackslash;
      if (text.charCodeAt(b + 1) !== Char.LowerU) {
        pos = b + 2;
        continue;
      }
      const unit = parseInt(text.slice(b + 2, b + 6), 16);
      if (unit >= 0xd800 && unit <= 0xdbff && text.charCodeAt(b + 6) === Char.Backslash && text.charCodeAt(b + 7) === Char.LowerU) {
        const low = parseInt(text.slice(b + 8, b + 12), 16);
        if (low >= 0xdc00 && low <= 0xdfff) {
          pos = b + 12;
          continue;
        }
      }
      if (unit >= 0xd800 && unit <= 0xdfff) {
        throw new InvalidJsonError(
          `a string at ${pathHere() || 'the top level'} has an unpaired surrogate \\u${text.slice(b + 2, b + 6)} ` +
          '(RFC 7493 §2.1: strings must be Unicode text)',
        );
      }
      pos = b + 6;
    }
  };

  let i = 0;
  while (i < n) {
    const c = text.charCodeAt(i);
    if (c === Char.OpenBrace || c === Char.OpenBracket) {
      depth++;
      if (depth > MAX_JSON_DEPTH) {
        throw new InvalidRequestError(`The request body is nested deeper than ${MAX_JSON_DEPTH} levels`, 'json_too_deep');
      }
      isArray[depth] = c === Char.OpenBracket;
      index[depth] = 0;
      keyStart[depth] = -1;
      expectKey = c === Char.OpenBrace;
      if (depth === 2 && c === Char.OpenBracket && keyIs(text, keyStart[1]!, keyEnd[1]!, 'messages')) messagesDepth = 2;
      if (depth === 3 && messagesDepth === 2 && c === Char.OpenBrace) messageKeys.clear();
      i++;
    } else if (c === Char.CloseBrace || c === Char.CloseBracket) {
      if (depth === messagesDepth) messagesDepth = 0;
      depth--;
      expectKey = false;
      i++;
    } else if (c === Char.Quote) {
      if (expectKey) keyStart[depth] = -1; // a refusal inside this key names its object
      const end = stringEnd(i);
      if (expectKey) {
        keyStart[depth] = i;
        keyEnd[depth] = end;
        const keys = depth === 1 ? topKeys : depth === 3 && messagesDepth === 2 ? messageKeys : undefined;
        if (keys) {
          const key = keyText(text, i, end);
          if (keys.has(key)) {
            const where = depth === 1 ? 'the top-level object' : `the message at messages[${index[2]}]`;
            throw new InvalidRequestError(`The request body repeats the key ${quoteKey(key)} in ${where}`, 'duplicate_key');
          }
          keys.add(key);
        }
      }
      i = end + 1;
    } else if (c === Char.Colon) {
      expectKey = false;
      i++;
    } else if (c === Char.Comma) {
      if (isArray[depth]) index[depth]!++;
      else expectKey = true;
      i++;
    } else if (c === Char.Minus || (c >= Char.Zero && c <= Char.Nine)) {
      let end = i + 1;
      let integer = true;
      for (; end < n; end++) {
        const d = text.charCodeAt(end);
        if (d >= Char.Zero && d <= Char.Nine) continue;
        if (d === Char.Dot || d === Char.LowerE || d === Char.UpperE) integer = false;
        else if (d !== Char.Minus && d !== 0x2b) break;
      }
      if (unsafeNumberPath === undefined && unsafeNumber(text.slice(i, end), integer)) unsafeNumberPath = pathHere() || '(the body)';
      i = end;
    } else {
      i++; // whitespace, true, false, null
    }
  }
  return { unsafeNumberPath };
}

/**
 * Whether JSON.stringify(JSON.parse(literal)) changes what a reader of the number gets.
 * Integers must come back digit for digit: upstreams read them exactly (Python's int, a u64
 * `seed`), so 12345678901234567890 turning into 12345678901234567000, or 1e21 into `1e+21`, is a
 * different request. Other numbers are read as doubles everywhere (RFC 7493 §2.2), so only what a
 * double cannot hold at all changes them: overflow (`1e400` becomes `null`) and a non-zero value
 * that underflows to 0.
 */
function unsafeNumber(literal: string, integer: boolean): boolean {
  if (integer) {
    const digits = literal.charCodeAt(0) === Char.Minus ? literal.length - 1 : literal.length;
    return digits > ALWAYS_EXACT_DIGITS && String(Number(literal)) !== literal;
  }
  const value = Number(literal);
  if (!Number.isFinite(value)) return true;
  if (value !== 0) return false;
  for (let k = 0; k < literal.length; k++) {
    const d = literal.charCodeAt(k);
    if (d === Char.LowerE || d === Char.UpperE) break;
    if (d > Char.Zero && d <= Char.Nine) return true;
  }
  return false;
}

/** The key whose quotes are at `open` and `close`, unescaped (JSON.parse only when it has escapes). */
function keyText(text: string, open: number, close: number): string {
  const raw = text.slice(open + 1, close);
  return raw.includes('\\') ? (JSON.parse(text.slice(open, close + 1)) as string) : raw;
}

function keyIs(text: string, open: number, close: number, name: string): boolean {
  return open >= 0 && keyText(text, open, close) === name;
}

function quoteKey(key: string): string {
  return JSON.stringify(key.length > MAX_QUOTED_KEY_CHARS ? `${key.slice(0, MAX_QUOTED_KEY_CHARS)}…` : key);
}

/** `messages[0].content`, `tools[1].function["a b"]`: where the scan is, for a refusal's message. */
function pathOf(
  text: string, depth: number, isArray: readonly boolean[], index: readonly number[],
  keyStart: readonly number[], keyEnd: readonly number[],
): string {
  let path = '';
  for (let d = 1; d <= depth; d++) {
    if (isArray[d]) {
      path += `[${index[d]}]`;
    } else if (keyStart[d]! >= 0) {
      const key = keyText(text, keyStart[d]!, keyEnd[d]!);
      const plain = key.length <= MAX_QUOTED_KEY_CHARS && PLAIN_KEY.test(key);
      path += plain ? `${path === '' ? '' : '.'}${key}` : `[${quoteKey(key)}]`;
    }
  }
  return clipText(path);
}
