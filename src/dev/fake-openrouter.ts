import { EventEmitter, once } from 'node:events';
import { createServer, type IncomingHttpHeaders, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { mulberry32 } from '../seeded-random.js';
import { buildCatalog, type Catalog, DEFAULT_MODEL, filterByOutput, isServed, priceUsage } from './fake-models.js';
import {
  anthropicErrorBody, isObjectBody, messagesBody, messagesErrorEvent, messagesEvents, messagesPrompt, messagesRequestProblem, outputCap,
  responsesBody, responsesErrorEvents, responsesEvents, responsesPrompt, type ShapeReply,
} from './fake-shapes.js';

/**
 * A fake OpenRouter for tests, benchmarks and trying Signalbox by hand. It answers like the real
 * API (https://openrouter.ai/docs/api-reference): chat completions as JSON or as SSE with
 * `: OPENROUTER PROCESSING` comments, a final chunk that carries `usage` with `cost` next to a
 * non-empty `choices`, `[DONE]`; OpenRouter's error bodies; mid-stream errors; and injectable
 * faults. It records every request it received and every byte it sent.
 *
 * Usage is priced from the catalog (src/dev/fake-models.ts); an `x-fake-usage` header asks for
 * cached, cache-write and reasoning tokens, a prompt size, or no `cost` at all.
 *
 * Faults are taken, in this order, from the `x-fake-fault` request header (JSON, handy by hand
 * and through a container), then from the queue filled by `enqueue()`. Users' documentation, with
 * every fault: docs/fake-openrouter.md.
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
  /** Absent when the request's `x-fake-usage` said `"cost": false` (BYOK, other upstreams). */
  readonly cost?: number;
  readonly is_byok: boolean;
  /** What the provider charged: the whole price, of which `cost` is OpenRouter's 5% fee under BYOK (as OpenRouter, equal to cost otherwise). */
  readonly cost_details?: { readonly upstream_inference_cost: number };
  readonly prompt_tokens_details: { readonly cached_tokens: number; readonly cache_write_tokens: number };
  readonly completion_tokens_details: { readonly reasoning_tokens: number };
}

/**
 * What a request's `x-fake-usage` header (JSON) asks the usage to report: `cost: false` omits
 * `usage.cost`, so that a client's own pricing can be tested; the token counts replace the fake's
 * own (`prompt_tokens`) or add to them (`reasoning_tokens`, part of `completion_tokens` as on
 * OpenRouter); `cached_tokens` and `cache_write_tokens` are parts of the prompt, capped at it.
 */
export interface UsageRequest {
  readonly cost?: boolean;
  /** Bring your own key: `is_byok` true, `cost` the 5% fee, `cost_details.upstream_inference_cost` the price. */
  readonly byok?: boolean;
  readonly prompt_tokens?: number;
  readonly cached_tokens?: number;
  readonly cache_write_tokens?: number;
  readonly reasoning_tokens?: number;
}

/** OpenRouter's fee on a bring-your-own-key request, a share of what the provider charged (https://openrouter.ai/docs/use-cases/byok). */
const BYOK_FEE = 0.05;

/** Largest token count `x-fake-usage` may ask for: above every context window, and small enough for exact sums. */
const MAX_USAGE_TOKENS = 100_000_000;
const USAGE_COUNTS = ['prompt_tokens', 'cached_tokens', 'cache_write_tokens', 'reasoning_tokens'] as const;

/** The `x-fake-usage` header's request; anything that is not a valid one is ignored, like a bad `x-fake-fault`. */
function parseUsageRequest(header: string | string[] | undefined): UsageRequest {
  if (typeof header !== 'string') return {};
  let json: unknown;
  try {
    json = JSON.parse(header);
  } catch {
    return {};
  }
  if (!isRecord(json)) return {};
  const request: { -readonly [K in keyof UsageRequest]: UsageRequest[K] } = {};
  if (json.cost === false) request.cost = false;
  if (json.byok === true) request.byok = true;
  for (const key of USAGE_COUNTS) {
    const n = json[key];
    if (typeof n === 'number' && Number.isSafeInteger(n) && n >= 0 && n <= MAX_USAGE_TOKENS) request[key] = n;
  }
  return request;
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
  /** Usage of the generation, in chat completion terms whatever the shape (Responses, Messages) that reported it. */
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
  /**
   * Model ids served besides the built-in catalog (src/dev/fake-models.ts), each with a real-shaped
   * entry (an id ending in `*` is a prefix: served, not listed); any other model is refused with
   * OpenRouter's 400, as OpenRouter does.
   */
  readonly extraModels?: readonly string[];
  /** The clock for the catalog's price windows (`pricing.overrides` `utc_start`/`utc_end`), ms since the epoch. */
  readonly now?: () => number;
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

/** Image parts in each shape: chat's `image_url`, Responses' `input_image`, Messages' `image`. */
const IMAGE_PART_TYPES = new Set(['image_url', 'input_image', 'image']);

/** Image parts in the messages (or input items): each is priced at the model's `image` price. */
function countImages(messages: readonly unknown[]): number {
  let images = 0;
  for (const message of messages) {
    const content = isRecord(message) ? message.content : undefined;
    if (!Array.isArray(content)) continue;
    for (const part of content) if (isRecord(part) && typeof part.type === 'string' && IMAGE_PART_TYPES.has(part.type)) images++;
  }
  return images;
}

/** The three API shapes the fake serves, by the path under the base path. */
type Shape = 'chat' | 'responses' | 'messages';
// A Map, not an object literal: a path such as `/api/v1__proto__` must not find a prototype's member.
const SHAPE_PATHS: ReadonlyMap<string, Shape> = new Map([['/chat/completions', 'chat'], ['/responses', 'responses'], ['/messages', 'messages']]);

/** An error body in the shape's own terms: Anthropic's for Messages, OpenRouter's otherwise. */
function errorBody(shape: Shape | undefined, status: number, message?: string): unknown {
  const openRouter = openRouterErrorBody(status, message);
  return shape === 'messages' ? anthropicErrorBody(status, openRouter.error.message) : openRouter;
}

const DONE_EVENT = 'data: [DONE]\n\n';
/** Up to 8 characters of a tool call's arguments: one streamed delta. */
const ARGUMENT_PIECE = /[^]{1,8}/g;

/** Generations kept for `GET /generation?id=`: plenty for any test, bounded for a long soak. */
const MAX_GENERATIONS = 10_000;

export class FakeOpenRouter extends EventEmitter {
  readonly received: ReceivedRequest[] = [];
  readonly options: Required<FakeOpenRouterOptions>;
  /**
   * What a chat completion of a model answers instead of `content`, by model id: a test sets the
   * JSON an LLM classifier's model gives (`fake.cannedContent.set('openai/gpt-4o-mini', '{...}')`).
   */
  readonly cannedContent = new Map<string, string>();

  /**
   * What `model` answers from now on: one of the FAKE_ANSWERS modes (`refusal`, `short`,
   * `invalid_json`, `json`, `uncertain`) or any other text as it is; as `x-fake-answer` does per request.
   */
  answer(model: string, modeOrText: string): this {
    this.cannedContent.set(model, answerText(modeOrText));
    return this;
  }
  private readonly server: Server;
  private readonly sockets = new Set<Socket>();
  private readonly faults: Fault[] = [];
  private readonly manualWaiters: ((m: ManualResponse) => void)[] = [];
  private readonly manualReady: ManualResponse[] = [];
  private seq = 0;
  private readonly random: () => number;
  private readonly catalog: Catalog;
  /**
   * What each generation cost, for `GET /generation?id=` (the last MAX_GENERATIONS, oldest
   * dropped first: a fake that runs a soak keeps a bounded map).
   */
  private readonly generations = new Map<string, { readonly model: string; readonly usage: FakeUsage; readonly cost: number }>();

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
      extraModels: options.extraModels ?? [],
      now: options.now ?? Date.now,
    };
    this.catalog = buildCatalog(this.options.extraModels);
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
      // `manual` hands the response to code that called nextManual(): only enqueue() may ask for
      // it. From a header, in `signalbox fake-openrouter`, its handle would wait forever.
      if (fault?.type === 'manual') fault = undefined;
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
    const shape = record.method === 'POST' && path.startsWith(base) ? SHAPE_PATHS.get(path.slice(base.length)) : undefined;

    switch (fault?.type) {
      case 'hang':
        return;
      case 'reset-before-headers':
        req.socket.destroy();
        return;
      case 'status':
        sendJson(res, fault.status, fault.body ?? errorBody(shape, fault.status), fault.headers);
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

    // The model list is public on OpenRouter: it answers without a key.
    const publicPath = record.method === 'GET' && path === `${base}/models`;
    if (this.options.requireAuth && !publicPath && !/^Bearer\s+\S+/i.test(record.headers.authorization ?? '')) {
      sendJson(res, 401, errorBody(shape, 401));
      return;
    }

    if (shape !== undefined) {
      if (this.refuseUnknownModel(record, res, shape)) return;
      if (shape === 'chat') await this.chatCompletion(record, res);
      else if (shape === 'responses') await this.responses(record, res);
      else await this.messages(record, res);
    } else if (record.method === 'GET' && path === `${base}/models`) {
      const query = new URL(record.url, 'http://fake').searchParams.get('output_modalities');
      sendJson(res, 200, { data: filterByOutput(this.catalog.models.values(), query) });
    } else if (record.method === 'GET' && path === `${base}/generation`) {
      // OpenRouter answers 404 until a generation is stored (a few seconds after it ends).
      const id = new URL(record.url, 'http://fake').searchParams.get('id') ?? '';
      const generation = this.generations.get(id);
      if (generation === undefined) sendJson(res, 404, openRouterErrorBody(404, `Generation ${id} not found`));
      else {
        sendJson(res, 200, {
          data: {
            id, model: generation.model, total_cost: generation.cost, created_at: new Date(this.options.now()).toISOString(),
            tokens_prompt: generation.usage.prompt_tokens, tokens_completion: generation.usage.completion_tokens, streamed: true, cancelled: false,
          },
        });
      }
    } else if (record.method === 'POST' && path === `${base}/embeddings`) {
      if (this.refuseUnknownModel(record, res, undefined)) return;
      sendJson(res, 200, embeddingsResponse(record.json));
    } else {
      sendJson(res, 404, openRouterErrorBody(404));
    }
  }

  /**
   * Answers OpenRouter's 400 for a `model` (or an entry of `models`) that is not in the catalog,
   * in its body shape: `{"error":{"message":"<id> is not a valid model ID","code":400}}` (as
   * reported in https://github.com/OpenRouterTeam/openrouter-examples/issues/74). True when refused.
   */
  private refuseUnknownModel(record: ReceivedRequest, res: ServerResponse, shape: Shape | undefined): boolean {
    const json = record.json;
    if (json === null || typeof json !== 'object') return false;
    const { model, models } = json as Record<string, unknown>;
    const ids = [model, ...(Array.isArray(models) ? models : [])].filter((m): m is string => typeof m === 'string');
    const unknown = ids.find((id) => !isServed(this.catalog, id));
    if (unknown === undefined) return false;
    sendJson(res, 400, errorBody(shape, 400, `${unknown} is not a valid model ID`));
    return true;
  }

  private async chatCompletion(record: ReceivedRequest, res: ServerResponse): Promise<void> {
    const body = (record.json ?? {}) as Record<string, unknown>;
    if (typeof body !== 'object' || !Array.isArray(body.messages)) {
      sendJson(res, 400, openRouterErrorBody(400, 'Input required: specify "messages"'));
      return;
    }
    const model = requestedModel(body);
    const created = 1_700_000_000 + record.seq;
    const call = toolCall(body, record.seq);
    const words = this.answerOf(record, model).split(/(?<= )/);
    // A tool call's arguments stream in pieces of a few characters, as a model emits them.
    const argumentPieces = call ? call.arguments.match(ARGUMENT_PIECE) ?? [''] : [];
    const { id, usage, headers } = this.generate(record, model, body.messages, call ? argumentPieces.length + 1 : words.length);
    const provider = this.options.provider;

    const finishReason = call ? 'tool_calls' : 'stop';
    if (body.stream !== true) {
      const message = call
        ? { role: 'assistant', content: null, refusal: null, reasoning: null, tool_calls: [{ index: 0, id: call.id, type: 'function', function: { name: call.name, arguments: call.arguments } }] }
        : { role: 'assistant', content: words.join(''), refusal: null, reasoning: null };
      sendJson(res, 200, {
        id, provider, model, object: 'chat.completion', created,
        choices: [{ logprobs: null, finish_reason: finishReason, native_finish_reason: finishReason, index: 0, message }],
        usage,
      }, headers);
      return;
    }

    const chunk = (delta: Record<string, unknown>, finish: string | null, extra: Record<string, unknown> = {}): string =>
      `data: ${JSON.stringify({
        id, provider, model, object: 'chat.completion.chunk', created,
        choices: [{ index: 0, delta, finish_reason: finish, native_finish_reason: finish, logprobs: null }],
        ...extra,
      })}\n\n`;
    const events: string[] = [chunk({ role: 'assistant', content: '' }, null)];
    if (call) {
      // The first delta of a call carries its index, id, type and name; later ones only argument text.
      events.push(chunk({ role: 'assistant', content: null, tool_calls: [{ index: 0, id: call.id, type: 'function', function: { name: call.name, arguments: '' } }] }, null));
      for (const piece of argumentPieces) events.push(chunk({ role: 'assistant', content: null, tool_calls: [{ index: 0, function: { arguments: piece } }] }, null));
    } else {
      for (const word of words) events.push(chunk({ role: 'assistant', content: word }, null));
    }
    events.push(chunk({ role: 'assistant', content: '' }, finishReason));
    // OpenRouter's real shape: usage rides on a last chunk whose `choices` is not empty.
    events.push(chunk({ role: 'assistant', content: '' }, null, { usage }));
    events.push(DONE_EVENT);
    await this.stream(record, res, headers, events, (fault) => `data: ${JSON.stringify({
      id, object: 'chat.completion.chunk', created, model, provider,
      error: { code: fault.code ?? 'server_error', message: fault.message ?? 'Provider disconnected unexpectedly' },
      choices: [{ index: 0, delta: { content: '' }, finish_reason: 'error' }],
    })}\n\n`);
  }

  /** `POST /responses`: OpenAI's Responses API as OpenRouter serves it (beta); the events are in fake-shapes.ts. */
  private async responses(record: ReceivedRequest, res: ServerResponse): Promise<void> {
    const body = record.json;
    if (!isObjectBody(body) || (typeof body.input !== 'string' && !Array.isArray(body.input))) {
      sendJson(res, 400, openRouterErrorBody(400, 'Input required: specify "input"'));
      return;
    }
    const reply = this.shapeReply(record, body, responsesPrompt(body), outputCap(body.max_output_tokens));
    if (body.stream !== true) {
      sendJson(res, 200, responsesBody(reply.shape, body), reply.headers);
      return;
    }
    const events = responsesEvents(reply.shape, body);
    await this.stream(record, res, reply.headers, events, (fault, sent) => responsesErrorEvents(
      reply.shape, body, sent, typeof fault.code === 'string' ? fault.code : 'server_error', fault.message ?? 'Provider disconnected unexpectedly'));
  }

  /** `POST /messages`: Anthropic's Messages API as OpenRouter serves it; the events are in fake-shapes.ts. */
  private async messages(record: ReceivedRequest, res: ServerResponse): Promise<void> {
    const body = record.json;
    const problem = isObjectBody(body) ? messagesRequestProblem(body) : 'The request body is not valid JSON.';
    if (problem !== undefined || !isObjectBody(body)) {
      sendJson(res, 400, anthropicErrorBody(400, problem ?? ''));
      return;
    }
    const reply = this.shapeReply(record, body, messagesPrompt(body), outputCap(body.max_tokens));
    if (body.stream !== true) {
      sendJson(res, 200, messagesBody(reply.shape), reply.headers);
      return;
    }
    await this.stream(record, res, reply.headers, messagesEvents(reply.shape), (fault) =>
      messagesErrorEvent(typeof fault.code === 'string' ? fault.code : undefined, fault.message));
  }

  /** The answer of a Responses or Messages request: its words cut at the output cap (one token a word), priced. */
  private shapeReply(record: ReceivedRequest, body: Record<string, unknown>, prompt: unknown[], cap: number | undefined): { shape: ShapeReply; headers: Record<string, string> } {
    const model = requestedModel(body);
    const all = this.answerOf(record, model).split(/(?<= )/);
    const words = cap !== undefined && cap < all.length ? all.slice(0, cap) : all;
    const { usage, headers } = this.generate(record, model, prompt, words.length);
    return { shape: { seq: record.seq, model, words, truncated: words.length < all.length, usage }, headers };
  }

  /** What `model` answers this request: `x-fake-answer`, else `answer()`/`cannedContent`, else the fake's content. */
  private answerOf(record: ReceivedRequest, model: string): string {
    return answerFromHeader(record.headers['x-fake-answer'], model) ?? this.cannedContent.get(model) ?? this.options.content;
  }

  /** Prices and records one generation of any shape, and returns the response headers OpenRouter sends with it. */
  private generate(record: ReceivedRequest, model: string, prompt: readonly unknown[], completionTokens: number): { id: string; usage: FakeUsage; headers: Record<string, string> } {
    const id = `gen-${1_700_000_000 + record.seq}-fake${record.seq}`;
    const usage = this.usage(model, prompt, completionTokens, parseUsageRequest(record.headers['x-fake-usage']));
    record.usage = usage;
    // Stored whatever the answer reports: GET /generation knows the cost even of a stream cut
    // before its usage chunk, or of an answer that left `cost` out.
    const used = { prompt: usage.prompt_tokens, completion: usage.completion_tokens, cachedRead: usage.prompt_tokens_details.cached_tokens, cacheWrite: usage.prompt_tokens_details.cache_write_tokens, reasoning: usage.completion_tokens_details.reasoning_tokens, images: countImages(prompt) };
    if (this.generations.size >= MAX_GENERATIONS) this.generations.delete(this.generations.keys().next().value!);
    this.generations.set(id, { model, usage, cost: priceUsage(this.catalog, model, used, this.options.now()) });
    const headers = {
      'x-generation-id': id,
      'x-ratelimit-limit': '200',
      'x-ratelimit-remaining': '199',
      'x-ratelimit-reset': String(Date.now() + 60_000),
    };
    return { id, usage, headers };
  }

  /**
   * Streams `events` (each a whole SSE event) after the processing comments, applying the
   * request's stream faults: `inBandError` writes the shape's own error event(s), given the fault
   * and how many events were sent before it.
   */
  private async stream(
    record: ReceivedRequest, res: ServerResponse, headers: Record<string, string>, events: readonly string[],
    inBandError: (fault: Extract<Fault, { type: 'error-mid-stream' }>, sent: number) => string,
  ): Promise<void> {
    const fault = record.fault;
    res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache', ...headers });
    res.flushHeaders();
    if (fault?.type === 'hang-after-headers') {
      res.write(': OPENROUTER PROCESSING\n\n');
      return;
    }
    const gapMs = fault?.type === 'slow-stream' ? fault.ms : 0;
    const stamp = fault?.type === 'slow-stream' && fault.stamp === true;
    for (let i = 0; i < this.options.processingComments; i++) {
      await writeAndWait(res, ': OPENROUTER PROCESSING\n\n');
      if (gapMs > 0) await delay(gapMs);
    }
    let dataEvents = 0;
    for (const event of events) {
      if (res.destroyed) return;
      if (fault?.type === 'reset-mid-stream' && dataEvents === fault.afterEvents) {
        res.socket?.destroy();
        return;
      }
      if (fault?.type === 'error-mid-stream' && dataEvents === fault.afterEvents) {
        res.end(inBandError(fault, dataEvents));
        return;
      }
      dataEvents++;
      // A JSON event ends in `}\n\n`: the stamp goes in before its closing brace, at write time.
      await writeAndWait(res, stamp && event !== DONE_EVENT
        ? `${event.slice(0, -3)},"x_sent_ns":"${process.hrtime.bigint()}"}\n\n`
        : event);
      if (gapMs > 0) await delay(gapMs);
    }
    res.end();
  }

  /**
   * The deterministic usage the fake reports: prompt tokens are the characters of `messages` / 4
   * (rounded up), completion tokens `completionTokens`, both as `x-fake-usage` adjusts them; the
   * cost is priced from the model's catalog entry at this instant (docs/fake-openrouter.md).
   */
  private usage(model: string, messages: readonly unknown[], completionTokens: number, asked: UsageRequest): FakeUsage {
    const prompt = asked.prompt_tokens ?? Math.max(1, Math.ceil(JSON.stringify(messages).length / 4));
    const cachedRead = Math.min(asked.cached_tokens ?? 0, prompt);
    const cacheWrite = Math.min(asked.cache_write_tokens ?? 0, prompt - cachedRead);
    const reasoning = asked.reasoning_tokens ?? 0;
    const completion = completionTokens + reasoning;
    const used = { prompt, completion, cachedRead, cacheWrite, reasoning, images: countImages(messages) };
    const price = priceUsage(this.catalog, model, used, this.options.now());
    const byok = asked.byok === true;
    return {
      prompt_tokens: prompt,
      completion_tokens: completion,
      total_tokens: prompt + completion,
      ...(asked.cost === false ? {} : { cost: byok ? price * BYOK_FEE : price, cost_details: { upstream_inference_cost: price } }),
      is_byok: byok,
      prompt_tokens_details: { cached_tokens: cachedRead, cache_write_tokens: cacheWrite },
      completion_tokens_details: { reasoning_tokens: reasoning },
    };
  }
}

interface ToolCall {
  readonly id: string;
  readonly name: string;
  /** JSON text, as the API sends it. */
  readonly arguments: string;
}

/**
 * The tool call the fake answers with when the request offers tools and `tool_choice` is not
 * `"none"`: the tool that `tool_choice` names, else the first one, called with the smallest
 * arguments its JSON schema accepts (`{}` unless it has required properties).
 */
function toolCall(body: Record<string, unknown>, seq: number): ToolCall | undefined {
  const { tools, tool_choice: choice } = body;
  if (!Array.isArray(tools) || choice === 'none') return undefined;
  const functions = tools.flatMap((t: unknown) => {
    const fn = isRecord(t) && isRecord(t.function) ? t.function : undefined;
    return fn && typeof fn.name === 'string' ? [fn] : [];
  });
  const wanted = isRecord(choice) && isRecord(choice.function) ? choice.function.name : undefined;
  const fn = functions.find((f) => f.name === wanted) ?? functions[0];
  if (!fn) return undefined;
  return { id: `call_fake${seq}`, name: fn.name as string, arguments: JSON.stringify(minimalValue(fn.parameters, 0) ?? {}) };
}

/** Deepest schema nesting `minimalValue` follows: a hostile schema cannot recurse without end. */
const MAX_SCHEMA_DEPTH = 16;

/** The smallest value a JSON schema accepts, trivially: required properties only, empty strings, zeros, `false`, `[]`. */
function minimalValue(schema: unknown, depth: number): unknown {
  if (!isRecord(schema) || depth > MAX_SCHEMA_DEPTH) return null;
  if ('const' in schema) return schema.const;
  if (Array.isArray(schema.enum) && schema.enum.length > 0) return schema.enum[0];
  const type = Array.isArray(schema.type) ? schema.type[0] : schema.type;
  switch (type ?? (isRecord(schema.properties) ? 'object' : undefined)) {
    case 'object': {
      // No prototype: a required key named `__proto__` becomes an own property, not a prototype.
      const value = Object.create(null) as Record<string, unknown>;
      const properties = isRecord(schema.properties) ? schema.properties : {};
      for (const key of Array.isArray(schema.required) ? schema.required : []) {
        if (typeof key === 'string') value[key] = minimalValue(Object.hasOwn(properties, key) ? properties[key] : undefined, depth + 1);
      }
      return value;
    }
    case 'array':
      return [];
    case 'string':
      return '';
    case 'number':
    case 'integer':
      return typeof schema.minimum === 'number' ? schema.minimum : 0;
    case 'boolean':
      return false;
    default:
      return null;
  }
}

/** Dimensions of the fake's embeddings. */
const EMBEDDING_DIMENSIONS = 8;
/** Inputs per embeddings request, as OpenAI's API allows at most (2048). */
const MAX_EMBEDDING_INPUTS = 2048;

/**
 * An embeddings answer: one vector per input, derived from the input's text so that equal inputs
 * get equal vectors. Values are multiples of 1/1024, exact in float32, so `encoding_format:
 * "base64"` (the little-endian float32 array, base64-encoded, which the OpenAI Node SDK asks for
 * by default and decodes) carries exactly the numbers `"float"` does.
 */
function embeddingsResponse(json: unknown): unknown {
  const body = isRecord(json) ? json : {};
  const input = body.input;
  const inputs = (Array.isArray(input) ? input : [input ?? '']).slice(0, MAX_EMBEDDING_INPUTS);
  const base64 = body.encoding_format === 'base64';
  let chars = 0;
  const data = inputs.map((item, index) => {
    const text = typeof item === 'string' ? item : JSON.stringify(item) ?? '';
    chars += text.length;
    const next = mulberry32(fnv1a(text));
    const vector = Array.from({ length: EMBEDDING_DIMENSIONS }, () => Math.round((next() * 2 - 1) * 1024) / 1024);
    return { object: 'embedding', index, embedding: base64 ? float32Base64(vector) : vector };
  });
  const tokens = Math.max(1, Math.ceil(chars / 4));
  return {
    object: 'list',
    model: typeof body.model === 'string' ? body.model : 'openai/text-embedding-3-small',
    data,
    usage: { prompt_tokens: tokens, total_tokens: tokens },
  };
}

function float32Base64(values: readonly number[]): string {
  const bytes = Buffer.alloc(values.length * 4);
  values.forEach((v, i) => bytes.writeFloatLE(v, i * 4));
  return bytes.toString('base64');
}

/** FNV-1a over UTF-16 code units: a cheap, stable seed from a string. */
function fnv1a(text: string): number {
  let hash = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) hash = Math.imul(hash ^ text.charCodeAt(i), 0x01000193) >>> 0;
  return hash;
}

/**
 * The answers `x-fake-answer` and `answer()` name, so that cascades (issue 17) are exercised:
 * each fails one check of docs/experiments.md's example (or, `json`, passes JSON mode).
 */
export const FAKE_ANSWERS: Readonly<Record<string, string>> = Object.freeze({
  refusal: "I'm sorry, but I can't help with that request.",
  short: 'Ok.',
  invalid_json: 'Sure! Here is the JSON: {"answer": 42',
  json: '{"answer": 42, "unit": "none", "source": "the fake"}',
  uncertain: "The answer might be 42, but I'm not sure about that at all.",
});

function answerText(modeOrText: string): string {
  return Object.hasOwn(FAKE_ANSWERS, modeOrText) ? FAKE_ANSWERS[modeOrText]! : modeOrText;
}

/** The answer `x-fake-answer` (JSON: `{"<model id>": "<mode or text>"}`) gives `model`; anything invalid is ignored, like a bad `x-fake-fault`. */
function answerFromHeader(header: string | string[] | undefined, model: string): string | undefined {
  if (typeof header !== 'string') return undefined;
  let parsed: unknown;
  try {
    parsed = JSON.parse(header);
  } catch {
    return undefined;
  }
  if (!isRecord(parsed) || !Object.hasOwn(parsed, model)) return undefined;
  const value = parsed[model];
  return typeof value === 'string' ? answerText(value) : undefined;
}

/** The model that answers: the first of `models`, else `model`; without either OpenRouter uses the account's default model. */
function requestedModel(body: Record<string, unknown>): string {
  const models = Array.isArray(body.models) ? body.models.filter((m): m is string => typeof m === 'string') : [];
  return models[0] ?? (typeof body.model === 'string' ? body.model : DEFAULT_MODEL);
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
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
