import assert from 'node:assert/strict';
import type { IncomingHttpHeaders } from 'node:http';

/** One HTTP/1.1 response read off a raw socket. */
export interface ClientResponse {
  readonly status: number;
  readonly headers: IncomingHttpHeaders;
  readonly body: Buffer;
}

/**
 * Splits the raw bytes of one connection into its HTTP/1.1 responses (chunked or with
 * content-length); asserts each is whole, or with `dropPartial` leaves a cut last one out (the
 * hostile suite, where a cut answer is itself a finding reported by the test).
 */
export function parseResponses(raw: Buffer, { dropPartial = false } = {}): ClientResponse[] {
  const whole = (ok: boolean, message: string): boolean => {
    if (!dropPartial) assert.ok(ok, message);
    return ok;
  };
  const responses: ClientResponse[] = [];
  let pos = 0;
  while (pos < raw.length) {
    const headEnd = raw.indexOf('\r\n\r\n', pos);
    if (!whole(headEnd !== -1, 'incomplete response head')) break;
    const [statusLine = '', ...lines] = raw.subarray(pos, headEnd).toString('latin1').split('\r\n');
    const headers: IncomingHttpHeaders = {};
    for (const line of lines) {
      const colon = line.indexOf(':');
      headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim();
    }
    pos = headEnd + 4;
    const parts: Buffer[] = [];
    if (headers['transfer-encoding'] === 'chunked') {
      for (;;) {
        const lineEnd = raw.indexOf('\r\n', pos);
        if (!whole(lineEnd !== -1, 'chunked body cut before its last chunk')) return responses;
        const size = Number.parseInt(raw.subarray(pos, lineEnd).toString('latin1'), 16);
        pos = lineEnd + 2;
        if (size === 0) {
          pos += 2;
          break;
        }
        if (!whole(pos + size <= raw.length, 'chunked body cut mid-chunk')) return responses;
        parts.push(raw.subarray(pos, pos + size));
        pos += size + 2;
      }
    } else {
      const size = Number(headers['content-length'] ?? 0);
      if (dropPartial && pos + size > raw.length) return responses;
      parts.push(raw.subarray(pos, pos + size));
      pos += size;
    }
    responses.push({ status: Number(statusLine.split(' ')[1]), headers, body: Buffer.concat(parts) });
  }
  return responses;
}

