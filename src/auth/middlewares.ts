// The /v2 policy chain's identity steps: authentication (bearer token → Principal) and RBAC
// (the token's granted scope covers what the route needs). Both answer with the Docker token
// challenge so that clients fetch a (better) token and retry.
import { AsyncLocalStorage } from 'node:async_hooks';
import type { IncomingMessage } from 'node:http';
import { RegistryError } from '../oci/errors.js';
import type { Middleware, RequestContext } from '../registry/context.js';
import type { ClientIpResolver } from '../policy/client-ip.js';
import { setPrincipal, principalOf, type Principal } from './principal.js';
import { grants, formatScope, type Scope } from './scope.js';
import type { TokenService } from './token-service.js';
import type { AccessEntry } from './jwt.js';

/** The principal of the write in progress, for event listeners (audit) that run inside it. */
export const writeContext = new AsyncLocalStorage<Principal>();

const CLAIMS_KEY = 'tokenAccess';

/** What a route needs, as a token scope; null for the base route (any valid token). */
export function requiredScope(ctx: RequestContext): Scope | null {
  const { route, req } = ctx;
  switch (route.name) {
    case 'base':
      return null;
    case 'catalog':
      return { type: 'registry', name: 'catalog', actions: ['*'] };
    case 'manifest':
    case 'blob':
      if (req.method === 'DELETE') return { type: 'repository', name: route.repo, actions: ['delete'] };
      if (req.method === 'PUT') return { type: 'repository', name: route.repo, actions: ['pull', 'push'] };
      return { type: 'repository', name: route.repo, actions: ['pull'] };
    case 'upload.start':
    case 'upload':
      return { type: 'repository', name: route.repo, actions: ['pull', 'push'] };
    default:
      return { type: 'repository', name: route.repo, actions: ['pull'] };
  }
}

export interface ChallengeOptions {
  service: string;
  /** Fixed token realm; otherwise derived from the request's Host. */
  realm?: string;
}

export function realmOf(req: IncomingMessage, opts: ChallengeOptions): string {
  return opts.realm ?? `http://${req.headers.host ?? 'localhost'}/auth/token`;
}

export function challenge(req: IncomingMessage, opts: ChallengeOptions, scope: Scope | null, error?: 'invalid_token' | 'insufficient_scope'): string {
  let h = `Bearer realm="${realmOf(req, opts)}",service="${opts.service}"`;
  if (scope) h += `,scope="${formatScope(scope)}"`;
  if (error) h += `,error="${error}"`;
  return h;
}

function unauthorized(ctx: RequestContext, opts: ChallengeOptions, message: string, error?: 'invalid_token' | 'insufficient_scope'): RegistryError {
  const scope = requiredScope(ctx);
  return new RegistryError('UNAUTHORIZED', message, {
    headers: { 'WWW-Authenticate': challenge(ctx.req, opts, scope, error) },
    ...(scope ? { detail: [{ Type: scope.type, Name: scope.name, Action: scope.actions.join(',') }] } : {}),
  });
}

/** authn: a valid, unexpired access token of an active account, or 401 with the challenge. */
export function authenticate(tokens: TokenService, ips: ClientIpResolver, opts: ChallengeOptions): Middleware {
  return async (ctx, next) => {
    const header = ctx.req.headers.authorization ?? '';
    if (!/^Bearer /i.test(header)) throw unauthorized(ctx, opts, 'authentication required: obtain a bearer token from the realm in WWW-Authenticate');
    const claims = tokens.verifyAccess(header.slice(7).trim());
    if (typeof claims === 'string') throw unauthorized(ctx, opts, `invalid token (${claims.replace(/_/g, ' ')})`, 'invalid_token');
    if (!(await tokens.subjectActive(claims.sub, claims.kind))) {
      throw unauthorized(ctx, opts, `the account "${claims.sub}" behind this token is disabled, revoked or expired`, 'invalid_token');
    }
    const principal: Principal = { name: claims.sub, kind: claims.kind, isAdmin: claims.adm === true, clientIp: ips.resolve(ctx.req) };
    setPrincipal(ctx, principal);
    ctx.state[CLAIMS_KEY] = claims.access;
    const method = ctx.req.method;
    if (method === 'GET' || method === 'HEAD') return next();
    return writeContext.run(principal, next);
  };
}

/** RBAC: the token's granted scope must cover the route's need. A mount from a repository the token cannot pull becomes a plain upload. */
export function authorize(opts: ChallengeOptions): Middleware {
  return async (ctx, next) => {
    const access = ctx.state[CLAIMS_KEY] as AccessEntry[] | undefined;
    if (!access) return next(); // auth disabled for this chain
    const need = requiredScope(ctx);
    if (need) {
      for (const action of need.actions) {
        if (!grants(access, need.type, need.name, need.type === 'registry' ? '*' : action)) {
          const who = principalOf(ctx)?.name ?? 'anonymous';
          throw unauthorized(ctx, opts, `"${who}" may not ${action} ${need.type === 'registry' ? 'the catalog' : `repository ${need.name}`} with this token`, 'insufficient_scope');
        }
      }
    }
    if (ctx.route.name === 'upload.start' && ctx.query.has('mount')) {
      const from = ctx.query.get('from');
      if (!from || !grants(access, 'repository', from, 'pull')) {
        ctx.query.delete('mount');
        ctx.query.delete('from');
      }
    }
    return next();
  };
}
