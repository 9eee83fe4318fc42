import { EventEmitter, once } from 'node:events';
import { createServer, type IncomingHttpHeaders, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';

/**
 * A fake OpenRouter for tests, benchmarks and trying Signalbox by hand. It answers like the real
 * API (https://openrouter.ai/docs/api-reference): chat completions as JSON or as SSE with
 * `: OPENROUTER PROCESSING` comments, a final chunk that carries `usage` with `cost` next to a
 * non-empty `choices`, `[DONE]`; OpenRouter's error bodies; mid-stream errors; and injectable
 * faults. It records every request it received and every byte it sent.
 *
 * Faults are taken, in this order, from the `x-fake-fault` request header (JSON, handy by hand
 * and through a container), then from the queue filled by `enqueue()`.
 */

export type Fault =
  /** Answer with this status and an OpenRouter error body (or `body`). */
  | { readonly type: 'status'; readonly status: number; readonly body?: unknown; readonly headers?: Record<string, string> }
  /** Wait before sending the response head, then answer normally. */
  | { readonly type: 'latency'; readonly ms: number }
  /** Never answer; the connection stays open. */
  | { readonly type: 'hang' }
  /** Send the head and one processing comment, then nothing more. */
  | { readonly type: 'hang-after-headers' }
  /** Reset the connection without answering. */
  | { readonly type: 'reset-before-headers' }
  /** Stream `afterEvents` events (role chunk first), then reset the connection. */
  | { readonly type: 'reset-mid-stream'; readonly afterEvents: number }
  /** Stream `afterEvents` events, then OpenRouter's in-band error chunk, then end. */
  | { readonly type: 'error-mid-stream'; readonly afterEvents: number; readonly code?: string | number; readonly message?: string }
  /** Answer 200 with a body that is not what the client expects. */
  | { readonly type: 'garbage'; readonly body?: string; readonly contentType?: string }
  /**
   * Wait `ms` between stream events (slow tokens). With `stamp`, every `data:` event but `[DONE]`
   * also carries a top-level `"x_sent_ns":"<ns>"`: process.hrtime.bigint() (CLOCK_MONOTONIC,
   * comparable across processes on one Linux host) taken as the event is written, so a client can
   * tell each event's transit time (benchmarks: the delay a proxy adds per event).
   */
  | { readonly type: 'slow-stream'; readonly ms: number; readonly stamp?: boolean }
  /** Hand the response to the test: see `nextManual()`. */
  | { readonly type: 'manual' };

export interface FakeUsage {
  readonly prompt_tokens: number;
  readonly completion_tokens: number;
  readonly total_tokens: number;
  readonly cost: number;
  readonly is_byok: boolean;
  readonly prompt_tokens_details: { readonly cached_tokens: number };
  readonly completion_tokens_details: { readonly reasoning_tokens: number };
}

export interface ReceivedRequest {
  readonly seq: number;
  readonly method: string;
  /** Path with query, as received. */
  readonly url: string;
  readonly headers: IncomingHttpHeaders;
  readonly body: Buffer;
  /** The body parsed as JSON, when it was JSON. */
  readonly json: unknown;
  readonly fault: Fault | undefined;
  /** Every chunk written to the response, in order. */
  readonly sent: Buffer[];
  /** Usage reported for a chat completion, when one was sent. */
  usage: FakeUsage | undefined;
  /** Settles when the exchange is over: `complete` (response ended) or `aborted` (peer closed first). */
  readonly outcome: Promise<'complete' | 'aborted'>;
  aborted: boolean;
}

export interface FakeOpenRouterOptions {
  /** Path prefix of the API, as in `https://openrouter.ai/api/v1`. */
  readonly basePath?: string;
  /** The assistant's reply, streamed word by word. */
  readonly content?: string;
  /** `: OPENROUTER PROCESSING` comments sent before the first data event of a stream. */
  readonly processingComments?: number;
  /** Answer 401 when no `Authorization: Bearer ...` is present, like OpenRouter. */
  readonly requireAuth?: boolean;
  /** Served provider name reported in responses. */
  readonly provider?: string;
  /** Keep every request and the bytes sent in `received` (tests); off for benchmarks, whose memory must stay flat. */
  readonly record?: boolean;
  /**
   * Faults drawn at random for requests that have no other fault: each request gets one of
   * `faults` with probability `rate`, from a seeded generator so that a run can be repeated.
   */
  readonly randomFaults?: { readonly rate: number; readonly faults: readonly Fault[]; readonly seed?: number };
}

export interface ManualResponse {
  readonly request: ReceivedRequest;
  writeHead(status: number, headers: Record<string, string>): void;
  /** Writes and resolves once the bytes were handed to the socket. */
  write(data: string | Buffer): Promise<void>;
  end(data?: string | Buffer): Promise<void>;
  /** Resets the connection. */
  destroy(): void;
}

const OPENROUTER_ERROR_MESSAGES: Record<number, string> = {
  400: 'Bad Request: invalid request parameters',
  401: 'No auth credentials found',
  402: 'Insufficient credits. Add more using https://openrouter.ai/credits',
  403: 'Input flagged by moderation',
  404: 'Not Found',
  408: 'Request timed out',
  429: 'Rate limit exceeded: free-models-per-min',
  500: 'Internal Server Error',
  502: 'Provider returned error',
  503: 'No endpoints found that can handle the request',
  504: 'Gateway Timeout',
};

/** OpenRouter's error body: `{"error":{"code":<status>,"message":...}}`. */
export function openRouterErrorBody(status: number, message?: string): { error: { code: number; message: string; metadata?: unknown } } {
  return { error: { code: status, message: message ?? OPENROUTER_ERROR_MESSAGES[status] ?? `HTTP ${status}` } };
}

/** The deterministic usage the fake reports: tokens from sizes, cost from fixed prices. */
export function fakeUsage(promptChars: number, completionTokens: number): FakeUsage {
  const prompt = Math.max(1, Math.ceil(promptChars / 4));
  // $1 per million prompt tokens, $2 per million completion tokens; rounded like OpenRouter's decimals.
  const cost = Math.round((prompt * 1e-6 + completionTokens * 2e-6) * 1e12) / 1e12;
  return {
    prompt_tokens: prompt,
    completion_tokens: completionTokens,
    total_tokens: prompt + completionTokens,
    cost,
    is_byok: false,
    prompt_tokens_details: { cached_tokens: 0 },
    completion_tokens_details: { reasoning_tokens: 0 },
  };
}

const MODELS = [
  'openai/gpt-4o-mini', 'openai/gpt-4o', 'anthropic/claude-3.5-sonnet', 'meta-llama/llama-3.1-8b-instruct',
  'google/gemini-2.0-flash-001', 'mistralai/mistral-small',
];

const DONE_EVENT = 'data: [DONE]\n\n';

export class FakeOpenRouter extends EventEmitter {
  readonly received: ReceivedRequest[] = [];
  readonly options: Required<FakeOpenRouterOptions>;
  private readonly server: Server;
  private readonly sockets = new Set<Socket>();
  private readonly faults: Fault[] = [];
  private readonly manualWaiters: ((m: ManualResponse) => void)[] = [];
  private readonly manualReady: ManualResponse[] = [];
  private seq = 0;
  private readonly random: () => number;

  constructor(options: FakeOpenRouterOptions = {}) {
    super();
    this.options = {
      basePath: options.basePath ?? '/api/v1',
      content: options.content ?? 'Hello from the fake OpenRouter. Streams arrive word by word.',
      processingComments: options.processingComments ?? 2,
      requireAuth: options.requireAuth ?? true,
      provider: options.provider ?? 'OpenAI',
      record: options.record ?? true,
      randomFaults: options.randomFaults ?? { rate: 0, faults: [] },
    };
    this.random = mulberry32(this.options.randomFaults.seed ?? 1);
    this.server = createServer((req, res) => this.onRequest(req, res));
    this.server.on('connection', (socket) => {
      this.sockets.add(socket);
      socket.once('close', () => this.sockets.delete(socket));
    });
  }

  /** Starts listening on 127.0.0.1 (port 0 picks a free one); resolves to the base URL. */
  async listen(port = 0, host = '127.0.0.1'): Promise<string> {
    this.server.listen(port, host);
    await once(this.server, 'listening');
    return this.baseUrl;
  }

  get port(): number {
    return (this.server.address() as AddressInfo).port;
  }

  /** The URL to give Signalbox as OPENROUTER_BASE_URL. */
  get baseUrl(): string {
    return `http://127.0.0.1:${this.port}${this.options.basePath}`;
  }

  /** Applies `fault` to the next request that carries no `x-fake-fault` header. */
  enqueue(...faults: Fault[]): this {
    this.faults.push(...faults);
    return this;
  }

  /** Resolves with the next request's received record (or the one at index `seq` when already there). */
  async nextRequest(): Promise<ReceivedRequest> {
    const [req] = (await once(this, 'request')) as [ReceivedRequest];
    return req;
  }

  /** Resolves with the handle of the next request whose fault is `manual`. */
  nextManual(): Promise<ManualResponse> {
    const ready = this.manualReady.shift();
    if (ready) return Promise.resolve(ready);
    return new Promise((resolve) => this.manualWaiters.push(resolve));
  }

  /** Stops listening and drops every open connection (hanging ones included). */
  async close(): Promise<void> {
    for (const socket of this.sockets) socket.destroy();
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private onRequest(req: IncomingMessage, res: ServerResponse): void {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => this.handle(req, res, Buffer.concat(chunks)));
    req.on('error', () => res.destroy());
  }

  private handle(req: IncomingMessage, res: ServerResponse, body: Buffer): void {
    let json: unknown;
    if (body.length > 0) {
      try {
        json = JSON.parse(body.toString('utf8'));
      } catch {
        json = undefined;
      }
    }
    let fault: Fault | undefined;
    const header = req.headers['x-fake-fault'];
    if (typeof header === 'string') {
      try {
        fault = JSON.parse(header) as Fault;
      } catch {
        fault = undefined;
      }
    }
    fault ??= this.faults.shift();
    const chaos = this.options.randomFaults;
    if (fault === undefined && chaos.faults.length > 0 && this.random() < chaos.rate) {
      fault = chaos.faults[Math.floor(this.random() * chaos.faults.length)];
    }

    let settle!: (v: 'complete' | 'aborted') => void;
    const record: ReceivedRequest = {
      seq: this.seq++,
      method: req.method ?? 'GET',
      url: req.url ?? '/',
      headers: req.headers,
      body,
      json,
      fault,
      sent: [],
      usage: undefined,
      outcome: new Promise((resolve) => (settle = resolve)),
      aborted: false,
    };
    if (this.options.record) this.received.push(record);
    res.once('close', () => {
      if (res.writableFinished) settle('complete');
      else {
        record.aborted = true;
        settle('aborted');
        this.emit('aborted', record);
      }
    });
    if (!this.options.record) {
      this.emit('request', record);
      void this.respond(record, req, res).catch(() => res.destroy());
      return;
    }
    // Record every byte of the body as it is written.
    const write = res.write.bind(res) as (chunk: string | Buffer, cb?: () => void) => boolean;
    res.write = ((chunk: string | Buffer, ...rest: unknown[]) => {
      record.sent.push(Buffer.from(chunk));
      return (write as (...a: unknown[]) => boolean)(chunk, ...rest);
    }) as typeof res.write;
    const end = res.end.bind(res) as (...a: unknown[]) => ServerResponse;
    res.end = ((chunk?: unknown, ...rest: unknown[]) => {
      if (typeof chunk === 'string' || Buffer.isBuffer(chunk)) record.sent.push(Buffer.from(chunk));
      return end(chunk, ...rest);
    }) as typeof res.end;

    this.emit('request', record);
    void this.respond(record, req, res).catch(() => res.destroy());
  }

  private async respond(record: ReceivedRequest, req: IncomingMessage, res: ServerResponse): Promise<void> {
    const fault = record.fault;
    const path = (record.url.split('?')[0] ?? '').replace(/\/+$/, '');
    const base = this.options.basePath;

    switch (fault?.type) {
      case 'hang':
        return;
      case 'reset-before-headers':
        req.socket.destroy();
        return;
      case 'status':
        sendJson(res, fault.status, fault.body ?? openRouterErrorBody(fault.status), fault.headers);
        return;
      case 'garbage':
        res.writeHead(200, { 'content-type': fault.contentType ?? 'application/json' });
        res.end(fault.body ?? '<html>502 Bad Gateway</html>');
        return;
      case 'latency':
        await delay(fault.ms);
        break;
      case 'manual': {
        const handle = manualHandle(record, res);
        const waiter = this.manualWaiters.shift();
        if (waiter) waiter(handle);
        else this.manualReady.push(handle);
        return;
      }
      default:
        break;
    }

    if (this.options.requireAuth && !/^Bearer\s+\S+/i.test(record.headers.authorization ?? '')) {
      sendJson(res, 401, openRouterErrorBody(401));
      return;
    }

    if (record.method === 'POST' && path === `${base}/chat/completions`) {
      await this.chatCompletion(record, res);
    } else if (record.method === 'GET' && path === `${base}/models`) {
      sendJson(res, 200, {
        data: MODELS.map((id) => ({
          id, name: id, created: 1_700_000_000, context_length: 128_000,
          pricing: { prompt: '0.000001', completion: '0.000002' },
        })),
      });
    } else if (record.method === 'POST' && path === `${base}/embeddings`) {
      const model = stringField(record.json, 'model') ?? 'openai/text-embedding-3-small';
      sendJson(res, 200, {
        object: 'list', model,
        data: [{ object: 'embedding', index: 0, embedding: [0.0123, -0.0456, 0.0789] }],
        usage: { prompt_tokens: 4, total_tokens: 4 },
      });
    } else {
      sendJson(res, 404, openRouterErrorBody(404));
    }
  }

  private async chatCompletion(record: ReceivedRequest, res: ServerResponse): Promise<void> {
    const body = (record.json ?? {}) as Record<string, unknown>;
    if (typeof body !== 'object' || !Array.isArray(body.messages)) {
      sendJson(res, 400, openRouterErrorBody(400, 'Input required: specify "messages"'));
      return;
    }
    const models = Array.isArray(body.models) ? body.models.filter((m): m is string => typeof m === 'string') : [];
    const model = models[0] ?? (typeof body.model === 'string' ? body.model : 'openai/gpt-4o-mini');
    const id = `gen-${1_700_000_000 + record.seq}-fake${record.seq}`;
    const created = 1_700_000_000 + record.seq;
    const words = this.options.content.split(/(?<= )/);
    const usage = fakeUsage(JSON.stringify(body.messages).length, words.length);
    record.usage = usage;
    const provider = this.options.provider;
    const headers = {
      'x-generation-id': id,
      'x-ratelimit-limit': '200',
      'x-ratelimit-remaining': '199',
      'x-ratelimit-reset': String(Date.now() + 60_000),
    };

    if (body.stream !== true) {
      sendJson(res, 200, {
        id, provider, model, object: 'chat.completion', created,
        choices: [{
          logprobs: null, finish_reason: 'stop', native_finish_reason: 'stop', index: 0,
          message: { role: 'assistant', content: this.options.content, refusal: null, reasoning: null },
        }],
        usage,
      }, headers);
      return;
    }

    const fault = record.fault;
    res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache', ...headers });
    res.flushHeaders();
    const chunk = (delta: Record<string, unknown>, finish: string | null, extra: Record<string, unknown> = {}): string =>
      `data: ${JSON.stringify({
        id, provider, model, object: 'chat.completion.chunk', created,
        choices: [{ index: 0, delta, finish_reason: finish, native_finish_reason: finish, logprobs: null }],
        ...extra,
      })}\n\n`;

    if (fault?.type === 'hang-after-headers') {
      res.write(': OPENROUTER PROCESSING\n\n');
      return;
    }
    const events: string[] = [];
    for (let i = 0; i < this.options.processingComments; i++) events.push(': OPENROUTER PROCESSING\n\n');
    events.push(chunk({ role: 'assistant', content: '' }, null));
    for (const word of words) events.push(chunk({ role: 'assistant', content: word }, null));
    events.push(chunk({ role: 'assistant', content: '' }, 'stop'));
    // OpenRouter's real shape: usage rides on a last chunk whose `choices` is not empty.
    events.push(chunk({ role: 'assistant', content: '' }, null, { usage }));
    events.push(DONE_EVENT);

    const gapMs = fault?.type === 'slow-stream' ? fault.ms : 0;
    const stamp = fault?.type === 'slow-stream' && fault.stamp === true;
    let dataEvents = 0;
    for (const event of events) {
      if (res.destroyed) return;
      const isData = event.startsWith('data:');
      if (isData && fault?.type === 'reset-mid-stream' && dataEvents === fault.afterEvents) {
        res.socket?.destroy();
        return;
      }
      if (isData && fault?.type === 'error-mid-stream' && dataEvents === fault.afterEvents) {
        res.end(`data: ${JSON.stringify({
          id, object: 'chat.completion.chunk', created, model, provider,
          error: { code: fault.code ?? 'server_error', message: fault.message ?? 'Provider disconnected unexpectedly' },
          choices: [{ index: 0, delta: { content: '' }, finish_reason: 'error' }],
        })}\n\n`);
        return;
      }
      if (isData) dataEvents++;
      // A JSON event ends in `}\n\n`: the stamp goes in before its closing brace, at write time.
      await writeAndWait(res, stamp && isData && event !== DONE_EVENT
        ? `${event.slice(0, -3)},"x_sent_ns":"${process.hrtime.bigint()}"}\n\n`
        : event);
      if (gapMs > 0) await delay(gapMs);
    }
    res.end();
  }
}

/** A small seeded PRNG (mulberry32): the same seed gives the same faults in the same order. */
function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function stringField(json: unknown, key: string): string | undefined {
  if (json && typeof json === 'object' && typeof (json as Record<string, unknown>)[key] === 'string') {
    return (json as Record<string, string>)[key];
  }
  return undefined;
}

function sendJson(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(text)), ...headers });
  res.end(text);
}

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Writes one event as its own socket write and waits until it has been flushed. */
function writeAndWait(res: ServerResponse, data: string | Buffer): Promise<void> {
  return new Promise((resolve) => {
    if (res.destroyed) {
      resolve();
      return;
    }
    res.write(data, () => resolve());
  });
}

function manualHandle(request: ReceivedRequest, res: ServerResponse): ManualResponse {
  return {
    request,
    writeHead(status, headers) {
      res.writeHead(status, headers);
      res.flushHeaders();
    },
    write: (data) => writeAndWait(res, data),
    end(data) {
      return new Promise((resolve) => {
        if (data === undefined) res.end(() => resolve());
        else res.end(data, () => resolve());
      });
    },
    destroy() {
      res.socket?.destroy();
    },
  };
}
