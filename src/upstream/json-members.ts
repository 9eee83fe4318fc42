/**
 * Reads a few top-level members of a JSON object without parsing the whole text (issue 12,
 * defect 25: `JSON.parse` of a 14.5 MiB embeddings answer stalled every stream for 90 ms).
 *
 * The object's members are walked forwards from its `{` and backwards from its `}`, each walk
 * within a byte window; a member is read (its value alone given to `JSON.parse`) only when the
 * walk reaches it whole and its name is wanted. Members outside both windows (behind a huge one)
 * are not found. The work is bounded by the windows, whatever the text.
 *
 * Bytes, not characters: every structural character is ASCII, and no byte of a multi-byte UTF-8
 * sequence is, so a byte walk never mistakes part of a character for a quote or a bracket.
 * Strings are skipped backwards too: in valid JSON a backslash only occurs inside a string, so
 * a quote preceded by an even number of backslashes is where a string starts. Malformed input
 * gives fewer members (or, for text that is not JSON, values that happen to parse), never a throw.
 */

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const COLON = 0x3a;
const COMMA = 0x2c;
const OPEN_OBJECT = 0x7b;
const CLOSE_OBJECT = 0x7d;
const OPEN_ARRAY = 0x5b;
const CLOSE_ARRAY = 0x5d;

/** Member names longer than this are no name anyone asks for: skipped without decoding. */
const MAX_NAME_BYTES = 64;

function isSpace(c: number | undefined): boolean {
  return c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09;
}

/** A byte of a number, `true`, `false` or `null`. */
function isScalar(c: number | undefined): boolean {
  return c !== undefined && ((c >= 0x30 && c <= 0x39) || (c >= 0x61 && c <= 0x7a) || (c >= 0x41 && c <= 0x5a) || c === 0x2d || c === 0x2b || c === 0x2e);
}

function decode(buf: Buffer, start: number, end: number): unknown {
  try {
    return JSON.parse(buf.toString('utf8', start, end)) as unknown;
  } catch {
    return undefined;
  }
}

/** Whether bytes start..end (a JSON string's content) are printable ASCII without escapes: the string is then those bytes. */
function isPlainAscii(buf: Buffer, start: number, end: number): boolean {
  for (let i = start; i < end; i++) {
    const c = buf[i]!;
    if (c === BACKSLASH || c < 0x20 || c > 0x7e) return false;
  }
  return true;
}

/**
 * A member's value. A string of plain ASCII without escapes (ids, model and provider names) is
 * read as it is, without JSON.parse: decoding an answer's few members that way was a few percent
 * of a request's CPU (bench:profile).
 */
function valueAt(buf: Buffer, start: number, end: number): unknown {
  if (buf[start] === QUOTE && end - start >= 2 && isPlainAscii(buf, start + 1, end - 1)) return buf.toString('latin1', start + 1, end - 1);
  return decode(buf, start, end);
}

/** The member's name, when it is short enough to be wanted and valid (a plain ASCII name without JSON.parse, as valueAt). */
function nameAt(buf: Buffer, start: number, end: number): string | undefined {
  if (end - start > MAX_NAME_BYTES) return undefined;
  if (isPlainAscii(buf, start + 1, end - 1)) return buf.toString('latin1', start + 1, end - 1);
  const name = decode(buf, start, end);
  return typeof name === 'string' ? name : undefined;
}

// Forwards: each function takes the index of a value's first byte and returns the index just past
// it, or -1 when it does not end before `limit`.

function stringEnd(buf: Buffer, start: number, limit: number): number {
  for (let i = start + 1; i < limit; i++) {
    const c = buf[i];
    if (c === BACKSLASH) i++;
    else if (c === QUOTE) return i + 1;
  }
  return -1;
}

function valueEnd(buf: Buffer, start: number, limit: number): number {
  const first = buf[start];
  if (first === QUOTE) return stringEnd(buf, start, limit);
  if (first === OPEN_OBJECT || first === OPEN_ARRAY) {
    let depth = 0;
    for (let i = start; i < limit; i++) {
      const c = buf[i];
      if (c === QUOTE) {
        const end = stringEnd(buf, i, limit);
        if (end === -1) return -1;
        i = end - 1;
      } else if (c === OPEN_OBJECT || c === OPEN_ARRAY) {
        depth++;
      } else if (c === CLOSE_OBJECT || c === CLOSE_ARRAY) {
        if (--depth === 0) return i + 1;
      }
    }
    return -1;
  }
  let i = start;
  while (i < limit && isScalar(buf[i])) i++;
  return i === start || i === limit ? -1 : i;
}

function skipSpace(buf: Buffer, i: number, limit: number): number {
  while (i < limit && isSpace(buf[i])) i++;
  return i;
}

// Backwards: each function takes the index of a value's last byte and returns the index of its
// first byte, or -1 when it does not start at or after `floor`.

function stringStart(buf: Buffer, end: number, floor: number): number {
  for (let i = end - 1; i >= floor; i--) {
    if (buf[i] !== QUOTE) continue;
    let j = i - 1;
    while (j >= floor && buf[j] === BACKSLASH) j--;
    if (j < floor) return -1; // cannot tell whether this quote is escaped
    if ((i - 1 - j) % 2 === 0) return i;
  }
  return -1;
}

function valueStart(buf: Buffer, end: number, floor: number): number {
  const last = buf[end];
  if (last === QUOTE) return stringStart(buf, end, floor);
  if (last === CLOSE_OBJECT || last === CLOSE_ARRAY) {
    let depth = 0;
    for (let i = end; i >= floor; i--) {
      const c = buf[i];
      if (c === QUOTE) {
        const start = stringStart(buf, i, floor);
        if (start === -1) return -1;
        i = start;
      } else if (c === CLOSE_OBJECT || c === CLOSE_ARRAY) {
        depth++;
      } else if (c === OPEN_OBJECT || c === OPEN_ARRAY) {
        if (--depth === 0) return i;
      }
    }
    return -1;
  }
  let i = end;
  while (i >= floor && isScalar(buf[i])) i--;
  return i === end || i < floor ? -1 : i + 1;
}

function skipSpaceBack(buf: Buffer, i: number, floor: number): number {
  while (i >= floor && isSpace(buf[i])) i--;
  return i;
}

/**
 * Adds to `found` the wanted members met walking forwards from the object's start, reading no
 * byte at or past `limit`. A name already in `found` is kept.
 */
export function membersFromStart(buf: Buffer, limit: number, wanted: ReadonlySet<string>, found: Map<string, unknown>): void {
  limit = Math.min(limit, buf.length);
  let i = skipSpace(buf, 0, limit);
  if (buf[i] !== OPEN_OBJECT || i >= limit) return;
  i = skipSpace(buf, i + 1, limit);
  if (buf[i] === CLOSE_OBJECT) return;
  while (i < limit && buf[i] === QUOTE) {
    const nameEnd = stringEnd(buf, i, limit);
    if (nameEnd === -1) return;
    const name = nameAt(buf, i, nameEnd);
    i = skipSpace(buf, nameEnd, limit);
    if (buf[i] !== COLON || i >= limit) return;
    const start = skipSpace(buf, i + 1, limit);
    const end = valueEnd(buf, start, limit);
    if (end === -1) return;
    if (name !== undefined && wanted.has(name) && !found.has(name)) found.set(name, valueAt(buf, start, end));
    i = skipSpace(buf, end, limit);
    if (buf[i] !== COMMA || i >= limit) return;
    i = skipSpace(buf, i + 1, limit);
  }
}

/**
 * Adds to `found` the wanted members met walking backwards from the object's end, reading no
 * byte before `floor`. A name already in `found` is kept (the last of duplicates wins, as with
 * `JSON.parse`, when this walk runs first).
 */
export function membersFromEnd(buf: Buffer, floor: number, wanted: ReadonlySet<string>, found: Map<string, unknown>): void {
  floor = Math.max(floor, 0);
  let i = skipSpaceBack(buf, buf.length - 1, floor);
  if (i < floor || buf[i] !== CLOSE_OBJECT) return;
  i = skipSpaceBack(buf, i - 1, floor);
  while (i >= floor && buf[i] !== OPEN_OBJECT) {
    const start = valueStart(buf, i, floor);
    if (start === -1) return;
    const end = i + 1;
    i = skipSpaceBack(buf, start - 1, floor);
    if (i < floor || buf[i] !== COLON) return;
    const nameLast = skipSpaceBack(buf, i - 1, floor);
    if (nameLast < floor || buf[nameLast] !== QUOTE) return;
    const nameStart = stringStart(buf, nameLast, floor);
    if (nameStart === -1) return;
    const name = nameAt(buf, nameStart, nameLast + 1);
    if (name !== undefined && wanted.has(name) && !found.has(name)) found.set(name, valueAt(buf, start, end));
    i = skipSpaceBack(buf, nameStart - 1, floor);
    if (i < floor) return;
    if (buf[i] === COMMA) i = skipSpaceBack(buf, i - 1, floor);
    else if (buf[i] !== OPEN_OBJECT) return;
  }
}

/**
 * The wanted top-level members of the JSON object in `buf`, looked for within `windowBytes` of
 * its end first (so the last of duplicate names wins, as with `JSON.parse`), then of its start.
 */
export function topLevelMembers(buf: Buffer, wanted: ReadonlySet<string>, windowBytes: number): Map<string, unknown> {
  const found = new Map<string, unknown>();
  membersFromEnd(buf, buf.length - windowBytes, wanted, found);
  if (found.size < wanted.size) membersFromStart(buf, windowBytes, wanted, found);
  return found;
}
