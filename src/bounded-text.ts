/**
 * The longest text a client or the upstream chooses that may become a metric label value or a
 * log field (model names). OpenRouter's model ids are well under 100 characters; 200 leaves room
 * for dated variants and provider suffixes, while a model name in a 20 MB body can no longer
 * become a 20 MB log line or label value.
 */
export const MAX_CLIENT_TEXT_CHARS = 200;

/** `text` cut to MAX_CLIENT_TEXT_CHARS, with `…` marking the cut (so it never equals a real name). */
export function clipText(text: string): string;
export function clipText(text: string | undefined): string | undefined;
export function clipText(text: string | undefined): string | undefined {
  return text === undefined || text.length <= MAX_CLIENT_TEXT_CHARS ? text : `${text.slice(0, MAX_CLIENT_TEXT_CHARS)}…`;
}
