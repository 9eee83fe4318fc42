/**
 * A deliberately conservative prompt-token estimate, for context-window checks and, later, budget
 * reservations (issue 14, item 2). It must over-estimate, rarely under: a context check that
 * under-counts sends a request the model refuses. It is not `request.tokens`
 * (`estimatePromptTokens` in src/rules/fields.ts), the cheap 4-characters-a-token estimate rules
 * route on; both stay. The rule and its measured error on a sample: docs/token-estimate.md.
 *
 * Pure and total: no I/O, never throws on any JSON value (a deeply nested body is
 * walked with an explicit stack, not recursion), and O(n) in the body with no allocation per
 * character. The work is bounded by the body itself, which the server caps (`BODY_LIMIT_BYTES`)
 * and parses with at most 128 levels of nesting.
 */

/**
 * Tokens counted for each image part, whatever its size: the URL (often a multi-megabyte data: URL)
 * is not read. 1,600 is the largest of the published per-image costs: OpenAI's high-detail formula
 * (85 + 170 per 512 px tile) peaks at 1,445 for a 768x2048 image after its resizing, and Anthropic's
 * (width x height / 750) at about 1,600 for its largest unresized image (1.15 megapixels).
 * https://platform.openai.com/docs/guides/images-vision#calculating-costs ,
 * https://docs.anthropic.com/en/docs/build-with-claude/vision#evaluate-image-size
 * (gpt-4o-mini bills an image as about 33 times that in prompt tokens; that is a price, and is left
 * to the catalog's image price.)
 */
export const IMAGE_PART_TOKENS = 1600;

/**
 * Tokens of framing per message: OpenAI's chat format spends 3 (`<|start|>`, the role, the
 * separator) plus 1 for a `name`; 4 is the upper bound. The role and name are counted as text too.
 */
export const MESSAGE_OVERHEAD_TOKENS = 4;

/** Tokens that prime the reply (`<|start|>assistant<|message|>`), once per request. */
export const REPLY_PRIMING_TOKENS = 3;

/**
 * The completion assumed when a request sets neither `max_tokens` nor `max_completion_tokens`:
 * 4,096, the output cap many models had for years and still a common provider default. A request
 * that asks for longer answers says so with `max_tokens`; one that does not, usually gets fewer.
 */
export const DEFAULT_COMPLETION_TOKENS = 4096;

/**
 * The prompt estimate is the rule's count plus 10%: on the measured sample the rule is within 1-3%
 * of cl100k_base on hashes, identifiers and numbers, and other vocabularies (Llama's, Claude's,
 * Gemini's) were not measured. The margin buys room for them at 10% more over-estimate elsewhere.
 */
export const PROMPT_MARGIN = 1.1;

/**
 * Scripts whose characters cost about one token each, or more: byte-level BPE vocabularies learnt
 * mostly on English give a CJK ideograph, a kana, a Hangul syllable or a Thai letter 1 token in
 * o200k_base, and often 2 in cl100k_base (its 3 UTF-8 bytes). As UTF-16 code unit ranges: Indic
 * scripts to Tibetan (U+0900-U+0FFF), Myanmar (U+1000-U+109F), Hangul Jamo (U+1100-U+11FF), Khmer
 * (U+1780-U+17FF), CJK radicals, punctuation, kana and ideographs (U+2E80-U+9FFF), Hangul Jamo
 * extended and syllables (U+A960-U+D7FF), surrogates (emoji, rare ideographs), compatibility
 * ideographs (U+F900-U+FAFF) and full-width forms (U+FF00-U+FFEF).
 */
function isWide(c: number): boolean {
  return (c >= 0x0900 && c <= 0x109f) || (c >= 0x1100 && c <= 0x11ff) || (c >= 0x1780 && c <= 0x17ff)
    || (c >= 0x2e80 && c <= 0x9fff) || (c >= 0xa960 && c <= 0xdfff) || (c >= 0xf900 && c <= 0xfaff)
    || (c >= 0xff00 && c <= 0xffef);
}

/**
 * Tokens of one non-ASCII UTF-16 code unit. Wide scripts (`isWide`): 1.5, so 3 an emoji (a
 * surrogate pair). Latin letters with accents (below U+0370) and Cyrillic (U+0400-U+052F): 1;
 * the other two-byte scripts (Greek, Armenian, Hebrew, Arabic, Syriac...): 1.5, as cl100k_base
 * splits them about that much. Everything else of three UTF-8 bytes (typographic punctuation, math,
 * arrows, box drawing, dingbats, the zero-width joiner of emoji sequences): 3, one a byte, the most
 * a byte-level BPE vocabulary can spend on it.
 */
function nonAsciiTokens(c: number): number {
  if (c < 0x0370 || (c >= 0x0400 && c <= 0x052f)) return 1;
  if (c < 0x0800 || isWide(c)) return 1.5;
  return 3;
}

/**
 * Tokens of a piece of ASCII letters of one case pattern: 1 per 4 letters, as common words are
 * 1 token for 1 to 8 letters; past 12 letters, 1 per 2, since few vocabulary entries are that long
 * and a long run is an identifier, a compound or random text (400 random lower-case letters are
 * 219 tokens in cl100k_base); all capitals, 1 per 2 throughout (capitals are rarer in vocabularies).
 */
function letterPieceTokens(letters: number, capitals: boolean): number {
  if (capitals) return Math.ceil(letters / 2);
  return letters <= 12 ? Math.ceil(letters / 4) : 3 + Math.ceil((letters - 12) / 2);
}

/**
 * Tokens of a text, by a rule biased high against both o200k_base and cl100k_base (measured in
 * docs/token-estimate.md), per UTF-16 code unit:
 * - ASCII letters: a run splits where the case changes (camelCase, and base64 or hashes, which
 *   tokenizers cut into short pieces); a piece costs `letterPieceTokens`: 1 token per 4 letters, or
 *   per 2 past 12 letters or when it is all capitals;
 * - digits: 1 token per 3 digits of a run, rounded up (GPT tokenizers split numbers in threes);
 * - ASCII punctuation and symbols, and each line break: 1 token each;
 * - white space: a single space or tab is free (it joins the next word), a longer run costs 1;
 * - non-ASCII: `nonAsciiTokens` (1.5 a character for CJK, kana, Hangul, Thai, Indic...), but at
 *   most 1 for a code unit that repeats the one before it (rules drawn with ─ or ═ merge in BPE).
 */
export function conservativeTextTokens(text: string): number {
  let tokens = 0;
  let nonAscii = 0; // fractional costs of non-ASCII code units, rounded up at the end
  let letters = 0; // length of the current letter piece
  let capitals = true; // the current piece is all capitals so far
  let digits = 0;
  let spaces = 0;
  let prevLower = false;
  let prevUpper = false;
  let prev = -1;
  const n = text.length;
  for (let i = 0; i < n; i++) {
    const prevCode = prev;
    const c = text.charCodeAt(i);
    prev = c;
    const isUpper = c >= 65 && c <= 90;
    const isLower = c >= 97 && c <= 122;
    if (isUpper || isLower) {
      // a case change starts a new piece, except a capital followed by lower case ("Hello")
      if (letters > 0 && ((isUpper && prevLower) || (isLower && prevUpper && letters > 1))) {
        tokens += letterPieceTokens(letters, capitals);
        letters = 0;
      }
      if (letters === 0) capitals = isUpper;
      else if (isLower) capitals = false;
      letters++;
    } else if (letters > 0) {
      tokens += letterPieceTokens(letters, capitals);
      letters = 0;
    }
    prevLower = isLower;
    prevUpper = isUpper;
    if (c >= 48 && c <= 57) {
      digits++;
      continue;
    } else if (digits > 0) {
      tokens += Math.ceil(digits / 3);
      digits = 0;
    }
    if (c === 32 || c === 9) {
      spaces++;
      continue;
    } else if (spaces > 0) {
      if (spaces > 1) tokens += 1;
      spaces = 0;
    }
    if (isUpper || isLower) continue;
    if (c < 128) tokens++; // ASCII punctuation and symbols, line breaks
    else nonAscii += c === prevCode ? Math.min(1, nonAsciiTokens(c)) : nonAsciiTokens(c); // a repeat (a rule of ─ or ═) merges
  }
  if (letters > 0) tokens += letterPieceTokens(letters, capitals);
  if (digits > 0) tokens += Math.ceil(digits / 3);
  if (spaces > 1) tokens += 1;
  return tokens + Math.ceil(nonAscii);
}

/** A content part that is an image, by its `type` (OpenAI's and the Responses API's names). */
export function isImagePart(value: unknown): boolean {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) return false;
  const type = (value as { type?: unknown }).type;
  return type === 'image_url' || type === 'input_image' || type === 'image';
}

/** The image parts of a chat body's messages (each priced, and needing a model that takes images). */
export function imageParts(body: unknown): number {
  const messages = body !== null && typeof body === 'object' ? (body as { messages?: unknown }).messages : undefined;
  if (!Array.isArray(messages)) return 0;
  let images = 0;
  for (const message of messages) {
    const content: unknown = message !== null && typeof message === 'object' ? (message as { content?: unknown }).content : undefined;
    if (Array.isArray(content)) for (const part of content) if (isImagePart(part)) images++;
  }
  return images;
}

/**
 * Tokens of any JSON value as a model sees it serialised (a tool definition, a tool call, a JSON
 * schema): its strings and keys as text, plus 1 token per string for its quotes, 1 per member for
 * `:` / `,`, 1 per object or array for its brackets, and numbers by their digits. Images inside
 * count `IMAGE_PART_TOKENS` each, their URL unread. Walked with an explicit stack: never throws.
 */
export function conservativeJsonTokens(root: unknown): number {
  let tokens = 0;
  const stack: unknown[] = [root];
  while (stack.length > 0) {
    const value = stack.pop();
    if (typeof value === 'string') {
      tokens += 1 + conservativeTextTokens(value);
    } else if (typeof value === 'number') {
      tokens += Number.isSafeInteger(value) && value >= 0 && value < 1000 ? 1 : conservativeTextTokens(String(value));
    } else if (typeof value === 'boolean' || value === null) {
      tokens += 1;
    } else if (Array.isArray(value)) {
      tokens += 1 + value.length;
      for (let i = 0; i < value.length; i++) stack.push(value[i]);
    } else if (typeof value === 'object') {
      if (isImagePart(value)) {
        tokens += IMAGE_PART_TOKENS;
        continue;
      }
      tokens += 1;
      for (const key in value) {
        if (!Object.hasOwn(value, key)) continue;
        tokens += 2 + conservativeTextTokens(key);
        stack.push((value as Record<string, unknown>)[key]);
      }
    }
  }
  return tokens;
}

/** Tokens of a message's content: a string is text; an array's text parts are text, images a fixed cost, other parts JSON. */
function contentTokens(content: unknown): number {
  if (typeof content === 'string') return conservativeTextTokens(content);
  if (!Array.isArray(content)) return content === undefined || content === null ? 0 : conservativeJsonTokens(content);
  let tokens = 0;
  for (const part of content) {
    const text = part !== null && typeof part === 'object' ? (part as { text?: unknown }).text : undefined;
    if (typeof text === 'string') tokens += conservativeTextTokens(text);
    else if (isImagePart(part)) tokens += IMAGE_PART_TOKENS;
    else tokens += conservativeJsonTokens(part); // input_audio, file...: their JSON, biased high
  }
  return tokens;
}

/**
 * Conservative prompt tokens of a chat completion body: every message's framing, role, name and
 * content (text by script, images at `IMAGE_PART_TOKENS`), its tool calls, the tool (and legacy
 * function) definitions and a JSON-schema `response_format` as JSON, plus the reply priming,
 * plus `PROMPT_MARGIN`.
 * Any JSON value is accepted: what is not where a chat body has it is skipped, never thrown on.
 */
export function conservativePromptTokens(body: unknown): number {
  if (body === null || typeof body !== 'object' || Array.isArray(body)) return 0;
  const chat = body as Record<string, unknown>;
  let tokens = 0;
  const messages = Array.isArray(chat.messages) ? chat.messages : [];
  for (const element of messages) {
    if (element === null || typeof element !== 'object' || Array.isArray(element)) continue;
    const message = element as Record<string, unknown>;
    tokens += MESSAGE_OVERHEAD_TOKENS;
    if (typeof message.role === 'string') tokens += conservativeTextTokens(message.role);
    if (typeof message.name === 'string') tokens += 1 + conservativeTextTokens(message.name);
    tokens += contentTokens(message.content);
    if (message.tool_calls !== undefined) tokens += conservativeJsonTokens(message.tool_calls);
    if (message.function_call !== undefined) tokens += conservativeJsonTokens(message.function_call);
    if (typeof message.tool_call_id === 'string') tokens += conservativeTextTokens(message.tool_call_id);
  }
  if (messages.length > 0) tokens += REPLY_PRIMING_TOKENS;
  if (chat.tools !== undefined) tokens += conservativeJsonTokens(chat.tools);
  if (chat.functions !== undefined) tokens += conservativeJsonTokens(chat.functions);
  const format = chat.response_format;
  if (format !== null && typeof format === 'object' && (format as { type?: unknown }).type === 'json_schema') {
    tokens += conservativeJsonTokens(format);
  }
  return Math.ceil(tokens * PROMPT_MARGIN);
}

/**
 * The completion a request may use: its `max_tokens`, else `max_completion_tokens` (as
 * `request.max_tokens` reads them), else `DEFAULT_COMPLETION_TOKENS`. A value that is not a
 * non-negative finite number is no cap and gets the default.
 */
export function completionAllowance(body: unknown): number {
  if (body === null || typeof body !== 'object' || Array.isArray(body)) return DEFAULT_COMPLETION_TOKENS;
  const chat = body as Record<string, unknown>;
  const cap = chat.max_tokens ?? chat.max_completion_tokens;
  return typeof cap === 'number' && Number.isFinite(cap) && cap >= 0 ? Math.ceil(cap) : DEFAULT_COMPLETION_TOKENS;
}

/** The context window a request needs: its conservative prompt estimate plus its completion allowance. */
export function contextNeeded(body: unknown): number {
  return conservativePromptTokens(body) + completionAllowance(body);
}
