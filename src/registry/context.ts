// Request context and the per-route middleware chain (policies stack here, Harbor-style:
// authn -> network ACL -> rate limit -> RBAC -> quota -> immutability -> gate -> handler).
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Logger } from 'pino';
import type { RouteMatch } from './routes.js';

export interface RequestContext {
  req: IncomingMessage;
  res: ServerResponse;
  route: RouteMatch;
  /** Query parameters (parsed lazily only by routes that have a query). */
  query: URLSearchParams;
  log: Logger;
  /** Per-request state that policies hand to later steps (identity, decisions). */
  state: Record<string, unknown>;
}

export type Handler = (ctx: RequestContext) => Promise<void>;
export type Middleware = (ctx: RequestContext, next: () => Promise<void>) => Promise<void>;

/** Runs middlewares in order, then the handler; any step may answer and not call next(). */
export function compose(middlewares: readonly Middleware[], handler: Handler): Handler {
  if (middlewares.length === 0) return handler;
  return (ctx) => {
    const step = (i: number): Promise<void> => {
      const mw = middlewares[i];
      return mw ? mw(ctx, () => step(i + 1)) : handler(ctx);
    };
    return step(0);
  };
}
