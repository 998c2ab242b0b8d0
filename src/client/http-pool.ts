// A small HTTP/1.1 client over node:http for the processes that run on every node (the agent and
// the peer transport it shares with seeds). undici, which the rest of Shoal uses, costs an agent
// about 20 MB of resident memory (its WebAssembly parser and buffers) against 2 MB for node:http,
// and an agent must stay under 100 MB. It keeps what the agent relied on: keep-alive pools per
// origin, connect / headers / body timeouts with stable error codes, abort signals, and bodies
// that can be iterated, read as text or JSON, or dropped.
import { Agent, request as httpRequest, type AgentOptions, type IncomingHttpHeaders, type IncomingMessage } from 'node:http';
import type { Readable } from 'node:stream';

export type HttpClientErrorCode = 'CONNECT_TIMEOUT' | 'HEADERS_TIMEOUT' | 'BODY_TIMEOUT';

export class HttpClientError extends Error {
  constructor(
    readonly code: HttpClientErrorCode,
    message: string,
  ) {
    super(message);
    this.name = 'HttpClientError';
  }
}

export interface HttpPoolOptions {
  /** Connections kept per origin (host:port); requests beyond them queue. Default 6. */
  connections?: number;
  /** Give up on a TCP connect after this long. Default 3 000 ms. */
  connectTimeoutMs?: number;
}

export interface HttpRequestOptions {
  method?: string;
  headers?: Record<string, string>;
  /** A string or buffer, or a stream piped as the request body. */
  body?: string | Buffer | Readable;
  signal?: AbortSignal;
  /**
   * From sending the request (on a connected socket: a wait for a free connection or for the
   * connect does not count) until the response's status line and headers. Default 30 000 ms.
   */
  headersTimeout?: number;
  /** Longest silence between two pieces of the body. Default 300 000 ms. */
  bodyTimeout?: number;
}

/** The response body: a Readable (iterate it, pipe it) with undici-style helpers. */
export interface ResponseBody extends IncomingMessage {
  text(): Promise<string>;
  json(): Promise<unknown>;
  /** Reads and drops the rest, so the connection can be reused. */
  dump(): void;
}

export interface HttpResponse {
  statusCode: number;
  headers: IncomingHttpHeaders;
  body: ResponseBody;
}

export class HttpPool {
  readonly agent: Agent;
  private readonly connectTimeoutMs: number;

  constructor(o: HttpPoolOptions = {}) {
    // Idle connections close when the server's Keep-Alive hint says so (node:http honours it).
    // readableHighWaterMark 1: a socket that coalescedChunks pauses stops reading from the kernel
    // after one more read (at the default 16 KiB it goes on reading packet by packet until 16 KiB
    // are buffered, one event-loop wake-up each). A flowing socket is not affected: it never buffers.
    this.agent = new Agent({ keepAlive: true, maxSockets: o.connections ?? 6, scheduling: 'lifo', readableHighWaterMark: 1 } as AgentOptions);
    this.connectTimeoutMs = o.connectTimeoutMs ?? 3000;
  }

  /** Changes the connections kept per origin; later requests (and queued ones, as connections free up) follow it. */
  setConnections(n: number): void {
    this.agent.maxSockets = Math.max(1, Math.floor(n));
  }

  request(url: string, o: HttpRequestOptions = {}): Promise<HttpResponse> {
    const headersTimeout = o.headersTimeout ?? 30_000;
    const bodyTimeout = o.bodyTimeout ?? 300_000;
    return new Promise<HttpResponse>((resolve, reject) => {
      const headers: Record<string, string | number> = { ...o.headers };
      if (typeof o.body === 'string' || Buffer.isBuffer(o.body)) headers['content-length'] = Buffer.byteLength(o.body);
      const req = httpRequest(url, { method: o.method ?? 'GET', headers, agent: this.agent, signal: o.signal });
      let connectTimer: NodeJS.Timeout | undefined;
      let headersTimer: NodeJS.Timeout | undefined;
      let done = false;
      const clearTimers = () => {
        done = true;
        clearTimeout(headersTimer);
        clearTimeout(connectTimer);
      };
      // The headers clock starts once the request is on a connected socket, not when it is
      // made: a request queued behind busy connections (more than `connections` to one origin,
      // e.g. an agent pulling several layers from the same parent, each with a long-polled
      // bitfield) would otherwise blame the server for time it spent waiting here.
      const startHeadersClock = () => {
        if (done || headersTimer) return;
        headersTimer = setTimeout(() => req.destroy(new HttpClientError('HEADERS_TIMEOUT', `no response headers from ${url} within ${headersTimeout} ms`)), headersTimeout);
      };
      req.on('socket', (socket) => {
        if (!socket.connecting) return startHeadersClock();
        connectTimer = setTimeout(() => req.destroy(new HttpClientError('CONNECT_TIMEOUT', `connecting to ${url} took over ${this.connectTimeoutMs} ms`)), this.connectTimeoutMs);
        socket.once('connect', () => {
          clearTimeout(connectTimer);
          startHeadersClock();
        });
      });
      req.once('error', (err) => {
        clearTimers();
        reject(err);
      });
      req.once('close', clearTimers);
      req.once('response', (res: IncomingMessage) => {
        clearTimers();
        res.setTimeout(bodyTimeout, () => res.destroy(new HttpClientError('BODY_TIMEOUT', `the body from ${url} stalled for ${bodyTimeout} ms`)));
        resolve({ statusCode: res.statusCode ?? 0, headers: res.headers, body: withHelpers(res) });
      });
      if (o.body === undefined) req.end();
      else if (typeof o.body === 'string' || Buffer.isBuffer(o.body)) req.end(o.body);
      else {
        o.body.once('error', (err) => req.destroy(err));
        o.body.pipe(req);
      }
    });
  }

  async close(): Promise<void> {
    this.agent.destroy();
  }
}

export interface CoalescedReadOptions {
  /** A chunk smaller than this makes the reader wait before the next read. Default 64 KiB. */
  minChunkBytes?: number;
  /** Shortest hold after a short chunk. Default 20 ms. */
  waitMs?: number;
  /** Longest hold, for the slowest flows. Default 100 ms. */
  maxWaitMs?: number;
}

/**
 * Iterates a response body, leaving the socket unread for a while after every short chunk so that
 * the kernel gathers what arrives meanwhile into one read. Why: a paced flow (a tc-shaped link, a
 * slow parent) delivers a packet or two per socket read, and each read costs a pass through the
 * HTTP parser, the stream, the consumer's await and its hash and write: at 6-20 Mbit/s shared by
 * eight pieces in flight that was most of an agent's CPU. The hold is sized to the flow's rate so a
 * read gathers about half of minChunk: an eighth of 6 Mbit/s waits 100 ms (9 KB a read, not 1.4),
 * a 20 Mbit/s flow 20 ms. A fast flow fills 64 KiB reads and is never held. The bytes wait in the
 * socket's receive buffer, which TCP sizes (128 KiB at first) for far more than one hold.
 */
export async function* coalescedChunks(body: IncomingMessage, o: CoalescedReadOptions = {}): AsyncGenerator<Buffer> {
  const minChunk = o.minChunkBytes ?? 64 * 1024;
  const minWait = o.waitMs ?? 20;
  const maxWait = Math.max(minWait, o.maxWaitMs ?? 100);
  const socket = body.socket as HoldableSocket | null;
  const started = performance.now();
  let received = 0;
  let held = false;
  const release = () => {
    held = false;
    socket!._paused = false;
    socket!.resume();
  };
  try {
    for await (const chunk of body as AsyncIterable<Buffer>) {
      received += chunk.length;
      yield chunk;
      if (chunk.length < minChunk && minWait > 0 && !body.complete && socket && !socket.destroyed) {
        // _paused keeps node:http's IncomingMessage._read from resuming the socket as soon as the
        // body's own buffer runs low (its readStart() checks this flag); without it the hold is
        // undone at once and the socket keeps waking the loop for every packet.
        socket._paused = true;
        socket.pause();
        held = true;
        await readTick(holdMs(minChunk / 2, received, performance.now() - started, minWait, maxWait));
        // Resumed by hand: the stream's own read() does not call _read again while a read is pending.
        release();
      }
    }
  } finally {
    // A reused keep-alive socket must not stay paused, or the next response on it never arrives.
    if (held && socket && !socket.destroyed) release();
  }
}

/**
 * How long to hold a flow that has moved `bytes` in `elapsedMs` so the next read gathers about
 * `target` bytes, within [minMs, maxMs]; rounded up to a power-of-two multiple of minMs so that
 * flows of similar speed share a tick (see readTick).
 */
export function holdMs(target: number, bytes: number, elapsedMs: number, minMs: number, maxMs: number): number {
  if (bytes <= 0 || elapsedMs <= 0) return minMs;
  const want = (target / bytes) * elapsedMs;
  let ms = minMs;
  while (ms < want && ms < maxMs) ms *= 2;
  return Math.min(ms, maxMs);
}

/** node:http's own flag for a socket paused on purpose (see coalescedChunks). */
type HoldableSocket = NonNullable<IncomingMessage['socket']> & { _paused?: boolean };

/**
 * The end of the current read tick of `ms`: every body paused within one tick resumes at its end,
 * on one shared timer. With a timer per body, eight paced pieces in flight could wake the event
 * loop 400 times a second for timers alone; sharing one, the loop wakes once per tick and finds
 * every held socket's bytes waiting.
 */
function readTick(ms: number): Promise<void> {
  let tick = ticks.get(ms);
  if (!tick) {
    let release!: () => void;
    const done = new Promise<void>((resolve) => (release = resolve));
    tick = done;
    ticks.set(ms, tick);
    setTimeout(() => {
      ticks.delete(ms);
      release();
    }, ms);
  }
  return tick;
}

const ticks = new Map<number, Promise<void>>();

function withHelpers(res: IncomingMessage): ResponseBody {
  const body = res as ResponseBody;
  body.text = async () => {
    const chunks: Buffer[] = [];
    for await (const c of res) chunks.push(c as Buffer);
    return Buffer.concat(chunks).toString('utf8');
  };
  body.json = async () => JSON.parse(await body.text());
  body.dump = () => {
    res.on('error', () => undefined);
    res.resume();
  };
  return body;
}
