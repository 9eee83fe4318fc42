/**
 * The longest text a client or the upstream chooses that may become a metric label value or a
 * log field (model names, provider, user agent). OpenRouter's model ids are well under 100
 * characters; 200 leaves room for dated variants and provider suffixes, while a model name in a
 * 20 MB body can no longer become a 20 MB log line or label value.
 */
export const MAX_CLIENT_TEXT_CHARS = 200;

/**
 * `text` cut to `max` characters, with a marker that gives the full length (so a cut value never
 * equals a real name, and a reader sees how much was dropped).
 */
export function clipText(text: string, max?: number): string;
export function clipText(text: string | undefined, max?: number): string | undefined;
export function clipText(text: string | undefined, max = MAX_CLIENT_TEXT_CHARS): string | undefined {
  return text === undefined || text.length <= max ? text : `${text.slice(0, max)}…[cut, ${text.length} chars]`;
}
