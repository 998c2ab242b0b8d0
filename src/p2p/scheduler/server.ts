// The scheduler's HTTP API (node:http, JSON): announce, heartbeat, publish pieces, task status,
// plus /healthz and /metrics. A small ordered route table that other features (preheat) extend
// by passing `routes`; every /scheduler route needs the cluster token when one is configured.
import { createHash, timingSafeEqual } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Logger } from 'pino';
import type { Registry } from 'prom-client';
import type { z } from 'zod';
import type { Digest } from '../../oci/digest.js';
import type { AnnounceResponse } from '../protocol.js';
import type { SchedulerCore } from './core.js';
import { SchedulerError } from './errors.js';
import { createSchedulerMetrics, type SchedulerMetrics } from './metrics.js';
import { describeIssues, pieceManifestSchema, publishPiecesSchema } from './schemas.js';
import { announceParser, announceReplyJson, heartbeatParser, type BodyParser } from './codec.js';
import { createSeedFetcher } from './seed-fetch.js';

export interface RouteContext {
  req: IncomingMessage;
  res: ServerResponse;
  /** Decoded regexp groups of the route's pattern, in order. */
  params: string[];
  core: SchedulerCore;
  log: Logger;
  now(): number;
  /** Reads the body (capped), parses JSON and validates it; throws a 400/413 SchedulerError. */
  body<T>(schema: z.ZodType<T, unknown> | BodyParser<T>): Promise<T>;
  json(status: number, body: unknown): void;
}

export interface SchedulerRoute {
  /** Metric label, e.g. "announce". */
  name: string;
  method: 'GET' | 'POST' | 'PUT' | 'DELETE';
  /** Matched against the path (no query); capture groups become `params`. */
  pattern: RegExp;
  /** Requires the cluster token when one is configured (default true). */
  auth?: boolean;
  handle(ctx: RouteContext): Promise<void> | void;
}

export interface SchedulerServerOptions {
  core: SchedulerCore;
  log: Logger;
  clusterToken?: string;
  /** Registry to add the scheduler metrics to (a new one with process metrics by default). */
  metrics?: Registry;
  /** Default registry for seed fetches (SeedFetchRequest.registry). */
  registryUrl?: string;
  /** Extra routes (e.g. preheat), tried after the built-in ones. */
  routes?: SchedulerRoute[];
  maxBodyBytes?: number;
  /** How often core.expire runs (default 1 s; 0 disables the timer). */
  expireIntervalMs?: number;
  /** Clock for the core (ms, monotonic). */
  now?: () => number;
  /** Timeout for the seed's answer to a fetch request (default 10 s). */
  seedFetchTimeoutMs?: number;
}

export interface SchedulerServer {
  /** The request listener; mount it on any node:http server. */
  handler: (req: IncomingMessage, res: ServerResponse) => void;
  /** A server using `handler`, not yet listening. */
  server: Server;
  routes: readonly SchedulerRoute[];
  metrics: SchedulerMetrics;
  /** Listens on host:port (port 0: any) and resolves with the base URL. */
  listen(port: number, host?: string): Promise<string>;
  /** Stops the expiry timer and closes the server (and its idle keep-alive connections). */
  close(): Promise<void>;
}

const MiB = 1024 * 1024;

/** The scheduler endpoints of protocol.ts (minus preheat, which is added through `routes`). */
export function schedulerRoutes(): SchedulerRoute[] {
  const sendAnnounce = (ctx: RouteContext, r: AnnounceResponse) => sendRaw(ctx.res, 200, announceReplyJson(r));
  return [
    {
      name: 'announce',
      method: 'POST',
      pattern: /^\/scheduler\/v1\/announce$/,
      async handle(ctx) {
        const body = await ctx.body(announceParser);
        sendAnnounce(ctx, ctx.core.announce(body, ctx.now()));
      },
    },
    {
      name: 'heartbeat',
      method: 'POST',
      pattern: /^\/scheduler\/v1\/heartbeat$/,
      async handle(ctx) {
        const body = await ctx.body(heartbeatParser);
        ctx.json(200, ctx.core.heartbeat(body, ctx.now()));
      },
    },
    {
      name: 'pieces',
      method: 'POST',
      pattern: /^\/scheduler\/v1\/tasks\/([^/]+)\/pieces$/,
      async handle(ctx) {
        const digest = pathDigest(ctx.params[0]!);
        const { peerId, ...manifest } = await ctx.body(publishPiecesSchema);
        if (manifest.digest !== digest) throw new SchedulerError('BAD_REQUEST', `body digest ${manifest.digest} does not match the path's ${digest}`);
        // The publishing seed names itself; the cluster token is what makes that claim trusted.
        // Unnamed, it is taken to come from a live seed that holds the blob (seeds heartbeat their
        // holdings right before publishing); with no such seed it is refused as NOT_A_SEED.
        const seedId = peerId ?? header(ctx.req, 'x-shoal-peer-id') ?? ctx.core.publisherFor(digest, ctx.now()) ?? '(unnamed)';
        ctx.core.publishPieces(manifest, seedId, ctx.now());
        ctx.json(200, { digest, pieces: manifest.pieceDigests.length });
      },
    },
    {
      name: 'task',
      method: 'GET',
      pattern: /^\/scheduler\/v1\/tasks\/([^/]+)$/,
      handle(ctx) {
        const digest = pathDigest(ctx.params[0]!);
        const status = ctx.core.taskStatus(digest, ctx.now());
        if (!status) throw new SchedulerError('TASK_UNKNOWN', `no peer or seed has announced ${digest}`);
        ctx.json(200, status);
      },
    },
  ];
}

export function createSchedulerServer(opts: SchedulerServerOptions): SchedulerServer {
  const { core, log } = opts;
  const now = opts.now ?? (() => performance.now());
  const maxBody = opts.maxBodyBytes ?? MiB;
  const metrics = createSchedulerMetrics(core, opts.metrics);
  const tokenHash = opts.clusterToken ? sha256(opts.clusterToken) : undefined;

  core.setSeedFetchHandler(
    createSeedFetcher({
      log,
      ...(opts.clusterToken ? { clusterToken: opts.clusterToken } : {}),
      ...(opts.registryUrl ? { registryUrl: opts.registryUrl } : {}),
      ...(opts.seedFetchTimeoutMs ? { timeoutMs: opts.seedFetchTimeoutMs } : {}),
      onFailure: (seed, req) => core.seedFetchFailed(req.digest, seed.id, now()),
    }),
  );

  const routes: SchedulerRoute[] = [
    { name: 'healthz', method: 'GET', pattern: /^\/healthz$/, auth: false, handle: (ctx) => sendRaw(ctx.res, 200, 'ok\n', 'text/plain') },
    {
      name: 'metrics',
      method: 'GET',
      pattern: /^\/metrics$/,
      auth: false,
      async handle(ctx) {
        sendRaw(ctx.res, 200, await metrics.registry.metrics(), metrics.registry.contentType);
      },
    },
    ...schedulerRoutes(),
    ...(opts.routes ?? []),
  ];

  // prom-client hashes label objects on every call; keep one child per label set instead.
  const counters = new Map<string, { inc(): void }>();
  const hists = new Map<string, { observe(v: number): void }>();
  const record = (route: string, method: string, status: number, seconds: number) => {
    const ck = `${route} ${method} ${status}`;
    let c = counters.get(ck);
    if (!c) counters.set(ck, (c = metrics.requests.labels(route, method, String(status))));
    c.inc();
    let h = hists.get(route);
    if (!h) hists.set(route, (h = metrics.duration.labels(route)));
    h.observe(seconds);
  };

  const handler = (req: IncomingMessage, res: ServerResponse) => {
    const started = process.hrtime.bigint();
    const rawUrl = req.url ?? '/';
    const q = rawUrl.indexOf('?');
    const path = q === -1 ? rawUrl : rawUrl.slice(0, q);
    let routeName = 'other';
    let failure: SchedulerError | undefined;
    res.on('finish', () => {
      const seconds = Number(process.hrtime.bigint() - started) / 1e9;
      record(routeName, req.method ?? '', res.statusCode, seconds);
      const fields = { method: req.method, path: path.slice(0, 200), status: res.statusCode, ms: Math.round(seconds * 1e4) / 10, remote: req.socket.remoteAddress, ...(failure ? { err: failure.code, detail: failure.message } : {}) };
      // Announces and heartbeats arrive thousands a second: only failures are worth a line above debug.
      if (res.statusCode >= 500) log.error(fields, 'request');
      else log.debug(fields, 'request');
    });

    const fail = (err: unknown) => {
      failure = err instanceof SchedulerError ? err : new SchedulerError('INTERNAL', 'internal scheduler error; see the scheduler log', { cause: err });
      if (failure.status >= 500) log.error({ err, path, method: req.method }, 'request failed');
      if (res.headersSent) {
        res.destroy();
        return;
      }
      const payload = JSON.stringify(failure.toBody());
      // Drop the connection after refusing a body we did not read to the end.
      const extra: Record<string, string> = !req.complete ? { ...failure.headers, Connection: 'close' } : failure.headers;
      res.writeHead(failure.status, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(payload), ...extra });
      res.end(payload);
      if (!req.complete) req.resume();
    };

    let match: RegExpExecArray | null = null;
    let route: SchedulerRoute | undefined;
    const allowed: string[] = [];
    for (const r of routes) {
      const m = r.pattern.exec(path);
      if (!m) continue;
      if (r.method === req.method) {
        route = r;
        match = m;
        break;
      }
      allowed.push(r.method);
    }
    if (!route || !match) {
      if (allowed.length > 0) return fail(new SchedulerError('METHOD_NOT_ALLOWED', `${req.method} is not supported on ${path.slice(0, 200)} (allowed: ${allowed.join(', ')})`, { headers: { Allow: allowed.join(', ') } }));
      return fail(new SchedulerError('NOT_FOUND', `no such endpoint: ${req.method} ${path.slice(0, 200)}`));
    }
    routeName = route.name;
    if (tokenHash && route.auth !== false && !tokenMatches(req.headers.authorization, tokenHash)) {
      return fail(new SchedulerError('UNAUTHORIZED', 'missing or wrong cluster token: send Authorization: Bearer <cluster token>', { headers: { 'WWW-Authenticate': 'Bearer realm="shoal-scheduler"' } }));
    }
    let params: string[];
    try {
      params = match.slice(1).map((p) => decodeURIComponent(p ?? ''));
    } catch {
      return fail(new SchedulerError('BAD_REQUEST', 'malformed percent-encoding in the path'));
    }
    const ctx: RouteContext = {
      req,
      res,
      params,
      core,
      log,
      now,
      body: (schema) => readJson(req, maxBody, schema),
      json: (status, body) => sendRaw(res, status, JSON.stringify(body)),
    };
    try {
      Promise.resolve(route.handle(ctx)).catch(fail);
    } catch (err) {
      fail(err);
    }
  };

  const server = createServer({ keepAliveTimeout: 65_000, headersTimeout: 30_000, requestTimeout: 60_000 }, handler);
  const expireEvery = opts.expireIntervalMs ?? 1000;
  let timer: NodeJS.Timeout | undefined;
  if (expireEvery > 0) {
    timer = setInterval(() => {
      try {
        core.expire(now());
      } catch (err) {
        log.error({ err }, 'scheduler expiry failed');
      }
    }, expireEvery);
    timer.unref();
  }

  return {
    handler,
    server,
    routes,
    metrics,
    listen: (port, host = '127.0.0.1') =>
      new Promise((resolve, reject) => {
        server.once('error', reject);
        server.listen(port, host, () => {
          server.off('error', reject);
          const a = server.address() as AddressInfo;
          const url = `http://${a.family === 'IPv6' ? `[${a.address}]` : a.address}:${a.port}`;
          log.info({ address: url }, 'scheduler listening');
          resolve(url);
        });
      }),
    close: () =>
      new Promise((resolve) => {
        if (timer) clearInterval(timer);
        if (!server.listening) return resolve();
        server.close(() => resolve());
        server.closeIdleConnections();
      }),
  };
}

function sendRaw(res: ServerResponse, status: number, payload: string, contentType = 'application/json'): void {
  res.writeHead(status, { 'Content-Type': contentType, 'Content-Length': Buffer.byteLength(payload) });
  res.end(payload);
}

function header(req: IncomingMessage, name: string): string | undefined {
  const v = req.headers[name];
  return Array.isArray(v) ? v[0] : v;
}

function pathDigest(raw: string): Digest {
  const parsed = pieceManifestSchema.shape.digest.safeParse(raw);
  if (!parsed.success) throw new SchedulerError('BAD_REQUEST', `path: ${describeIssues(parsed.error)}`);
  return parsed.data;
}

function sha256(s: string): Buffer {
  return createHash('sha256').update(s).digest();
}

/** Compares hashes, so neither the length nor the content of the token leaks through timing. */
function tokenMatches(authorization: string | undefined, expected: Buffer): boolean {
  const m = /^Bearer[ \t]+(\S+)[ \t]*$/i.exec(authorization ?? '');
  return m ? timingSafeEqual(sha256(m[1]!), expected) : false;
}

/** Reads at most `limit` bytes, then parses and validates; 413 before reading a declared oversize body. */
async function readJson<T>(req: IncomingMessage, limit: number, schema: z.ZodType<T, unknown> | BodyParser<T>): Promise<T> {
  const type = header(req, 'content-type');
  if (type && !/json/i.test(type)) throw new SchedulerError('UNSUPPORTED_MEDIA_TYPE', `expected a JSON body, got Content-Type ${type.slice(0, 100)}`);
  const declared = Number(req.headers['content-length'] ?? NaN);
  if (Number.isFinite(declared) && declared > limit) throw new SchedulerError('TOO_LARGE', `body of ${declared} bytes exceeds the limit of ${limit} bytes`);
  const raw = await new Promise<Buffer>((resolve, reject) => {
    // Listeners, not for-await: leaving a for-await early destroys the socket, and the client
    // would see a reset instead of our 413.
    const chunks: Buffer[] = [];
    let size = 0;
    const onData = (chunk: Buffer) => {
      size += chunk.length;
      if (size <= limit) return void chunks.push(chunk);
      req.off('data', onData);
      req.resume();
      reject(new SchedulerError('TOO_LARGE', `body exceeds the limit of ${limit} bytes`));
    };
    req.on('data', onData);
    req.once('end', () => {
      if (size <= limit) resolve(Buffer.concat(chunks, size));
    });
    req.once('error', (err) => reject(new SchedulerError('BAD_REQUEST', `reading the body failed: ${err.message}`)));
  });
  let value: unknown;
  try {
    value = JSON.parse(raw.toString('utf8'));
  } catch (err) {
    throw new SchedulerError('BAD_REQUEST', `body is not valid JSON: ${(err as Error).message}`);
  }
  if ('safeParse' in schema) {
    const parsed = schema.safeParse(value);
    if (!parsed.success) throw new SchedulerError('BAD_REQUEST', describeIssues(parsed.error));
    return parsed.data;
  }
  const r = schema.parse(value);
  if (!r.ok) throw new SchedulerError('BAD_REQUEST', r.message);
  return r.value;
}
