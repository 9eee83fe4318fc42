import { Agent, request as httpRequest, type IncomingHttpHeaders, type OutgoingHttpHeaders } from 'node:http';

/** A whole response as the client received it. */
export interface RawResponse {
  readonly status: number;
  readonly headers: IncomingHttpHeaders;
  /** Every body byte the client received, in order, untouched (no decoding, no parsing). */
  readonly body: Buffer;
}

export interface RawRequestOptions {
  /** Defaults to GET. */
  readonly method?: string;
  /**
   * Path and query, put on the request line exactly as written: `..`, `.` and percent escapes
   * are not normalised (a URL string, or fetch, would resolve them before sending).
   */
  readonly path: string;
  /** Sent as given (a `connection` or `cookie` header included); nothing is added but content-length. */
  readonly headers?: OutgoingHttpHeaders;
  /**
   * Sent as these exact bytes (a string as UTF-8). With a body, `content-length` is set to its
   * byte length, replacing any content-length in `headers`. Without one, node:http decides.
   */
  readonly body?: string | Buffer;
  /**
   * The connection the request goes out on:
   * - `false` (the default): a connection of its own, and node:http asks for `Connection: close`;
   * - `'keep-alive'`: a fresh keep-alive Agent for this one request, so the client asks to keep
   *   the connection (a `connection: close` in the answer is then the server's decision); the
   *   agent is destroyed once the response has ended or failed, so no socket is left open;
   * - an Agent: used as is; the caller owns it and destroys it.
   */
  readonly agent?: Agent | false | 'keep-alive';
}

/**
 * One HTTP/1.1 request with node:http; resolves when the whole response body has arrived.
 *
 * `origin` is the server's `http://host:port` (e.g. a harness's `url`); any path in it is an
 * error, since the request's path is `options.path` alone. Host, port and path go to node:http as
 * separate options, so the path is never parsed as part of a URL.
 *
 * Rejects when the request or the response fails (connection refused, socket cut mid-body).
 * For bytes observed as they arrive, or a request the test abandons, write a dedicated helper.
 */
export async function rawRequest(origin: string, options: RawRequestOptions): Promise<RawResponse> {
  const { hostname, port, pathname, search } = new URL(origin);
  if (pathname !== '/' || search !== '') throw new Error(`rawRequest: origin must be scheme://host:port, got ${origin}`);
  const payload = options.body === undefined ? undefined : Buffer.from(options.body);
  const headers: OutgoingHttpHeaders = { ...options.headers, ...(payload && { 'content-length': String(payload.length) }) };
  let agent: Agent | false = false;
  let owned: Agent | undefined;
  if (options.agent === 'keep-alive') agent = owned = new Agent({ keepAlive: true });
  else if (options.agent) agent = options.agent;
  try {
    return await new Promise<RawResponse>((resolve, reject) => {
      const req = httpRequest({ hostname, port, path: options.path, method: options.method ?? 'GET', headers, agent }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.once('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }));
        res.once('error', reject);
      });
      req.once('error', reject);
      req.end(payload);
    });
  } finally {
    owned?.destroy();
  }
}

/** The response body parsed as JSON (UTF-8). Throws on an empty or malformed body. */
export function jsonOf<T = unknown>(res: RawResponse): T {
  return JSON.parse(res.body.toString('utf8')) as T;
}
