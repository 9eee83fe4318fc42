/**
 * Streaming measurements: concurrent streaming chat completions read frame by frame from raw
 * sockets, against the fake upstream's stamped slow streams (`x-fake-fault: {"type":"slow-stream",
 * "ms":...,"stamp":true}`, see src/dev/fake-openrouter.ts), through a proxy or direct.
 *
 * The client is a plain TCP socket per stream with its own small HTTP/1.1 response parser (head,
 * chunked or content-length body), so what it counts is what the network delivered: every socket
 * 'data' event is one read, every HTTP chunk one write of the server (or one corked batch of them).
 * Frames are found by scanning bytes for the blank line that ends an SSE event; only the frames up
 * to the first token are JSON-parsed, the send stamp is read from the bytes. Nothing is converted
 * to strings per read, and all samples go to preallocated Float64Arrays: the load generator shares
 * a CPU with the upstream.
 *
 * Times are process.hrtime.bigint() (CLOCK_MONOTONIC), the same clock as the fake's stamps, so a
 * frame's transit (receive time - `x_sent_ns`) is measured across processes. A frame's receive
 * time is the time its read was handed to JavaScript: every frame of one read shares it.
 *
 * Limits: SSE events must end in "\n\n" and carry single-line `data:` (as OpenRouter and the fake
 * write them); the response must be 200 with chunked or content-length framing.
 */
import { connect, type Socket } from 'node:net';

/** A streaming chat request that matches the `the-match` rule of bench/rules.bench.yaml (with `x-user-tier: pro`). */
export const STREAM_BODY = JSON.stringify({
  model: 'auto',
  stream: true,
  messages: [{ role: 'user', content: 'Summarise the incident report in three bullet points.' }],
  metadata: { customer: { plan: 'enterprise', region: 'eu' } },
});

/** The request headers of a measured stream; `extra` is added last (it may replace any of them). */
export function streamHeaders(intervalMs: number, stamp: boolean, extra: Record<string, string> = {}): Record<string, string> {
  return {
    'content-type': 'application/json',
    authorization: 'Bearer bench',
    'x-user-tier': 'pro',
    'x-fake-fault': JSON.stringify({ type: 'slow-stream', ms: intervalMs, ...(stamp && { stamp: true }) }),
    ...extra,
  };
}

/** The bytes of one POST with `body` on a keep-alive connection. */
export function rawRequest(origin: string, path: string, headers: Record<string, string>, body: string): Buffer {
  const url = new URL(origin);
  const payload = Buffer.from(body, 'utf8');
  const lines = [`POST ${path} HTTP/1.1`, `host: ${url.host}`];
  for (const [name, value] of Object.entries(headers)) {
    const lower = name.toLowerCase();
    if (lower !== 'host' && lower !== 'content-length' && lower !== 'connection' && lower !== 'transfer-encoding') lines.push(`${lower}: ${value}`);
  }
  lines.push(`content-length: ${payload.length}`, 'connection: keep-alive', '', '');
  return Buffer.concat([Buffer.from(lines.join('\r\n'), 'latin1'), payload]);
}

export interface Percentiles {
  readonly p50: number;
  readonly p99: number;
  readonly max: number;
  /** Samples behind the figures. */
  readonly n: number;
}

export interface StreamStats {
  /** Concurrent streams (connections). */
  readonly streams: number;
  /** Requests started: streams x requestsPerStream, less those a failed connection never sent. */
  readonly requests: number;
  /** Requests that answered 200, sent `data: [DONE]` and ended their body. */
  readonly completed: number;
  /** Requests that failed (connect error, other status, closed early, timeout); see `errorSamples`. */
  readonly errors: number;
  readonly errorSamples: string[];
  /** Requests that saw `data: [DONE]`. */
  readonly done: number;
  /** Request written to the first byte of the response body, µs (per request, as all below). */
  readonly ttfbUs: Percentiles;
  /** Request written to the first frame whose choices[0].delta.content is non-empty, µs. */
  readonly firstTokenUs: Percentiles;
  /** Transit (receive - x_sent_ns) of each stream's first-token frame, µs: the first-token latency a proxy adds, without the upstream's timers. */
  readonly firstTokenTransitUs: Percentiles;
  /** Transit of every stamped frame, µs. */
  readonly transitUs: Percentiles;
  /** Gap between consecutive stamped frames of a stream as received, µs (0 for frames of one read). */
  readonly gapUs: Percentiles;
  /** transit_i - transit_{i-1} of consecutive stamped frames of a stream, µs: what the path added to (or took from) each gap the upstream made. */
  readonly gapJitterUs: Percentiles;
  /** |transit_i - transit_{i-1}|, µs. */
  readonly gapJitterAbsUs: Percentiles;
  /** `data:` frames received (JSON and [DONE]): with no proxy in between, what the upstream sent. */
  readonly frames: number;
  /** Data frames without a stamp (other than [DONE]); 0 against the stamping fake. */
  readonly unstampedFrames: number;
  /** SSE comments received (`: OPENROUTER PROCESSING`). */
  readonly comments: number;
  /** Socket reads that carried body bytes. */
  readonly reads: number;
  /** Reads in which more than one SSE event (frame or comment) ended. */
  readonly coalescedReads: number;
  /** HTTP body chunks (chunked framing): one per write of the server, or per corked batch of writes. */
  readonly httpChunks: number;
  /** HTTP chunks in which more than one SSE event ended: events merged by the server itself, not by TCP. */
  readonly coalescedChunks: number;
  /** First request written to the last request settled, ms. */
  readonly wallMs: number;
}

export interface MeasureStreamsOptions {
  /** Concurrent streams, each on its own keep-alive connection. */
  readonly streams: number;
  /** Requests each connection makes one after the other (more samples at low concurrency); default 1. */
  readonly requestsPerStream?: number;
  /** The upstream's gap between events (the fake's slow-stream `ms`). */
  readonly intervalMs: number;
  /** Added to (or replacing) the default headers, see streamHeaders(). */
  readonly headers?: Record<string, string>;
  /** Request body; STREAM_BODY by default. */
  readonly body?: string;
  /**
   * Requests are started evenly over this many ms (after every connection is open), so that the
   * streams' events interleave as independent streams' would, instead of arriving in lockstep
   * bursts of `streams` events; 0 starts them all at once. Default: intervalMs.
   */
  readonly spreadMs?: number;
  /** Fails the streams still running after this long; default 60 s + 100 intervals per request. */
  readonly timeoutMs?: number;
}

const LF = 0x0a;
const CR = 0x0d;
const COLON = 0x3a;
const QUOTE = 0x22;
const DATA = Buffer.from('data:', 'latin1');
const DONE = Buffer.from('[DONE]', 'latin1');
const STAMP = Buffer.from('"x_sent_ns":"', 'latin1');
const HEAD_END = Buffer.from('\r\n\r\n', 'latin1');
/** An event larger than this is a broken stream, not a chat chunk. */
const MAX_EVENT_BYTES = 1 << 20;

/** hrtime (ns) as Numbers relative to a base, which keeps every difference exact. */
export class Clock {
  private readonly base = process.hrtime.bigint();
  private readonly baseSec = Number(this.base / 1_000_000_000n);
  private readonly baseNs = Number(this.base % 1_000_000_000n);

  /** ns since the base. */
  now(): number {
    return Number(process.hrtime.bigint() - this.base);
  }

  /** The decimal hrtime in buf[from, to) (digits only), relative to the base, without a BigInt. */
  parse(buf: Buffer, from: number, to: number): number {
    const split = Math.max(from, to - 9);
    let sec = 0;
    for (let i = from; i < split; i++) sec = sec * 10 + (buf[i]! - 48);
    let ns = 0;
    for (let i = split; i < to; i++) ns = ns * 10 + (buf[i]! - 48);
    return (sec - this.baseSec) * 1e9 + (ns - this.baseNs);
  }
}

/** A growable Float64Array. */
export class Samples {
  private data: Float64Array;
  length = 0;

  constructor(capacity = 1024) {
    this.data = new Float64Array(Math.max(16, capacity));
  }

  push(v: number): void {
    if (this.length === this.data.length) {
      const next = new Float64Array(this.data.length * 2);
      next.set(this.data);
      this.data = next;
    }
    this.data[this.length++] = v;
  }

  /** p50, p99 and max, in µs for samples in ns (the nearest-rank method of proxy.bench.ts). */
  percentilesUs(abs = false): Percentiles {
    const n = this.length;
    if (n === 0) return { p50: NaN, p99: NaN, max: NaN, n };
    const sorted = this.data.slice(0, n);
    if (abs) for (let i = 0; i < n; i++) sorted[i] = Math.abs(sorted[i]!);
    sorted.sort();
    const at = (p: number): number => sorted[Math.min(n - 1, Math.floor(p * n))]! / 1000;
    return { p50: at(0.5), p99: at(0.99), max: sorted[n - 1]! / 1000, n };
  }
}

/** What measureStreams collects across all streams; absent (memory runs), only the stream states are kept. */
export class StreamRecorder {
  readonly ttfb: Samples;
  readonly firstToken: Samples;
  readonly firstTokenTransit: Samples;
  readonly transit: Samples;
  readonly gap: Samples;
  readonly jitter: Samples;
  frames = 0;
  unstampedFrames = 0;
  comments = 0;
  reads = 0;
  coalescedReads = 0;
  httpChunks = 0;
  coalescedChunks = 0;

  constructor(streams: number) {
    this.ttfb = new Samples(streams);
    this.firstToken = new Samples(streams);
    this.firstTokenTransit = new Samples(streams);
    this.transit = new Samples(streams * 16);
    this.gap = new Samples(streams * 16);
    this.jitter = new Samples(streams * 16);
  }
}

export interface RawStreamHooks {
  /** The connection is open. */
  onConnect?(stream: RawSseStream): void;
  /** The first byte of the response body arrived. */
  onFirstByte?(stream: RawSseStream): void;
  /** The first `data:` frame arrived. */
  onFirstFrame?(stream: RawSseStream): void;
  /** The stream is over: `stream.error` is undefined when the body ended normally. Called once. */
  onSettled(stream: RawSseStream): void;
}

const enum Phase { Head, ChunkSize, ChunkExt, ChunkSizeLf, ChunkData, ChunkDataCr, ChunkDataLf, Trailer, Length, Ended }

/**
 * Streaming requests on one connection, one after the other, each parsed as it arrives. The
 * connection stays open after a body ended (keep-alive) for the next `start()`, until `destroy()`.
 * The fields describe the current (or last) request.
 */
export class RawSseStream {
  readonly socket: Socket;
  /** Requests started on this connection. */
  requests = 0;
  /** Clock times (ns since the clock's base); -1 until known. */
  startedAt = -1;
  firstByteAt = -1;
  firstFrameAt = -1;
  firstTokenAt = -1;
  status = 0;
  /** `data: [DONE]` was seen. */
  done = false;
  /** The body ended (and the stream did not fail). */
  ended = false;
  error: string | undefined = undefined;
  /** The connection was established (it may have closed since). */
  connected = false;
  closed = false;
  private settled = false;
  private phase = Phase.Head;
  private head: Buffer | undefined = undefined;
  private remaining = 0;
  private trailerLineEmpty = true;
  private carry: Buffer | undefined = undefined;
  private eventsInRead = 0;
  private eventsInChunk = 0;
  private lastRecv = -1;
  private lastTransit = NaN;

  constructor(
    host: string, port: number,
    private readonly request: Buffer,
    private readonly clock: Clock,
    private readonly rec: StreamRecorder | undefined,
    private readonly hooks: RawStreamHooks,
  ) {
    this.socket = connect({ host, port, noDelay: true });
    this.socket.once('connect', () => {
      this.connected = true;
      hooks.onConnect?.(this);
    });
    this.socket.on('data', (buf: Buffer) => this.onData(buf));
    this.socket.on('error', (err: Error) => this.fail((err as { code?: string }).code ?? err.message));
    this.socket.once('end', () => this.fail('connection ended by the server before the body'));
    this.socket.once('close', () => {
      this.closed = true;
      this.fail('connection closed before the body ended');
    });
  }

  /**
   * Writes the request (queued by the socket if it is still connecting) and starts the clock; again
   * after a request ended well, on the same connection. A failed stream's connection is gone.
   */
  start(): void {
    if (this.requests > 0) {
      if (this.error !== undefined || !this.ended) throw new Error('start() again before the previous request ended well');
      this.firstByteAt = this.firstFrameAt = this.firstTokenAt = this.lastRecv = -1;
      this.lastTransit = NaN;
      this.status = 0;
      this.done = this.ended = this.settled = false;
      this.phase = Phase.Head;
      this.remaining = 0;
    }
    this.requests++;
    this.startedAt = this.clock.now();
    this.socket.write(this.request);
  }

  destroy(): void {
    this.socket.destroy();
  }

  /** Fails the stream now (unless it is over) with `reason`, and closes its connection. */
  abort(reason: string): void {
    this.fail(reason);
  }

  private fail(reason: string): void {
    if (this.settled) return;
    this.settled = true;
    this.error = reason;
    this.socket.destroy();
    this.hooks.onSettled(this);
  }

  private finish(): void {
    this.phase = Phase.Ended;
    this.ended = true;
    if (this.settled) return;
    this.settled = true;
    if (this.carry !== undefined) this.error = 'body ended inside an SSE event';
    else if (!this.done) this.error = 'body ended without data: [DONE]';
    this.hooks.onSettled(this);
  }

  private onData(buf: Buffer): void {
    if (this.settled) return;
    const now = this.clock.now();
    let i = 0;
    if (this.phase === Phase.Head) {
      i = this.readHead(buf);
      if (i < 0 || i >= buf.length || this.settled) return;
    }
    if (this.phase === Phase.Ended) return;
    if (this.firstByteAt < 0) {
      this.firstByteAt = now;
      this.rec?.ttfb.push(now - this.startedAt);
      this.hooks.onFirstByte?.(this);
    }
    this.eventsInRead = 0;
    this.readBody(buf, i, now);
    const rec = this.rec;
    if (rec) {
      rec.reads++;
      if (this.eventsInRead > 1) rec.coalescedReads++;
    }
  }

  /** Collects the response head; returns where the body starts in `buf`, or -1. */
  private readHead(buf: Buffer): number {
    let data = buf;
    let offset = 0;
    if (this.head !== undefined) {
      offset = this.head.length;
      data = Buffer.concat([this.head, buf]);
    }
    const end = data.indexOf(HEAD_END);
    if (end < 0) {
      if (data.length > 64 * 1024) this.fail('response head too large');
      else this.head = data === buf ? Buffer.from(buf) : data;
      return -1;
    }
    this.head = undefined;
    const text = data.toString('latin1', 0, end).toLowerCase();
    this.status = Number(text.slice(9, 12));
    if (this.status !== 200) {
      this.fail(`status ${this.status}`);
      return -1;
    }
    if (/\r\ntransfer-encoding:[^\r]*chunked/.test(text)) {
      this.phase = Phase.ChunkSize;
      this.remaining = 0;
    } else {
      const length = /\r\ncontent-length:\s*(\d+)/.exec(text);
      if (!length) {
        this.fail('response has neither chunked nor content-length framing');
        return -1;
      }
      this.phase = Phase.Length;
      this.remaining = Number(length[1]);
      if (this.remaining === 0) this.finish();
    }
    return end + 4 - offset;
  }

  private readBody(buf: Buffer, from: number, now: number): void {
    const n = buf.length;
    let i = from;
    while (i < n && !this.settled) {
      switch (this.phase) {
        case Phase.Length: {
          const take = Math.min(this.remaining, n - i);
          this.feed(buf, i, i + take, now);
          i += take;
          this.remaining -= take;
          if (this.remaining === 0) this.finish();
          break;
        }
        case Phase.ChunkSize: {
          const c = buf[i++]!;
          const digit = c >= 48 && c <= 57 ? c - 48 : c >= 97 && c <= 102 ? c - 87 : c >= 65 && c <= 70 ? c - 55 : -1;
          if (digit >= 0) this.remaining = this.remaining * 16 + digit;
          else if (c === CR) this.phase = Phase.ChunkSizeLf;
          else if (c === 0x3b /* ; */ || c === 0x20 || c === 0x09) this.phase = Phase.ChunkExt;
          else this.fail('bad chunk size');
          break;
        }
        case Phase.ChunkExt:
          if (buf[i++] === CR) this.phase = Phase.ChunkSizeLf;
          break;
        case Phase.ChunkSizeLf:
          if (buf[i++] !== LF) {
            this.fail('bad chunk size line');
          } else if (this.remaining === 0) {
            this.phase = Phase.Trailer;
            this.trailerLineEmpty = true;
          } else {
            this.phase = Phase.ChunkData;
            this.eventsInChunk = 0;
            if (this.rec) this.rec.httpChunks++;
          }
          break;
        case Phase.ChunkData: {
          const take = Math.min(this.remaining, n - i);
          this.feed(buf, i, i + take, now);
          i += take;
          this.remaining -= take;
          if (this.remaining === 0) {
            this.phase = Phase.ChunkDataCr;
            if (this.rec && this.eventsInChunk > 1) this.rec.coalescedChunks++;
          }
          break;
        }
        case Phase.ChunkDataCr:
          if (buf[i++] === CR) this.phase = Phase.ChunkDataLf;
          else this.fail('chunk data not followed by CRLF');
          break;
        case Phase.ChunkDataLf:
          if (buf[i++] === LF) this.phase = Phase.ChunkSize;
          else this.fail('chunk data not followed by CRLF');
          break;
        case Phase.Trailer: {
          const c = buf[i++]!;
          if (c === LF) {
            if (this.trailerLineEmpty) this.finish();
            this.trailerLineEmpty = true;
          } else if (c !== CR) {
            this.trailerLineEmpty = false;
          }
          break;
        }
        default:
          // Bytes after the end of the body: nothing this client asked for.
          this.fail('bytes after the end of the response');
      }
    }
  }

  /** Splits body bytes buf[from, to) into SSE events (each ending in a blank line). */
  private feed(buf: Buffer, from: number, to: number, now: number): void {
    let start = from;
    if (this.carry !== undefined) {
      const carry = this.carry;
      const end = carry[carry.length - 1] === LF && buf[from] === LF ? from : blankLineEnd(buf, from, to);
      if (end < 0) {
        if (carry.length + to - from > MAX_EVENT_BYTES) this.fail('SSE event too large');
        else this.carry = Buffer.concat([carry, buf.subarray(from, to)]);
        return;
      }
      this.carry = undefined;
      const event = Buffer.concat([carry, buf.subarray(from, end + 1)]);
      this.onEvent(event, 0, event.length, now);
      start = end + 1;
    }
    for (;;) {
      const end = blankLineEnd(buf, start, to);
      if (end < 0) break;
      this.onEvent(buf, start, end + 1, now);
      start = end + 1;
    }
    if (start < to) this.carry = Buffer.from(buf.subarray(start, to));
  }

  /** One SSE event, buf[start, end) with its blank line. */
  private onEvent(buf: Buffer, start: number, end: number, now: number): void {
    this.eventsInRead++;
    this.eventsInChunk++;
    const rec = this.rec;
    if (buf[start] === COLON) {
      if (rec) rec.comments++;
      return;
    }
    if (end - start < DATA.length + 2 || buf.compare(DATA, 0, DATA.length, start, start + DATA.length) !== 0) return;
    if (rec) rec.frames++;
    if (this.firstFrameAt < 0) {
      this.firstFrameAt = now;
      this.hooks.onFirstFrame?.(this);
    }
    let payload = start + DATA.length;
    if (buf[payload] === 0x20) payload++;
    if (end - payload >= DONE.length + 2 && buf.compare(DONE, 0, DONE.length, payload, payload + DONE.length) === 0) {
      this.done = true;
      return;
    }
    if (!rec) return;
    if (this.lastRecv >= 0) rec.gap.push(now - this.lastRecv);
    this.lastRecv = now;
    let transit = NaN;
    const key = buf.lastIndexOf(STAMP, end - 1);
    if (key >= payload) {
      const digits = key + STAMP.length;
      const close = buf.indexOf(QUOTE, digits);
      if (close > digits && close < end) {
        transit = now - this.clock.parse(buf, digits, close);
        rec.transit.push(transit);
        if (!Number.isNaN(this.lastTransit)) rec.jitter.push(transit - this.lastTransit);
        this.lastTransit = transit;
      }
    }
    if (Number.isNaN(transit)) rec.unstampedFrames++;
    if (this.firstTokenAt < 0 && carriesContent(buf.toString('utf8', payload, end))) {
      this.firstTokenAt = now;
      rec.firstToken.push(now - this.startedAt);
      if (!Number.isNaN(transit)) rec.firstTokenTransit.push(transit);
    }
  }
}

/** Index of the second LF of the first "\n\n" in buf[from, to), or -1. */
function blankLineEnd(buf: Buffer, from: number, to: number): number {
  let i = from;
  while (i < to - 1) {
    const lf = buf.indexOf(LF, i);
    if (lf < 0 || lf >= to - 1) return -1;
    if (buf[lf + 1] === LF) return lf + 1;
    i = lf + 1;
  }
  return -1;
}

function carriesContent(json: string): boolean {
  try {
    const chunk = JSON.parse(json) as { choices?: { delta?: { content?: unknown } }[] };
    const content = chunk.choices?.[0]?.delta?.content;
    return typeof content === 'string' && content.length > 0;
  } catch {
    return false;
  }
}

/**
 * Opens `streams` connections, then starts one streaming chat completion on each (spread over
 * `spreadMs`), reads every stream to its end, closes the connections and returns the figures.
 * Failures are counted, not thrown.
 */
export async function measureStreams(origin: string, path: string, opts: MeasureStreamsOptions): Promise<StreamStats> {
  const { hostname, port } = new URL(origin);
  const request = rawRequest(origin, path, streamHeaders(opts.intervalMs, true, opts.headers), opts.body ?? STREAM_BODY);
  const clock = new Clock();
  const rec = new StreamRecorder(opts.streams);
  const spreadMs = opts.spreadMs ?? opts.intervalMs;
  const perStream = Math.max(1, opts.requestsPerStream ?? 1);
  const timeoutMs = opts.timeoutMs ?? 60_000 + 100 * opts.intervalMs * perStream;
  const streams: RawSseStream[] = [];
  /** Streams connected, or failed before they could. */
  let connectDone = 0;
  /** Streams done with all their requests (or failed). */
  let settled = 0;
  let requests = 0;
  let completed = 0;
  let done = 0;
  const errors: string[] = [];
  let onConnected!: () => void;
  let onAllSettled!: () => void;
  const allConnected = new Promise<void>((r) => (onConnected = r));
  const allSettled = new Promise<void>((r) => (onAllSettled = r));
  const hooks: RawStreamHooks = {
    onConnect() {
      if (++connectDone === opts.streams) onConnected();
    },
    onSettled(stream) {
      if (!stream.connected && ++connectDone === opts.streams) onConnected();
      if (stream.requests > 0) requests++;
      if (stream.done) done++;
      if (stream.error !== undefined) {
        errors.push(stream.error);
      } else {
        completed++;
        // The next request on the same connection, at once (once the read that ended this one is done).
        if (stream.requests < perStream && !timedOut) {
          queueMicrotask(() => stream.start());
          return;
        }
      }
      if (++settled === opts.streams) onAllSettled();
    },
  };
  for (let i = 0; i < opts.streams; i++) streams.push(new RawSseStream(hostname, Number(port), request, clock, rec, hooks));
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    for (const s of streams) s.abort(`timeout after ${timeoutMs} ms`);
  }, timeoutMs);
  let startedAt = 0;
  try {
    await allConnected;
    startedAt = clock.now();
    const live = streams.filter((s) => s.error === undefined);
    if (spreadMs <= 0 || live.length < 2) {
      for (const s of live) s.start();
    } else {
      live.forEach((s, i) => setTimeout(() => s.error === undefined && s.start(), Math.round((i * spreadMs) / live.length)));
    }
    await allSettled;
  } finally {
    clearTimeout(timer);
  }
  const wallMs = (clock.now() - startedAt) / 1e6;
  await closeAll(streams);

  return {
    streams: opts.streams,
    requests,
    completed,
    errors: errors.length,
    errorSamples: [...new Set(errors)].slice(0, 5),
    done,
    ttfbUs: rec.ttfb.percentilesUs(),
    firstTokenUs: rec.firstToken.percentilesUs(),
    firstTokenTransitUs: rec.firstTokenTransit.percentilesUs(),
    transitUs: rec.transit.percentilesUs(),
    gapUs: rec.gap.percentilesUs(),
    gapJitterUs: rec.jitter.percentilesUs(),
    gapJitterAbsUs: rec.jitter.percentilesUs(true),
    frames: rec.frames,
    unstampedFrames: rec.unstampedFrames,
    comments: rec.comments,
    reads: rec.reads,
    coalescedReads: rec.coalescedReads,
    httpChunks: rec.httpChunks,
    coalescedChunks: rec.coalescedChunks,
    wallMs,
  };
}

/** Destroys every stream's connection and resolves when all of them have closed. */
export async function closeAll(streams: readonly RawSseStream[]): Promise<void> {
  await Promise.all(streams.map((s) => {
    if (s.closed) return undefined;
    return new Promise<void>((resolve) => {
      s.socket.once('close', () => resolve());
      s.destroy();
    });
  }));
}
