/** What replaces the server key in anything passed back to a client. */
export const REDACTED = '[redacted]';

/** `text` with every occurrence of `secret` replaced (the common case, no occurrence, allocates nothing). */
export function scrubSecret(text: string, secret: string): string {
  return secret.length > 0 && text.includes(secret) ? text.replaceAll(secret, REDACTED) : text;
}

/**
 * Replaces `secret` in a byte stream, occurrences split across chunks included, holding back at
 * most `secret.length - 1` bytes (the only bytes that can still start an occurrence): memory stays
 * bounded by the key's length, whatever the size of the body. Bytes are read as latin1, which maps
 * them one to one, so an ASCII secret is found whatever the body's encoding and every other byte
 * passes unchanged. The output is shorter or longer than the input: drop any content-length.
 * Push-based, like the relay it feeds: `push` each chunk, `flush` at the end.
 */
export class SecretScrubber {
  private readonly secret: string;
  private carry = '';

  constructor(secret: string) {
    if (secret.length === 0) throw new RangeError('SecretScrubber needs a non-empty secret');
    this.secret = secret;
  }

  /** The bytes of `chunk` (and of earlier ones held back) that can be passed on now; undefined when none. */
  push(chunk: Buffer): Buffer | undefined {
    const text = this.carry + chunk.toString('latin1');
    const secret = this.secret;
    let out = '';
    let from = 0;
    for (let at = text.indexOf(secret); at !== -1; at = text.indexOf(secret, from)) {
      out += text.slice(from, at) + REDACTED;
      from = at + secret.length;
    }
    // The last length-1 bytes after the last occurrence may begin one that the next chunk completes.
    const safeEnd = Math.max(from, text.length - (secret.length - 1));
    out += text.slice(from, safeEnd);
    this.carry = text.slice(safeEnd);
    return out.length > 0 ? Buffer.from(out, 'latin1') : undefined;
  }

  /** The bytes still held back, at the end of the body. */
  flush(): Buffer | undefined {
    const rest = this.carry;
    this.carry = '';
    return rest.length > 0 ? Buffer.from(rest, 'latin1') : undefined;
  }
}
