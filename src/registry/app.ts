// The Distribution API as a node:http request listener: route table, per-route policy chains,
// access logging, metrics, and the one error mapping.
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Logger } from 'pino';
import { RegistryError } from '../oci/errors.js';
import type { RegistryMetrics } from '../server/metrics.js';
import { compose, type Handler, type Middleware, type RequestContext } from './context.js';
import { matchRoute, type RouteName } from './routes.js';
import { API_VERSION_HEADER, sendError, sendJson } from './respond.js';
import type { RegistryService } from './service.js';
import { blobHandlers } from './handlers/blobs.js';
import { uploadHandlers } from './handlers/uploads.js';
import { manifestHandlers } from './handlers/manifests.js';
import { listingHandlers } from './handlers/listing.js';

export type RouteKey = `${RouteName} ${string}`;

export interface AppOptions {
  service: RegistryService;
  metrics: RegistryMetrics;
  log: Logger;
  /** Policies per route key ("manifest PUT") or for every route ("*"); run in order before the handler. */
  policies?: Partial<Record<RouteKey | '*', Middleware[]>>;
  /**
   * 'all' logs every request; 'default' leaves out successful manifest GET/HEAD and blob HEAD
   * (the pull storm's hot path, tens of thousands a second: counted in metrics instead).
   */
  accessLog?: 'all' | 'default' | 'off';
  /** Extra non-/v2 endpoints (health, metrics, admin): exact paths, or prefixes when the key ends with "/" (longest wins). */
  extraRoutes?: Record<string, (req: IncomingMessage, res: ServerResponse) => Promise<void> | void>;
}

const NO_QUERY = new URLSearchParams();

type Policies = NonNullable<AppOptions['policies']>;

/** Joins policy sets route by route, keeping their order: every step of `first` runs before `then`'s. */
export function mergePolicies(first: Policies | undefined, then: Policies | undefined): Policies {
  const out: Policies = { ...first };
  for (const [key, steps] of Object.entries(then ?? {}) as Array<[keyof Policies, Middleware[]]>) out[key] = [...(out[key] ?? []), ...steps];
  return out;
}

export function createRegistryApp(opts: AppOptions): (req: IncomingMessage, res: ServerResponse) => void {
  const { service, metrics, log } = opts;
  const accessLog = opts.accessLog ?? 'default';
  // prom-client hashes label objects on every call; keep one child per label set instead.
  const requestCounters = new Map<string, { inc(): void }>();
  const durationHists = new Map<string, { observe(v: number): void }>();
  const countRequest = (route: string, method: string, status: number, seconds: number) => {
    const key = `${route} ${method}`;
    const ckey = `${key} ${status}`;
    let c = requestCounters.get(ckey);
    if (!c) requestCounters.set(ckey, (c = metrics.requests.labels(route, method, String(status))));
    c.inc();
    let h = durationHists.get(key);
    if (!h) durationHists.set(key, (h = metrics.duration.labels(route, method)));
    h.observe(seconds);
  };
  const isQuietSuccess = (route: string, method: string | undefined, status: number) =>
    status < 400 && (method === 'HEAD' || (method === 'GET' && route === 'manifest')) && (route === 'manifest' || route === 'blob');
  const blobs = blobHandlers(service, metrics);
  const uploads = uploadHandlers(service, metrics);
  const manifests = manifestHandlers(service);
  const listing = listingHandlers(service);
  // Keys ending in "/" are prefixes; the longest one that matches wins (so "/api/v1/chains/" can sit
  // beside a general "/api/v1/").
  const extraPrefixes = Object.keys(opts.extraRoutes ?? {})
    .filter((key) => key.endsWith('/'))
    .sort((a, b) => b.length - a.length);
  const findExtra = (path: string) => {
    if (opts.extraRoutes?.[path]) return path;
    return extraPrefixes.find((p) => path.startsWith(p));
  };

  const table: Record<RouteName, Partial<Record<string, Handler>>> = {
    base: { GET: async (ctx) => sendJson(ctx.res, 200, {}), HEAD: async (ctx) => sendJson(ctx.res, 200, {}) },
    catalog: { GET: listing.catalog },
    'tags.list': { GET: listing.tags },
    manifest: { GET: manifests.get, HEAD: manifests.get, PUT: manifests.put, DELETE: manifests.delete },
    blob: { GET: blobs.get, HEAD: blobs.get, DELETE: blobs.delete },
    'upload.start': { POST: uploads.start },
    upload: { GET: uploads.status, PATCH: uploads.patch, PUT: uploads.finish, DELETE: uploads.cancel },
    referrers: { GET: listing.referrers },
  };

  // Compose each route's chain once, at start-up, not per request.
  const chains = new Map<string, Handler>();
  for (const [name, methods] of Object.entries(table)) {
    for (const [method, handler] of Object.entries(methods)) {
      const key = `${name} ${method}` as RouteKey;
      chains.set(key, compose([...(opts.policies?.['*'] ?? []), ...(opts.policies?.[key] ?? [])], handler!));
    }
  }


  return (req, res) => {
    const started = process.hrtime.bigint();
    const rawUrl = req.url ?? '/';
    const q = rawUrl.indexOf('?');
    const path = q === -1 ? rawUrl : rawUrl.slice(0, q);
    let routeLabel = 'other';
    let error: RegistryError | undefined;

    res.on('finish', () => {
      const seconds = Number(process.hrtime.bigint() - started) / 1e9;
      countRequest(routeLabel, req.method ?? '', res.statusCode, seconds);
      if (accessLog !== 'off' && log.isLevelEnabled('info') && (accessLog === 'all' || !isQuietSuccess(routeLabel, req.method, res.statusCode))) {
        log.info(
          {
            method: req.method,
            path,
            status: res.statusCode,
            ms: Math.round(seconds * 1e4) / 10,
            remote: req.socket.remoteAddress,
            ua: req.headers['user-agent'],
            ...(error ? { err: error.code, errMsg: error.message } : {}),
          },
          'request',
        );
      }
    });

    const extraKey = path.startsWith('/v2') ? undefined : findExtra(path);
    const extra = extraKey === undefined ? undefined : opts.extraRoutes?.[extraKey];
    if (extra) {
      routeLabel = extraKey!;
      Promise.resolve(extra(req, res)).catch((err) => (error = sendError(res, err)));
      return;
    }

    let route;
    try {
      route = matchRoute(path);
    } catch (err) {
      error = sendError(res, err);
      req.resume();
      return;
    }
    if (!route) {
      error = sendError(res, new RegistryError('NAME_UNKNOWN', `no such endpoint: ${req.method} ${path.slice(0, 200)}`, { status: 404 }));
      req.resume();
      return;
    }
    routeLabel = route.name;
    const chain = chains.get(`${route.name} ${req.method}`);
    if (!chain) {
      const allowed = Object.keys(table[route.name]).join(', ');
      error = sendError(res, new RegistryError('UNSUPPORTED', `${req.method} is not supported on this endpoint (allowed: ${allowed})`, { status: 405, headers: { Allow: allowed } }));
      req.resume();
      return;
    }
    const ctx: RequestContext = {
      req,
      res,
      route,
      query: q === -1 ? NO_QUERY : new URLSearchParams(rawUrl.slice(q + 1)),
      log,
      state: {},
    };
    chain(ctx).catch((err) => {
      error = sendError(res, err);
      if (error.status >= 500) log.error({ err, path, method: req.method }, 'request failed');
      if (!req.complete) req.resume();
    });
  };
}

export { API_VERSION_HEADER };
